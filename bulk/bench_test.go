package bulk

import (
	"context"
	"fmt"
	"testing"
	"time"

	"carefhir/store"
)

// BenchmarkExport100k exports 100,000 Patients on SQLite through the HTTP
// API (kick-off, polling, manifest) and reports resources a second, beside
// the floor: the same pages read straight from the engine.
func BenchmarkExport100k(b *testing.B) {
	const total = 100_000
	e := newEnv(b, engines[0].open(b))
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
