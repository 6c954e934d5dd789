package sqlite_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"carefhir/store"
	"carefhir/store/sqlite"
)

// syncModes are the durability settings BenchmarkSync compares, innermost so
// that each pair runs side by side.
var syncModes = []struct {
	name string
	opts sqlite.Options
}{
	{name: "full", opts: sqlite.Options{SyncFull: true}},
	{name: "normal", opts: sqlite.Options{}},
}

// BenchmarkSync measures what an fsync per commit costs: creates (one Put
// per resource, group commit sharing the commit between the clients) and
// transactions (units of work of 1, 10 and 1,000 care/synth resources; the
// server makes every create with hooks a unit of one), from 1 and 8
// clients, with synchronous=FULL and NORMAL. The database is in
// b.TempDir: set TMPDIR to a directory on the disk to be measured (fsync on
// tmpfs costs nothing).
func BenchmarkSync(b *testing.B) {
	patients := mustPool(b, patientPool)
	records := mustPool(b, synthPool)
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("create/clients=%d", clients), func(b *testing.B) {
			for _, mode := range syncModes {
				b.Run(mode.name, func(b *testing.B) {
					s := mustOpen(b, b.TempDir(), mode.opts)
					defer closeUntimed(b, s)
					var n atomic.Int64
					runClients(b, clients, func() error {
						return s.Put(b.Context(), nthWrite(patients, "p", n.Add(1)))
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
				})
			}
		})
		for _, size := range []int{1, 10, transactSize} {
			b.Run(fmt.Sprintf("transaction-%d/clients=%d", size, clients), func(b *testing.B) {
				for _, mode := range syncModes {
					b.Run(mode.name, func(b *testing.B) {
						s := mustOpen(b, b.TempDir(), mode.opts)
						defer closeUntimed(b, s)
						var n atomic.Int64
						ctx := b.Context()
						runClients(b, clients, func() error {
							first := n.Add(int64(size)) - int64(size)
							return s.Transact(ctx, func(tx store.Tx) error {
								for i := range int64(size) {
									if err := tx.Put(ctx, nthWrite(records, "r", first+i)); err != nil {
										return err
									}
								}
								return nil
							})
						})
						b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "resources/s")
					})
				}
			})
		}
	}
}

// runClients runs op b.N times in all, from a loop when clients is 1 and
// from about clients goroutines otherwise.
func runClients(b *testing.B, clients int, op func() error) {
	b.ResetTimer()
	if clients == 1 {
		for range b.N {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(parallelism(clients))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
