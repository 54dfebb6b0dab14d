package diagnosis

import (
	"sort"
	"time"
)

// ProbeService is the service name of `traceport doctor`'s probe spans: its
// sources are reported apart (probe: true) and never raise a finding.
const ProbeService = "traceport-doctor"

// The two paths a workload's spans take (SourceEntry.Path).
const (
	pathSidecar = "sidecar" // Envoy, which speaks Zipkin
	pathApp     = "app"     // the app's SDK: OTLP or Jaeger
)

// protocolZipkin is the protocol of Zipkin sources, as
// traceport_received_spans_total labels them.
const protocolZipkin = "zipkin"

// SourceTable is what diagnosis reads of the receiver: what each source
// sent and from which client hosts, and what was refused. cmd/traceport
// adapts the receiver to it, so diagnosis depends on no part of the
// receiver.
type SourceTable interface {
	Sources() []SourceStat
	Rejections() []RejectedEntry
}

// SourceStat is what has been accepted from one (protocol, encoding,
// service); the same fields as receiver.SourceStat.
type SourceStat struct {
	Protocol, Encoding, Service string
	Spans, Requests             int64
	LastSeen                    time.Time
	// Clients are the first client hosts seen (nil: none); MoreClients
	// counts the requests from hosts beyond them.
	Clients     []string
	MoreClients int64
}

// SourcesReport is GET /api/sources.
type SourcesReport struct {
	Time         time.Time       `json:"time"`
	SilenceAfter string          `json:"silenceAfter"`
	Sources      []SourceEntry   `json:"sources"`
	Rejected     []RejectedEntry `json:"rejected"`
	Findings     []Finding       `json:"findings"`
}

// SourceEntry is one (service, protocol, encoding).
type SourceEntry struct {
	Service  string    `json:"service"`
	Protocol string    `json:"protocol"`
	Encoding string    `json:"encoding"`
	Workload string    `json:"workload"`
	Path     string    `json:"path"` // "sidecar" (Zipkin: Envoy) or "app" (OTLP, Jaeger: SDKs)
	Probe    bool      `json:"probe,omitempty"`
	Spans    int64     `json:"spans"`
	Requests int64     `json:"requests"`
	LastSeen time.Time `json:"lastSeen"`
	// SilentFor is the time since the last span, rounded to seconds.
	SilentFor string `json:"silentFor"`
	Stale     bool   `json:"stale"`
	// Clients are the first client hosts seen; MoreClients counts the
	// requests from hosts beyond them.
	Clients     []string `json:"clients"`
	MoreClients int64    `json:"moreClients,omitempty"`
}

// RejectedEntry is what was refused from one protocol for one reason
// (receiver.RejectedStat). Requests refused before decoding have no
// service, so refusals are reported per protocol, not per service.
type RejectedEntry struct {
	Protocol string `json:"protocol"`
	Reason   string `json:"reason"`
	Requests int64  `json:"requests"`
	Spans    int64  `json:"spans"`
}

// Report builds GET /api/sources. The matching rule: a service's workload
// is what the topology tracker saw in its spans' resource (an SDK's service
// "auth-api" with k8s.namespace.name or service.namespace "auth" is
// "auth-api.auth"), else the name itself; Istio's sidecars already report
// "<istio.canonical_service>.<namespace>". Zipkin sources are the sidecar
// path, all others the app path; findings says what is flagged.
func (d *Diagnosis) Report() SourcesReport {
	now := d.now()
	rep := SourcesReport{
		Time:         now,
		SilenceAfter: d.cfg.SilenceAfter.String(),
		Sources:      d.entries(now),
		Rejected:     d.table.Rejections(),
	}
	if rep.Rejected == nil {
		rep.Rejected = []RejectedEntry{}
	}
	rep.Findings = findings(rep.Sources, d.cfg.SilenceAfter, d.topo.MeshCallee, now)
	return rep
}

// entries are the receiver's sources with their workload, path and
// staleness, a workload's sources together, sidecar first.
func (d *Diagnosis) entries(now time.Time) []SourceEntry {
	stats := d.table.Sources()
	out := make([]SourceEntry, 0, len(stats))
	for _, st := range stats {
		clients := st.Clients
		if clients == nil {
			clients = []string{}
		}
		out = append(out, SourceEntry{
			Service: st.Service, Protocol: st.Protocol, Encoding: st.Encoding,
			Workload: d.workload(st.Service), Path: pathOf(st.Protocol), Probe: st.Service == ProbeService,
			Spans: st.Spans, Requests: st.Requests, LastSeen: st.LastSeen,
			SilentFor: now.Sub(st.LastSeen).Round(time.Second).String(),
			Stale:     now.Sub(st.LastSeen) > d.cfg.SilenceAfter,
			Clients:   clients, MoreClients: st.MoreClients,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Workload != b.Workload {
			return a.Workload < b.Workload
		}
		if a.Path != b.Path {
			return a.Path > b.Path // sidecar first
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.Encoding < b.Encoding
	})
	return out
}

func (d *Diagnosis) workload(service string) string {
	if w := d.topo.Workload(service); w != "" {
		return w
	}
	return service
}

// pathOf tells sidecar spans from SDK spans by protocol: in a mesh, only
// Envoy speaks Zipkin.
func pathOf(protocol string) string {
	if protocol == protocolZipkin {
		return pathSidecar
	}
	return pathApp
}
