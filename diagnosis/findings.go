package diagnosis

import (
	"sort"
	"time"
)

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

// paths is what one workload sent on each path.
type paths struct {
	services           map[string]bool
	sidecarLast        time.Time
	appLast            time.Time
	hasSidecar, hasApp bool
}

// findings flags silent paths. A workload whose app path is live (spans
// within silenceAfter) is flagged when its sidecar path is stale, or absent
// while some other workload's sidecar path is live (the mesh does report
// here); a workload whose sidecar path is live is flagged when its app
// path, seen before, is stale. An app that never had a sidecar looks like
// an absent one; the message says how sure the finding is, surer when
// meshCallee(workload) says other sidecars route calls to it. Probe
// sources take no part.
func findings(sources []SourceEntry, silenceAfter time.Duration, meshCallee func(workload string) bool, now time.Time) []Finding {
	byWorkload, meshLive := pathsByWorkload(sources)
	live := func(t time.Time) bool { return now.Sub(t) <= silenceAfter }
	ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() }
	out := []Finding{}
	for w, p := range byWorkload {
		f := Finding{Workload: w, Services: p.serviceNames()}
		switch {
		case p.hasApp && live(p.appLast) && !p.hasSidecar && meshLive:
			f.Kind, f.Message = FindingSidecarAbsent, sidecarAbsentMessage(w, meshCallee != nil && meshCallee(w))
		case p.hasApp && live(p.appLast) && p.hasSidecar && !live(p.sidecarLast):
			f.Kind, f.Message = FindingSidecarStale, sidecarStaleMessage(w, ago(p.sidecarLast))
		case p.hasSidecar && live(p.sidecarLast) && p.hasApp && !live(p.appLast):
			f.Kind, f.Message = FindingAppStale, appStaleMessage(w, ago(p.appLast))
		default:
			continue
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out
}

// pathsByWorkload gathers the sources of each workload, and says whether
// any sidecar path is live: whether the mesh reports at all.
func pathsByWorkload(sources []SourceEntry) (byWorkload map[string]*paths, meshLive bool) {
	byWorkload = map[string]*paths{}
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
		if s.Path == pathSidecar {
			p.hasSidecar = true
			p.sidecarLast = latest(p.sidecarLast, s.LastSeen)
			meshLive = meshLive || !s.Stale
		} else {
			p.hasApp = true
			p.appLast = latest(p.appLast, s.LastSeen)
		}
	}
	return byWorkload, meshLive
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (p *paths) serviceNames() []string {
	out := make([]string, 0, len(p.services))
	for s := range p.services {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func sidecarAbsentMessage(workload string, meshCallee bool) string {
	sure := "if this workload runs with an Istio sidecar, its spans never reached traceport"
	if meshCallee {
		sure = "other sidecars route calls to " + workload + " (Envoy's upstream_cluster), so it has a sidecar whose spans never reached traceport"
	}
	return "app spans (OTLP) of " + workload + " arrive but no sidecar spans (Zipkin) ever did, while other sidecars report: " + sure +
		"; check that the pod's egress allows traceport's port and the mesh's tracing address (try `traceport doctor` from the pod)"
}

func sidecarStaleMessage(workload, ago string) string {
	return "app spans (OTLP) of " + workload + " arrive but its sidecar's spans (Zipkin) stopped " + ago +
		" ago: the sidecar's path to traceport is cut (NetworkPolicy, Service port, mesh tracing config)"
}

func appStaleMessage(workload, ago string) string {
	return "sidecar spans (Zipkin) of " + workload + " arrive but its app's spans (OTLP) stopped " + ago +
		" ago: the SDK's exporter cannot reach traceport, or the app stopped tracing"
}
