package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"carefhir/care"
	"carefhir/fhir"
	"carefhir/notify"
	"carefhir/operation"
	"carefhir/ops/health"
	"carefhir/ops/metrics"
	"carefhir/server"
	"carefhir/server/access"
)

// subscriptions are the Subscriptions of a served API: the write hook and
// store attachment for the server's Config, and the deliverer running
// beside it until stop.
type subscriptions struct {
	n    *notify.Notifier
	stop func()
}

// startSubscriptions starts delivering the outbox of the API at baseURL,
// re-checking each owner's authorisation with reauthorize (nil: none, on a
// server without authorisation) and recording the deliveries in auditor
// (nil: none).
func startSubscriptions(ctx context.Context, cfg *serveConfig, baseURL string, reauthorize func(*access.Principal, time.Time) (*access.Principal, error), auditor *access.Auditor, logger *slog.Logger) (*subscriptions, error) {
	ix, err := server.NewIndexer(baseURL, care.SearchParameters()...)
	if err != nil {
		return nil, fmt.Errorf("serve: subscriptions: %w", err)
	}
	n, err := notify.New(notify.Config{
		Indexer:     ix,
		BaseURL:     baseURL,
		AllowHTTP:   cfg.NotifyAllowHTTP,
		Types:       cfg.NotifyTypes,
		MaxBackoff:  cfg.NotifyMaxBackoff,
		ErrorAfter:  cfg.NotifyErrorAfter,
		KeepEvents:  cfg.NotifyKeepEvents,
		MaxPerOwner: cfg.NotifyMaxPerOwner,
		Reauthorize: reauthorize,
		Auditor:     auditor,
		Logger:      logger,
	})
	if err != nil {
		return nil, fmt.Errorf("serve: subscriptions: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.Run(ctx) })
	return &subscriptions{n: n, stop: func() { cancel(); wg.Wait() }}, nil
}

// configure adds the subscriptions to the server's configuration.
func (s *subscriptions) configure(c *server.Config) {
	c.Hooks = append(c.Hooks, s.n.Hook())
	c.Operations = append(c.Operations, s.n.Operations()...)
	c.Attach = append(c.Attach, func(st operation.Store) { s.n.Attach(st) })
}

// observe registers the outbox's metrics in reg and returns the readiness
// check of its backlog: ready while fewer than highWater notifications
// wait. The backlog is counted in the store, within a second.
func (s *subscriptions) observe(reg *metrics.Registry, highWater int) health.Check {
	var last atomic.Int64 // the last count made
	count := func(ctx context.Context) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		n, err := s.n.Backlog(ctx)
		if err != nil {
			return 0, fmt.Errorf("subscription outbox: %w", err)
		}
		last.Store(int64(n))
		return n, nil
	}
	// A scrape whose count fails reports the last count made: a value
	// below it would read as an outbox drained, and end the alert on a
	// backlog whose count now takes too long.
	reg.SubscriptionOutbox(func() int {
		if n, err := count(context.Background()); err == nil {
			return n
		}
		return int(last.Load())
	}, s.n.Failures)
	return health.QueueCounted("subscription-outbox", highWater, count)
}

// typeList is a comma-separated list of resource types, as a flag.
type typeList []string

func (l *typeList) String() string { return strings.Join(*l, ",") }

func (l *typeList) Set(v string) error {
	for i, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		// A misspelt type would leave Subscriptions on the meant one
		// refused, and its writes unnotified, with nothing said at start.
		if !fhir.IsResourceType(t) {
			return &valueError{
				err:     fmt.Errorf("%q is not a resource type", t),
				without: fmt.Sprintf("type %d of the list is not a resource type", i+1),
			}
		}
		*l = append(*l, t)
	}
	return nil
}
