package bulk

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/store"
)

// BenchmarkExport100k exports 100,000 Patients on SQLite through the HTTP
// API (kick-off, polling, manifest) and reports resources a second, beside
// the floor: the same pages read straight from the engine.
func BenchmarkExport100k(b *testing.B) {
	const total = 100_000
	e := newEnv(b, engines[0].Open(b))
	benchSeed(b, e.st, total)
	e.x.cfg.PageSize = 1000
	b.Run("http", func(b *testing.B) {
		for range b.N {
			m := e.wait("admin", e.kickOff("admin", "/$export?_type=Patient"))
			if m.Output[0].Count != total {
				b.Fatalf("exported %d", m.Output[0].Count)
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "resources/s")
	})
	b.Run("engine", func(b *testing.B) {
		f := e.st.(store.Finder)
		for range b.N {
			n := 0
			q := store.Query{Type: "Patient", Count: 1000}
			for {
				page, err := f.Find(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				n += len(page.Matches)
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
			}
			if n != total {
				b.Fatalf("read %d", n)
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "resources/s")
	})
}

// benchSeed stores total Patients straight into the engine.
func benchSeed(b *testing.B, st store.Store, total int) {
	now := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for start := 0; start < total; start += 1000 {
		err := st.Transact(context.Background(), func(tx store.Tx) error {
			for i := start; i < min(start+1000, total); i++ {
				id := fmt.Sprintf("p%06d", i)
				body := `{"resourceType":"Patient","id":"` + id + `","meta":{"versionId":"1","lastUpdated":"` + now.Format("2006-01-02T15:04:05.000Z") +
					`"},"gender":"female","birthDate":"1950-01-01","name":[{"family":"Ward","given":["Sarah"]}]}`
				if err := tx.Put(context.Background(), &store.Write{Type: "Patient", ID: id, LastUpdated: now, JSON: []byte(body)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadsDuringExport measures a read load (4 clients reading
// Patients by id) alone and while 100,000 Patients are exported, on
// SQLite, and reports the ratio of the two read rates and the export's
// rate.
func BenchmarkReadsDuringExport(b *testing.B) {
	const total = 100_000
	e := newEnv(b, engines[0].Open(b))
	benchSeed(b, e.st, total)
	e.x.cfg.PageSize = 1000
	load := func(stop <-chan struct{}) float64 {
		start := time.Now()
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := w; ; i += 4 {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest("GET", fmt.Sprintf("%s/Patient/p%06d", e.base, (i*7919)%total), nil)
					req.Header.Set("Authorization", "Bearer "+e.tokens["admin"])
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						n.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds()
	}
	for range b.N {
		stop := make(chan struct{})
		time.AfterFunc(3*time.Second, func() { close(stop) })
		alone := load(stop)

		stop = make(chan struct{})
		rate := make(chan float64, 1)
		go func() { rate <- load(stop) }()
		start := time.Now()
		m := e.wait("admin", e.kickOff("admin", "/$export?_type=Patient"))
		exportRate := float64(total) / time.Since(start).Seconds()
		close(stop)
		during := <-rate
		if m.Output[0].Count != total {
			b.Fatalf("exported %d", m.Output[0].Count)
		}
		b.ReportMetric(alone, "reads/s-alone")
		b.ReportMetric(during, "reads/s-during")
		b.ReportMetric(100*during/alone, "%-kept")
		b.ReportMetric(exportRate, "export-resources/s")
	}
}
