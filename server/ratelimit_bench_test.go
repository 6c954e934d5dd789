package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/server"
	"carefhir/server/auth/authtest"
	"carefhir/store/sqlite"
)

// BenchmarkRateLimit measures how closely the per-client token bucket
// holds its configured rate when 200 concurrent loopback clients (each its
// own connection) send requests as fast as they can, all as one client:
// one bearer token, or one address on an open server. Each iteration is a
// window of windowSeconds; the figures are the requests served a second
// and their ratio to what the bucket allows in the window (the rate times
// the window, plus the burst).
//
//	go test ./server/ -run '^$' -bench RateLimit -benchtime 1x
func BenchmarkRateLimit(b *testing.B) {
	const (
		rate          = 200.0
		burst         = 20
		clients       = 200
		windowSeconds = 5
	)
	limit := func(cfg *server.Config) { cfg.RateLimit = server.RateLimit{PerSecond: rate, Burst: burst} }
	for _, mode := range []string{"token", "address"} {
		b.Run(mode, func(b *testing.B) {
			st, err := sqlite.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			var base string
			header := http.Header{}
			if mode == "token" {
				as := startAuthServer(b, st, limit)
				base = as.root + "/fhir"
				header.Set("Authorization", "Bearer "+as.idp.Sign(b, authtest.Claims(externalIssuer, base,
					map[string]any{"client_id": "bench", "exp": time.Now().Add(time.Hour).Unix()})))
			} else {
				cfg := server.Config{Store: st}
				limit(&cfg)
				srv := httptest.NewServer(server.New(cfg))
				b.Cleanup(func() {
					srv.Close()
					st.Close()
				})
				base = srv.URL + "/fhir"
			}
			transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, DisableCompression: true}
			defer transport.CloseIdleConnections()
			httpc := &http.Client{Transport: transport, Timeout: time.Minute}
			var served, throttled, other atomic.Int64
			var elapsed time.Duration
			for b.Loop() {
				// Let the bucket refill between windows.
				time.Sleep(time.Duration(float64(burst)/rate*float64(time.Second)) + 10*time.Millisecond)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				start := time.Now()
				for range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							req, _ := http.NewRequest("GET", base+"/Patient/unknown", nil)
							req.Header = header.Clone()
							resp, err := httpc.Do(req)
							if err != nil {
								other.Add(1)
								continue
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							switch resp.StatusCode {
							case http.StatusNotFound:
								served.Add(1)
							case http.StatusTooManyRequests:
								throttled.Add(1)
							default:
								other.Add(1)
							}
						}
					}()
				}
				time.Sleep(windowSeconds * time.Second)
				close(stop)
				wg.Wait()
				elapsed += time.Since(start)
			}
			if other.Load() > 0 {
				b.Errorf("%d requests neither served nor throttled", other.Load())
			}
			windows := float64(b.N)
			allowed := rate*elapsed.Seconds() + burst*windows
			b.ReportMetric(float64(served.Load())/elapsed.Seconds(), "served/s")
			b.ReportMetric(float64(throttled.Load())/elapsed.Seconds(), "throttled/s")
			b.ReportMetric(float64(served.Load())/allowed, "served/allowed")
		})
	}
}
