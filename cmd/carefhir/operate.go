package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"carefhir/ops/health"
	"carefhir/ops/metrics"
	"carefhir/store"
	"carefhir/store/sqlite"
)

// prober is a store that probes itself with a read and a write.
type prober interface {
	Probe(ctx context.Context) error
}

// storeCheck is the readiness check of the store: its own probe when it has
// one (SQLite: a read, the schema version and a write through the writer),
// else a read of a resource that need not exist.
func storeCheck(st store.Store) health.Check {
	if p, ok := st.(prober); ok {
		return health.Check{Name: "store", Run: p.Probe}
	}
	return health.Check{Name: "store", Run: func(ctx context.Context) error {
		_, err := st.Read(ctx, "Patient", "readiness-probe")
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return health.Private("read probe failed", err)
	}}
}

// mongoPrimaryCheck returns the readiness check that a primary of the
// MongoDB deployment at uri answers, on a client of its own (one
// connection), and a function that disconnects it.
func mongoPrimaryCheck(uri string) (health.Check, func() error, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetMaxPoolSize(1).SetAppName("carefhir-readiness"))
	if err != nil {
		return health.Check{}, nil, fmt.Errorf("readiness check of the MongoDB primary: %w", err)
	}
	check := health.Check{Name: "mongodb-primary", Run: func(ctx context.Context) error {
		if err := client.Ping(ctx, readpref.Primary()); err != nil {
			return health.Private("no MongoDB primary answered", err)
		}
		return nil
	}}
	disconnect := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return client.Disconnect(ctx)
	}
	return check, disconnect, nil
}

// observeEngine registers the metrics of the engine st, when it has any.
func observeEngine(reg *metrics.Registry, st store.Store) {
	if s, ok := st.(interface{ Stats() sqlite.Stats }); ok {
		reg.SQLite(func() metrics.SQLiteStats {
			st := s.Stats()
			return metrics.SQLiteStats{QueueDepth: st.QueueDepth, DatabaseBytes: st.DatabaseBytes, WALBytes: st.WALBytes}
		})
	}
}
