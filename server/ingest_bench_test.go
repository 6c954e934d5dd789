//go:build unix

package server_test

import (
	"bytes"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/care/synth"
	"carefhir/profiles"
	"carefhir/server"
	"carefhir/store"
	"carefhir/store/sqlite"
)

// BenchmarkIngest loads generated UK patient records (care/synth: Patients
// with their Conditions, Observations, Appointments, care plans and the
// practices they are registered with) into an empty SQLite engine, three
// ways, 1,000 resources per op:
//
//   - transaction-http: one POST /fhir of a transaction Bundle of 1,000 PUTs;
//   - transaction-http-validated: the same, the server validating every
//     resource (R4 and UK Core, Config.ValidateWrites);
//   - single-http: the same 1,000 resources by PUT /fhir/[type]/[id], from 8
//     concurrent clients;
//   - engine: the same 1,000 rows by store.Transact of 1,000 Puts, with the
//     search index extracted beforehand, outside the timed region (the floor);
//   - engine-indexed: the same, extracting the index inside the timed region,
//     as the server must.
//
// Every op writes resources that do not exist yet. Metrics are resources/s
// (wall clock) and cpu-µs/resource (the whole process, HTTP client included).
//
//	go test ./server/ -run '^$' -bench Ingest -benchtime 3x
func BenchmarkIngest(b *testing.B) {
	const perOp = 1000
	for _, validated := range []bool{false, true} {
		name := "transaction-http"
		if validated {
			name = "transaction-http-validated"
		}
		b.Run(name, func(b *testing.B) {
			entries := ingestEntries(b, b.N*perOp)
			bundles := make([][]byte, b.N)
			for i := range bundles {
				bundle, err := synth.Transaction(entries[i*perOp : (i+1)*perOp])
				if err != nil {
					b.Fatal(err)
				}
				bundles[i] = bundle
			}
			var opts []func(*server.Config)
			if validated {
				v, err := profiles.New(profiles.Options{})
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, func(cfg *server.Config) { cfg.Validator, cfg.ValidateWrites = v, true })
			}
			base, client := benchServer(b, openIngestStore(b), opts...)
			runIngest(b, len(entries), func() {
				for _, bundle := range bundles {
					req, err := http.NewRequest(http.MethodPost, base, bytes.NewReader(bundle))
					if err != nil {
						b.Fatal(err)
					}
					req.Header.Set("Content-Type", "application/fhir+json")
					if err := send(client, req, http.StatusOK); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
	b.Run("single-http", func(b *testing.B) {
		entries := ingestEntries(b, b.N*perOp)
		base, client := benchServer(b, openIngestStore(b))
		const clients = 8
		runIngest(b, len(entries), func() {
			var next atomic.Int64
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(len(entries)); i = next.Add(1) - 1 {
						e := entries[i]
						req, err := http.NewRequest(http.MethodPut, base+"/"+e.Type+"/"+e.ID, bytes.NewReader(e.JSON))
						if err != nil {
							b.Error(err)
							return
						}
						req.Header.Set("Content-Type", "application/fhir+json")
						if err := send(client, req, http.StatusCreated); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	})
	for _, indexInside := range []bool{false, true} {
		name := "engine"
		if indexInside {
			name = "engine-indexed"
		}
		b.Run(name, func(b *testing.B) {
			entries := ingestEntries(b, b.N*perOp)
			ix, err := server.NewIndexer("")
			if err != nil {
				b.Fatal(err)
			}
			index := func(e synth.Entry) store.Index {
				x, err := ix.IndexJSON(e.Type, e.JSON)
				if err != nil {
					b.Fatal(err)
				}
				return x
			}
			indexes := make([]store.Index, len(entries))
			if !indexInside {
				for i, e := range entries {
					indexes[i] = index(e)
				}
			}
			st := openIngestStore(b)
			ctx := b.Context()
			runIngest(b, len(entries), func() {
				for op := range b.N {
					err := st.Transact(ctx, func(tx store.Tx) error {
						now := time.Now().UTC().Truncate(time.Millisecond)
						for i := op * perOp; i < (op+1)*perOp; i++ {
							e := entries[i]
							x := indexes[i]
							if indexInside {
								x = index(e)
							}
							if err := tx.Put(ctx, &store.Write{Type: e.Type, ID: e.ID, LastUpdated: now, JSON: e.JSON, Index: x}); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// openIngestStore opens an empty SQLite engine, closed before its directory
// is removed.
func openIngestStore(b *testing.B) store.Store {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// errEnough stops generation once ingestEntries has the resources it needs.
var errEnough = errors.New("enough resources")

// ingestEntries returns the first n resources of a generated set.
func ingestEntries(b *testing.B, n int) []synth.Entry {
	entries := make([]synth.Entry, 0, n)
	err := synth.Generate(synth.Options{Patients: min(n, synth.MaxPatients), Seed: 5}, func(typ, id string, json []byte) error {
		entries = append(entries, synth.Entry{Type: typ, ID: id, JSON: json})
		if len(entries) == n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		b.Fatalf("generate %d resources: %v", n, err)
	}
	return entries
}

// runIngest times load, which writes resources resources, and reports
// resources/s and the process's CPU time per resource.
func runIngest(b *testing.B, resources int, load func()) {
	cpu := cpuTime(b)
	b.ResetTimer()
	load()
	b.StopTimer()
	b.ReportMetric(float64(resources)/b.Elapsed().Seconds(), "resources/s")
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(resources)/1e3, "cpu-µs/resource")
}
