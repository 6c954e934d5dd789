// Package metrics exposes carefhir's metrics in the Prometheus text format,
// through github.com/prometheus/client_golang.
//
// A Registry holds the Go runtime and process metrics and the HTTP request
// metrics (see Instrument). The others are registered only when a component
// provides them, so that /metrics never shows a series for something that
// is not running: the SQLite engine (SQLite, StoreObserver), the audit
// trail's buffer (AuditBuffer), the subscription outbox
// (SubscriptionOutbox) and bulk export jobs (ExportJobs). Every label has a
// bounded set of values: no ids, no raw URLs.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every carefhir metric.
const namespace = "carefhir"

// Registry holds carefhir's metrics.
type Registry struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// latencyBuckets span a read from SQLite's page cache (well under a
// millisecond) to a large transaction Bundle (many seconds), in seconds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// New returns a Registry with the Go runtime, process and HTTP request
// metrics.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	r.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "http_requests_total",
		Help: "HTTP requests served, by FHIR interaction, resource type and status code.",
	}, []string{"interaction", "type", "code"})
	r.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by FHIR interaction, resource type and status class (2xx, 4xx, 5xx).",
		Buckets: latencyBuckets,
	}, []string{"interaction", "type", "class"})
	r.reg.MustRegister(r.requests, r.latency)
	return r
}

// Handler serves the metrics in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Counter is a count that only goes up.
type Counter interface {
	Inc()
	Add(float64)
}

// queue registers a gauge read from depth at every scrape, and returns a
// counter of the items the component gave up on.
func (r *Registry) queue(gauge, gaugeHelp, counter, counterHelp string, depth func() int) Counter {
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: gauge, Help: gaugeHelp},
		func() float64 { return float64(depth()) }))
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: counter, Help: counterHelp})
	r.reg.MustRegister(c)
	return c
}

// AuditBuffer registers the audit trail's metrics: carefhir_audit_buffer_depth,
// the requests whose AuditEvents wait to be written, read from depth at
// every scrape, and carefhir_audit_events_dropped_total, the returned
// counter, which the trail increments for every AuditEvent it could not
// record. Call it once, when the audit trail starts.
func (r *Registry) AuditBuffer(depth func() int) (dropped Counter) {
	return r.queue("audit_buffer_depth", "Requests whose AuditEvents wait to be written.",
		"audit_events_dropped_total", "AuditEvents that could not be written and were dropped.", depth)
}

// SubscriptionOutbox registers the subscription outbox's metrics, read at
// every scrape: carefhir_subscription_outbox_backlog from backlog and
// carefhir_subscription_delivery_failures_total from failures, a count
// the deliverer keeps. Call it once, when subscriptions start.
func (r *Registry) SubscriptionOutbox(backlog func() int, failures func() int64) {
	r.counted("subscription_outbox_backlog", "Subscription notifications waiting to be delivered.",
		"subscription_delivery_failures_total", "Subscription notification deliveries that failed.", backlog, failures)
}

// ExportJobs registers the bulk export metrics, read at every scrape:
// carefhir_export_jobs_running from running and
// carefhir_export_jobs_failed_total from failed, a count the exporter
// keeps. Call it once, when bulk export starts.
func (r *Registry) ExportJobs(running func() int, failed func() int64) {
	r.counted("export_jobs_running", "Bulk export jobs in progress.",
		"export_jobs_failed_total", "Bulk export jobs that failed.", running, failed)
}

// counted registers a gauge read from depth and a counter read from count
// at every scrape.
func (r *Registry) counted(gauge, gaugeHelp, counter, counterHelp string, depth func() int, count func() int64) {
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: gauge, Help: gaugeHelp},
		func() float64 { return float64(depth()) }))
	r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: counter, Help: counterHelp},
		func() float64 { return float64(count()) }))
}

// StoreObserver records the latency of store operations and, for engines
// that commit writes in groups, the size of each group.
type StoreObserver struct {
	ops   *prometheus.HistogramVec
	batch prometheus.Histogram
}

// StoreObserver registers carefhir_store_operation_duration_seconds (by
// engine and operation) and carefhir_store_commit_writes (writes per group
// commit) and returns their observer. Call it once, for the engine served.
func (r *Registry) StoreObserver(engine string) *StoreObserver {
	o := &StoreObserver{
		ops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_operation_duration_seconds",
			Help:        "Time a store operation took, by operation (read, vread, history, search, find, put, transact).",
			ConstLabels: prometheus.Labels{"engine": engine},
			Buckets:     latencyBuckets,
		}, []string{"op"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_commit_writes",
			Help:        "Writes committed together in one transaction (group commit).",
			ConstLabels: prometheus.Labels{"engine": engine},
			Buckets:     prometheus.ExponentialBuckets(1, 2, 9), // 1 to 256
		}),
	}
	r.reg.MustRegister(o.ops, o.batch)
	return o
}

// Operation records one store operation.
func (o *StoreObserver) Operation(op string, took time.Duration) {
	o.ops.WithLabelValues(op).Observe(took.Seconds())
}

// Commit records one group commit of writes writes.
func (o *StoreObserver) Commit(writes int) { o.batch.Observe(float64(writes)) }

// SQLiteStats is what the SQLite engine reports at each scrape.
type SQLiteStats struct {
	QueueDepth              int
	DatabaseBytes, WALBytes int64
}

// SQLite registers the SQLite engine's gauges, read from stats at every
// scrape: carefhir_sqlite_write_queue_depth and carefhir_sqlite_file_bytes
// (by file: database, wal).
func (r *Registry) SQLite(stats func() SQLiteStats) {
	r.reg.MustRegister(&sqliteCollector{stats: stats})
}

var (
	queueDesc = prometheus.NewDesc(namespace+"_sqlite_write_queue_depth", "Writes waiting for the SQLite writer.", nil, nil)
	filesDesc = prometheus.NewDesc(namespace+"_sqlite_file_bytes", "Size of the SQLite database file and of its write-ahead log.", []string{"file"}, nil)
)

// sqliteCollector reads the engine's stats once per scrape for all its
// gauges.
type sqliteCollector struct{ stats func() SQLiteStats }

func (c *sqliteCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- filesDesc
}

func (c *sqliteCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(s.QueueDepth))
	ch <- prometheus.MustNewConstMetric(filesDesc, prometheus.GaugeValue, float64(s.DatabaseBytes), "database")
	ch <- prometheus.MustNewConstMetric(filesDesc, prometheus.GaugeValue, float64(s.WALBytes), "wal")
}
