package mongo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"carefhir/fhir/search"
	"carefhir/store"
)

// BenchmarkIndexFootprint measures, over the R4 examples of a few types
// (testdata/r4-examples), what the search fields cost each stored resource:
// their bytes in the current-version document, the indexes of its
// collection, and the index keys one document adds to them. Each
// sub-benchmark reports the averages per resource:
//
//	go test -run '^$' -bench IndexFootprint ./store/mongo/
func BenchmarkIndexFootprint(b *testing.B) {
	types := []string{"Observation", "Patient", "Practitioner", "CarePlan"}
	reg, err := search.Load(types)
	if err != nil {
		b.Fatal(err)
	}
	ix := search.NewIndexer(reg, search.FHIRPath, "")
	plan, err := planIndexes(DefaultIndexes())
	if err != nil {
		b.Fatal(err)
	}
	for _, typ := range types {
		b.Run(typ, func(b *testing.B) {
			files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "r4-examples", typ+"-*.json"))
			var indexes []store.Index
			jsonBytes := 0
			for _, f := range files {
				body, err := os.ReadFile(f)
				if err != nil {
					b.Fatal(err)
				}
				index, err := ix.IndexJSON(typ, body)
				if err != nil {
					continue // an example the indexer refuses is no resource the server stores
				}
				indexes = append(indexes, index)
				jsonBytes += len(body)
			}
			if len(indexes) == 0 {
				b.Skip("no examples")
			}
			var fieldBytes, keys int
			for b.Loop() {
				fieldBytes, keys = 0, 0
				for i := range indexes {
					d := searchFields(&indexes[i])
					raw, err := bson.Marshal(d)
					if err != nil {
						b.Fatal(err)
					}
					fieldBytes += len(raw)
					keys += indexKeysOf(bson.Raw(raw), plan[typ]) + 1 // + _id's
				}
			}
			n := float64(len(indexes))
			b.ReportMetric(n, "resources")
			b.ReportMetric(float64(jsonBytes)/n, "json-B/res")
			b.ReportMetric(float64(fieldBytes)/n, "search-B/res")
			b.ReportMetric(float64(len(plan[typ])+1), "indexes")
			b.ReportMetric(float64(keys)/n, "keys/res")
		})
	}
}

// indexKeysOf returns the keys a document adds to indexes: per index, one
// per element of its array field (an index holds at most one), else one.
func indexKeysOf(doc bson.Raw, indexes []bson.D) int {
	n := 0
	for _, idx := range indexes {
		k := 1
		for _, e := range idx {
			if !strings.HasPrefix(e.Key, "ix") {
				continue
			}
			if v, err := doc.LookupErr(e.Key); err == nil {
				if a, ok := v.ArrayOK(); ok {
					vals, _ := a.Values()
					k = max(k, len(vals))
				}
			}
		}
		n += k
	}
	return n
}
