package notify_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"carefhir/notify"
)

// BenchmarkDeliveryLatency measures the time from a write's response to
// its notification reaching a loopback receiver, with writes at about 100
// a second, on SQLite, and reports its median and 95th percentile.
func BenchmarkDeliveryLatency(b *testing.B) {
	st := engines[0].open(b, b.TempDir())
	defer st.Close()
	e := newEnv(b, st, map[string]map[string]any{}, func(c *notify.Config) { c.Now = time.Now })
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived[r.URL.Path] = time.Now()
		mu.Unlock()
	}))
	defer rx.Close()
	e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.n.Run(ctx)
	time.Sleep(100 * time.Millisecond)
	committed := map[string]time.Time{}
	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range b.N {
		<-tick.C
		r := e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		committed["/hook/Appointment/"+idOf(b, r)] = time.Now()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := 0
		for path := range committed {
			if _, ok := arrived[path]; ok {
				n++
			}
		}
		mu.Unlock()
		if n == len(committed) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	var lat []float64
	mu.Lock()
	for path, at := range committed {
		if got, ok := arrived[path]; ok {
			lat = append(lat, float64(got.Sub(at))/float64(time.Millisecond))
		}
	}
	mu.Unlock()
	if len(lat) != len(committed) {
		b.Fatalf("%d of %d notifications arrived", len(lat), len(committed))
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*95/100], "p95-ms")
}
