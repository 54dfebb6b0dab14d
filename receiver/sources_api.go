package receiver

import (
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/traceport/traceport/translate"
)

// ProbeService is the service name of `traceport doctor`'s probe spans: its
// sources are reported apart (probe: true) and never raise a finding.
const ProbeService = "traceport-doctor"

// maxClients bounds the client addresses kept per source.
const maxClients = 8

// clientSet is the first maxClients distinct client hosts of a source, and
// how many requests came from others.
type clientSet struct {
	mu    sync.Mutex
	hosts []string
	more  int64
}

func (c *clientSet) note(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		if h == host {
			return
		}
	}
	if len(c.hosts) < maxClients {
		c.hosts = append(c.hosts, host)
		return
	}
	c.more++
}

func (c *clientSet) list() ([]string, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hosts...), c.more
}

// noteClient records the client address (host:port or host) of one
// accepted request for each of its services. ingest calls it.
func (s *sources) noteClient(protocol, encoding string, counts []translate.ServiceCount, addr string) {
	if addr == "" {
		return
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	for _, c := range counts {
		s.get(sourceKey{protocol, encoding, c.Service}, 0).clients.note(host)
	}
}

// SourcesOptions tune the sources report.
type SourcesOptions struct {
	// SilenceAfter: a path that sent nothing for this long is stale [5m].
	SilenceAfter time.Duration
	// Workload names the workload ("<app>.<namespace>") of a service; nil
	// or "": the service name itself (what Istio's sidecars report).
	Workload func(service string) string
	// MeshCallee says whether sidecars were seen calling workload, which
	// turns "no sidecar spans" from a likelihood into a finding.
	MeshCallee func(workload string) bool
	Now        func() time.Time
}

// SourcesReport is GET /api/sources.
type SourcesReport struct {
	Time         time.Time      `json:"time"`
	SilenceAfter string         `json:"silenceAfter"`
	Sources      []SourceEntry  `json:"sources"`
	Rejected     []RejectedStat `json:"rejected"`
	Findings     []Finding      `json:"findings"`
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

// RejectedStat is what was refused from one protocol for one reason.
// Requests refused before decoding have no service, so refusals are
// reported per protocol, not per service.
type RejectedStat struct {
	Protocol string `json:"protocol"`
	Reason   string `json:"reason"`
	Requests int64  `json:"requests"`
	Spans    int64  `json:"spans"`
}

// Finding is one silent path.
type Finding struct {
	Workload string   `json:"workload"`
	Kind     string   `json:"kind"` // FindingSidecarAbsent, FindingSidecarStale or FindingAppStale
	Services []string `json:"services"`
	Message  string   `json:"message"`
}

// Finding kinds.
const (
	// The app's SDK reports, its sidecar never did, while other sidecars do.
	FindingSidecarAbsent = "sidecar_absent"
	// The app's SDK reports, its sidecar stopped SilenceAfter ago.
	FindingSidecarStale = "sidecar_stale"
	// The sidecar reports, the app's SDK stopped SilenceAfter ago.
	FindingAppStale = "app_stale"
)

// pathOf tells sidecar spans from SDK spans by protocol: in a mesh, only
// Envoy speaks Zipkin.
func pathOf(protocol string) string {
	if protocol == protoZipkin {
		return "sidecar"
	}
	return "app"
}

// SourcesReport builds the report. The matching rule: a service's workload
// is opts.Workload(service) (traceport's topology maps an SDK's service
// "auth-api" whose resource has k8s.namespace.name or service.namespace
// "auth" to "auth-api.auth"), else the name itself; Istio's sidecars already
// report "<istio.canonical_service>.<namespace>". Zipkin sources are the
// sidecar path, all others the app path. A workload whose app path is live
// (spans within SilenceAfter) is flagged when its sidecar path is stale, or
// absent while some other workload's sidecar path is live (the mesh does
// report here); a workload whose sidecar path is live is flagged when its
// app path, seen before, is stale. An app that never had a sidecar looks
// like an absent one; the message says how sure the finding is.
func (rc *Receiver) SourcesReport(opts SourcesOptions) SourcesReport {
	if opts.SilenceAfter <= 0 {
		opts.SilenceAfter = 5 * time.Minute
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	workload := func(service string) string {
		if opts.Workload != nil {
			if w := opts.Workload(service); w != "" {
				return w
			}
		}
		return service
	}
	rep := SourcesReport{Time: now, SilenceAfter: opts.SilenceAfter.String(), Sources: []SourceEntry{}, Rejected: []RejectedStat{}, Findings: []Finding{}}

	rc.sources.mu.RLock()
	for k, src := range rc.sources.bySource {
		last := time.Unix(0, src.lastSeen.Load())
		e := SourceEntry{
			Service: k.service, Protocol: k.protocol, Encoding: k.encoding,
			Workload: workload(k.service), Path: pathOf(k.protocol), Probe: k.service == ProbeService,
			Spans: src.spans.Load(), Requests: src.requests.Load(), LastSeen: last,
			SilentFor: now.Sub(last).Round(time.Second).String(),
			Stale:     now.Sub(last) > opts.SilenceAfter,
		}
		e.Clients, e.MoreClients = src.clients.list()
		if e.Clients == nil {
			e.Clients = []string{}
		}
		rep.Sources = append(rep.Sources, e)
	}
	rc.sources.mu.RUnlock()
	sort.Slice(rep.Sources, func(i, j int) bool {
		a, b := rep.Sources[i], rep.Sources[j]
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
	rep.Rejected = rc.sources.rejections()
	rep.Findings = findings(rep.Sources, opts, now)
	return rep
}

// paths is what one workload sent on each path.
type paths struct {
	services           map[string]bool
	sidecarLast        time.Time
	appLast            time.Time
	hasSidecar, hasApp bool
}

func findings(sources []SourceEntry, opts SourcesOptions, now time.Time) []Finding {
	byWorkload := map[string]*paths{}
	meshLive := false
	for _, s := range sources {
		if s.Probe {
			continue
		}
		p := byWorkload[s.Workload]
		if p == nil {
			p = &paths{services: map[string]bool{}}
			byWorkload[s.Workload] = p
		}
		p.services[s.Service] = true
		if s.Path == "sidecar" {
			p.hasSidecar = true
			if s.LastSeen.After(p.sidecarLast) {
				p.sidecarLast = s.LastSeen
			}
			if !s.Stale {
				meshLive = true
			}
		} else {
			p.hasApp = true
			if s.LastSeen.After(p.appLast) {
				p.appLast = s.LastSeen
			}
		}
	}
	live := func(t time.Time) bool { return now.Sub(t) <= opts.SilenceAfter }
	ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() }
	out := []Finding{}
	for w, p := range byWorkload {
		services := make([]string, 0, len(p.services))
		for s := range p.services {
			services = append(services, s)
		}
		sort.Strings(services)
		f := Finding{Workload: w, Services: services}
		switch {
		case p.hasApp && live(p.appLast) && !p.hasSidecar && meshLive:
			f.Kind = FindingSidecarAbsent
			sure := "if this workload runs with an Istio sidecar, its spans never reached traceport"
			if opts.MeshCallee != nil && opts.MeshCallee(w) {
				sure = "other sidecars route calls to " + w + " (Envoy's upstream_cluster), so it has a sidecar whose spans never reached traceport"
			}
			f.Message = "app spans (OTLP) of " + w + " arrive but no sidecar spans (Zipkin) ever did, while other sidecars report: " + sure +
				"; check that the pod's egress allows traceport's port and the mesh's tracing address (try `traceport doctor` from the pod)"
		case p.hasApp && live(p.appLast) && p.hasSidecar && !live(p.sidecarLast):
			f.Kind = FindingSidecarStale
			f.Message = "app spans (OTLP) of " + w + " arrive but its sidecar's spans (Zipkin) stopped " + ago(p.sidecarLast) +
				" ago: the sidecar's path to traceport is cut (NetworkPolicy, Service port, mesh tracing config)"
		case p.hasSidecar && live(p.sidecarLast) && p.hasApp && !live(p.appLast):
			f.Kind = FindingAppStale
			f.Message = "sidecar spans (Zipkin) of " + w + " arrive but its app's spans (OTLP) stopped " + ago(p.appLast) +
				" ago: the SDK's exporter cannot reach traceport, or the app stopped tracing"
		default:
			continue
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out
}

// rejections reads the refusal counters: every (protocol, reason) that
// refused anything.
func (s *sources) rejections() []RejectedStat {
	out := []RejectedStat{}
	var m dto.Metric
	value := func(c interface{ Write(*dto.Metric) error }) int64 {
		m.Reset()
		if c.Write(&m) != nil {
			return 0
		}
		return int64(m.GetCounter().GetValue())
	}
	for _, p := range allProtocols {
		for _, r := range allReasons {
			req := value(s.rejectedRequests.WithLabelValues(p, string(r)))
			spans := value(s.rejectedSpans.WithLabelValues(p, string(r)))
			if req > 0 || spans > 0 {
				out = append(out, RejectedStat{Protocol: p, Reason: string(r), Requests: req, Spans: spans})
			}
		}
	}
	return out
}

// SourcesHandler serves GET /api/sources as JSON (SourcesReport).
// ?probe=false leaves out the doctor's probe sources.
func (rc *Receiver) SourcesHandler(opts SourcesOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		rep := rc.SourcesReport(opts)
		if strings.EqualFold(r.URL.Query().Get("probe"), "false") {
			kept := rep.Sources[:0]
			for _, s := range rep.Sources {
				if !s.Probe {
					kept = append(kept, s)
				}
			}
			rep.Sources = kept
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	})
}
