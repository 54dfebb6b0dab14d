package receiver

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/traceport/traceport/translate"
)

// Protocols and encodings: the values of the protocol and encoding labels.
const (
	protoZipkin     = "zipkin"
	protoOTLPGRPC   = "otlp_grpc"
	protoOTLPHTTP   = "otlp_http"
	protoJaegerGRPC = "jaeger_grpc"
	protoUnknown    = "unknown" // a request that matched no protocol (404)

	encJSON  = "json"
	encProto = "proto"
)

var allProtocols = []string{protoZipkin, protoOTLPGRPC, protoOTLPHTTP, protoJaegerGRPC, protoUnknown}

// overflowService stands for every service beyond --max-services, so a
// client inventing service names cannot grow the label set without bound.
const overflowService = "_other"

type sourceKey struct{ protocol, encoding, service string }

// source is what traceport has seen from one (protocol, encoding, service).
type source struct {
	spans    atomic.Int64
	requests atomic.Int64
	lastSeen atomic.Int64 // unix nanoseconds
	clients  clientSet    // first client addresses, for GET /api/sources
}

// sources counts every accepted span per source and every refusal per
// reason. It is the one place that counts intake; the exporter counts what
// leaves.
type sources struct {
	maxServices int
	now         func() time.Time

	mu       sync.RWMutex
	bySource map[sourceKey]*source
	services map[string]struct{}
	overflow prometheus.Counter

	rejectedRequests *prometheus.CounterVec
	rejectedSpans    *prometheus.CounterVec

	receivedDesc, lastDesc *prometheus.Desc

	// books makes "count as received, then account in the sink" one step
	// as far as a scrape can tell: ingest holds it for reading from the
	// count until the sink calls accounted (before the sink waits for
	// anything), Collect holds it for writing while it reads received spans
	// and the sink's accounts, so every scrape satisfies received =
	// exported + dropped + queued + in flight, and a scrape never waits
	// for a slow fsync nor makes intake wait for one.
	books     sync.RWMutex
	accounted func()               // books.RUnlock, made once (a method value per request would allocate)
	accounts  prometheus.Collector // the sink's span accounts, may be nil
}

func newSources(maxServices int, accounts prometheus.Collector, reg prometheus.Registerer) *sources {
	s := &sources{
		maxServices: maxServices,
		accounts:    accounts,
		now:         time.Now,
		bySource:    make(map[sourceKey]*source),
		services:    make(map[string]struct{}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "traceport_services_overflow_total",
			Help: "Spans whose service was counted as \"_other\" because --max-services distinct services were already seen.",
		}),
		rejectedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "traceport_rejected_requests_total",
			Help: "Requests refused as a whole, by protocol and reason; none of their spans entered traceport, and the client was told (4xx/5xx or a gRPC error).",
		}, []string{"protocol", "reason"}),
		rejectedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "traceport_rejected_spans_total",
			Help: "Spans refused where their number is known: left out of an otherwise accepted request (partial success) or refused with a decoded request. Not included in traceport_received_spans_total.",
		}, []string{"protocol", "reason"}),
		receivedDesc: prometheus.NewDesc("traceport_received_spans_total",
			"Spans accepted into traceport, by protocol, encoding and service (service.name; \"_other\" beyond --max-services). Every one of them is later exported, dropped (traceport_dropped_spans_total) or still queued.",
			[]string{"protocol", "encoding", "service"}, nil),
		lastDesc: prometheus.NewDesc("traceport_last_received_timestamp_seconds",
			"Unix time of the last span accepted from this protocol and service: alert when a path goes silent.",
			[]string{"protocol", "service"}, nil),
	}
	for _, p := range allProtocols {
		for _, r := range allReasons {
			s.rejectedRequests.WithLabelValues(p, string(r))
			s.rejectedSpans.WithLabelValues(p, string(r))
		}
	}
	s.accounted = s.books.RUnlock
	reg.MustRegister(s, s.overflow, s.rejectedRequests, s.rejectedSpans)
	return s
}

// add counts one accepted request's spans per service.
func (s *sources) add(protocol, encoding string, counts []translate.ServiceCount) {
	now := s.now().UnixNano()
	for _, c := range counts {
		src := s.get(sourceKey{protocol, encoding, c.Service}, int64(c.Spans))
		src.spans.Add(int64(c.Spans))
		src.requests.Add(1)
		src.lastSeen.Store(now)
	}
}

func (s *sources) get(k sourceKey, spans int64) *source {
	s.mu.RLock()
	src := s.bySource[k]
	s.mu.RUnlock()
	if src != nil {
		return src
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.services[k.service]; !known {
		if len(s.services) >= s.maxServices {
			s.overflow.Add(float64(spans))
			k.service = overflowService
		} else {
			s.services[k.service] = struct{}{}
		}
	}
	if src = s.bySource[k]; src == nil {
		src = &source{}
		s.bySource[k] = src
	}
	return src
}

func (s *sources) rejectRequest(protocol string, r reason) {
	s.rejectedRequests.WithLabelValues(protocol, string(r)).Inc()
}

func (s *sources) rejectSpans(protocol string, r reason, n int) {
	if n > 0 {
		s.rejectedSpans.WithLabelValues(protocol, string(r)).Add(float64(n))
	}
}

// SourceStat is what has been accepted from one source.
type SourceStat struct {
	Protocol, Encoding, Service string
	Spans, Requests             int64
	LastSeen                    time.Time
	// Clients are the first client hosts seen (nil: none); MoreClients
	// counts the requests from hosts beyond them.
	Clients     []string
	MoreClients int64
}

// snapshot returns every source, sorted, for logs and diagnosis.
func (s *sources) snapshot() []SourceStat {
	s.mu.RLock()
	out := make([]SourceStat, 0, len(s.bySource))
	for k, src := range s.bySource {
		st := SourceStat{
			Protocol: k.protocol, Encoding: k.encoding, Service: k.service,
			Spans: src.spans.Load(), Requests: src.requests.Load(),
			LastSeen: time.Unix(0, src.lastSeen.Load()),
		}
		st.Clients, st.MoreClients = src.clients.list()
		out = append(out, st)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Encoding != b.Encoding {
			return a.Encoding < b.Encoding
		}
		return a.Service < b.Service
	})
	return out
}

func (s *sources) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.receivedDesc
	ch <- s.lastDesc
	if s.accounts != nil {
		s.accounts.Describe(ch)
	}
}

// Collect reads the atomics directly: the hot path pays for an atomic add,
// not for a label lookup per request.
func (s *sources) Collect(ch chan<- prometheus.Metric) {
	type pk struct{ protocol, service string }
	last := make(map[pk]int64)
	// Read both sides under books, send after: the gatherer reading ch must
	// not hold up intake.
	var metrics []prometheus.Metric
	s.books.Lock()
	if s.accounts != nil {
		collected := make(chan prometheus.Metric, 64)
		go func() { s.accounts.Collect(collected); close(collected) }()
		for m := range collected {
			metrics = append(metrics, m)
		}
	}
	s.mu.RLock()
	for k, src := range s.bySource {
		metrics = append(metrics, prometheus.MustNewConstMetric(s.receivedDesc, prometheus.CounterValue,
			float64(src.spans.Load()), k.protocol, k.encoding, k.service))
		if t := src.lastSeen.Load(); t > last[pk{k.protocol, k.service}] {
			last[pk{k.protocol, k.service}] = t
		}
	}
	s.mu.RUnlock()
	s.books.Unlock()
	for _, m := range metrics {
		ch <- m
	}
	for k, t := range last {
		ch <- prometheus.MustNewConstMetric(s.lastDesc, prometheus.GaugeValue, float64(t)/1e9, k.protocol, k.service)
	}
}
