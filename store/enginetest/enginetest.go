// Package enginetest opens each storage engine for tests that run the
// same checks against all of them: SQLite in a temporary directory and
// MongoDB through an embedded FerretDB. Only tests import it.
package enginetest

import (
	"context"
	"testing"

	"carefhir/store"
	"carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
)

// Engine opens a fresh, empty store of one engine for one test; the test
// closes it.
type Engine struct {
	Name string
	Open func(t testing.TB) store.Store
}

// Engines returns every engine, SQLite first.
func Engines() []Engine {
	return []Engine{
		{"sqlite", func(t testing.TB) store.Store {
			st, err := sqlite.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"mongo", func(t testing.TB) store.Store {
			st, err := mongo.Open(context.Background(), ferrettest.Start(t))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	}
}
