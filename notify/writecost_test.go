package notify_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"carefhir/notify"
	"carefhir/operation"
	"carefhir/server"
)

// BenchmarkCreateCost measures creates through HTTP on SQLite, 8 clients,
// without the subscriptions hook and with it (no subscription stored):
// the hook makes every write a unit of work.
func BenchmarkCreateCost(b *testing.B) {
	for _, hooked := range []bool{false, true} {
		name := "without-hook"
		if hooked {
			name = "with-hook"
		}
		b.Run(name, func(b *testing.B) {
			st := engines[0].open(b, b.TempDir())
			defer st.Close()
			cfg := server.Config{Store: st, Logger: slog.New(slog.DiscardHandler)}
			if hooked {
				ix, err := server.NewIndexer("")
				if err != nil {
					b.Fatal(err)
				}
				n, err := notify.New(notify.Config{Indexer: ix})
				if err != nil {
					b.Fatal(err)
				}
				cfg.Hooks = []operation.Hook{n.Hook()}
				cfg.Attach = []func(operation.Store){n.Attach}
			}
			srv := httptest.NewServer(server.New(cfg))
			defer srv.Close()
			body := `{"resourceType":"Patient","gender":"female","name":[{"family":"Ward","given":["Sarah"]}]}`
			var wg sync.WaitGroup
			work := make(chan struct{})
			for range 8 {
				wg.Go(func() {
					for range work {
						resp, err := http.Post(srv.URL+"/fhir/Patient", "application/fhir+json", strings.NewReader(body))
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 201 {
							b.Errorf("create: %d", resp.StatusCode)
						}
					}
				})
			}
			b.ResetTimer()
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}
