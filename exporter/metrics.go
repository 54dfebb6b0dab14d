package exporter

import "github.com/prometheus/client_golang/prometheus"

// metrics are the exporter's Prometheus metrics. The span accounts are not
// kept in prometheus counters: accounts reads them from the Exporter under
// its lock at scrape time, so pushed + replayed = exported + dropped + queue
// + inflight holds in every scrape.
type metrics struct {
	accounts   *accounts
	duration   *prometheus.HistogramVec
	batchSpans prometheus.Histogram
	failures   *prometheus.CounterVec
}

func newMetrics(e *Exporter, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		accounts: newAccounts(e),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "traceport_export_duration_seconds",
			Help:    "Duration of one export attempt to Jaeger, by result: ok, retryable (failed, worth retrying) or non_retryable (failed for good).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"exporter", "result"}),
		batchSpans: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "traceport_export_batch_spans",
			Help:    "Spans per batch taken off the queue for export.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 .. 65536
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "traceport_export_failures_total",
			Help: "Failed export attempts by code (gRPC status code name, HTTP status, transport or timeout), whether retried or not.",
		}, []string{"exporter", "code"}),
	}
	if reg == nil {
		return m, nil
	}
	// m.accounts is not registered here: see Exporter.Accounts.
	cs := []prometheus.Collector{m.duration, m.batchSpans, m.failures}
	if w := e.wal; w != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "traceport_queue_disk_bytes",
				Help: "Bytes the persistent queue's segment files take in --queue-dir, settled records included until their segment is deleted.",
			}, func() float64 { n, _ := w.usage(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "traceport_queue_disk_capacity_bytes",
				Help: "--queue-max-bytes: pushes are refused (queue_full) when the persistent queue would grow beyond it.",
			}, func() float64 { _, n := w.usage(); return float64(n) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "traceport_queue_corrupt_bytes_total",
				Help: "Bytes of the persistent queue skipped at start as corrupt or torn (bad length or checksum), e.g. the tail a crash cut off.",
			}, func() float64 { return float64(w.corruptBytes()) }),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// accounts collects the span accounts and queue gauges from one snapshot.
type accounts struct {
	e                          *Exporter
	pushed, replayed, exported *prometheus.Desc
	dropped, retries           *prometheus.Desc
	queued, capacity, inflight *prometheus.Desc
}

func newAccounts(e *Exporter) *accounts {
	return &accounts{
		e: e,
		pushed: prometheus.NewDesc("traceport_exporter_pushed_spans_total",
			"Spans handed to the exporter by the receiver, accepted or not. pushed + replayed always equals exported + dropped + queue + inflight.", nil, nil),
		replayed: prometheus.NewDesc("traceport_queue_replayed_spans_total",
			"Spans found in the persistent queue (--queue-dir) at start, acknowledged to clients by an earlier run and queued again. They count in the accounts like spans received by this run.", nil, nil),
		exported: prometheus.NewDesc("traceport_exported_spans_total",
			`Spans the backend accepted (partial-success rejections excluded); with no endpoint configured, spans discarded as exporter="none".`,
			[]string{"exporter"}, nil),
		dropped: prometheus.NewDesc("traceport_dropped_spans_total",
			"Spans that will never reach the backend, by reason: queue_full (refused at Push, queue at capacity), "+
				"export_failed (retryable failures until the retry time ran out), non_retryable (refused for good by the backend, "+
				"e.g. InvalidArgument, HTTP 400, or partial success), shutdown (refused or left unexported at shutdown).",
			[]string{"reason"}, nil),
		retries: prometheus.NewDesc("traceport_export_retries_total",
			"Export attempts that were retries of a batch after a retryable failure.", []string{"exporter"}, nil),
		queued: prometheus.NewDesc("traceport_queue_spans",
			"Spans waiting in the queue.", nil, nil),
		capacity: prometheus.NewDesc("traceport_queue_capacity_spans",
			"Capacity of the queue in spans; pushes are refused at or above it.", nil, nil),
		inflight: prometheus.NewDesc("traceport_inflight_spans",
			"Spans taken off the queue and being exported or waiting for a retry.", nil, nil),
	}
}

func (a *accounts) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{a.pushed, a.replayed, a.exported, a.dropped, a.retries, a.queued, a.capacity, a.inflight} {
		ch <- d
	}
}

func (a *accounts) Collect(ch chan<- prometheus.Metric) {
	s := a.e.Stats()
	name := a.e.name
	ch <- prometheus.MustNewConstMetric(a.pushed, prometheus.CounterValue, float64(s.Pushed))
	ch <- prometheus.MustNewConstMetric(a.replayed, prometheus.CounterValue, float64(s.Replayed))
	ch <- prometheus.MustNewConstMetric(a.exported, prometheus.CounterValue, float64(s.Exported), name)
	for _, r := range reasonNames { // every reason, zeros included, so alerts see them
		ch <- prometheus.MustNewConstMetric(a.dropped, prometheus.CounterValue, float64(s.Dropped[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(a.retries, prometheus.CounterValue, float64(s.Retries), name)
	ch <- prometheus.MustNewConstMetric(a.queued, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(a.capacity, prometheus.GaugeValue, float64(a.e.cfg.QueueSpans))
	ch <- prometheus.MustNewConstMetric(a.inflight, prometheus.GaugeValue, float64(s.Inflight))
}
