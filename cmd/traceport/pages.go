package main

import (
	"bytes"
	"flag"
	"html/template"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/traceport/traceport/receiver"
	"github.com/traceport/traceport/topology"
)

// diagnoseConfig is the part of the configuration for the diagnosis pages
// and trace health (GET /, /api/sources, /api/dependencies, /api/health).
type diagnoseConfig struct {
	SilenceAfter time.Duration
	OrphanGrace  time.Duration
	HealthWindow time.Duration
	// HealthSampleRatio is the share of traces watched for trace health.
	HealthSampleRatio float64
}

func defaultDiagnoseConfig() diagnoseConfig {
	return diagnoseConfig{SilenceAfter: 5 * time.Minute, OrphanGrace: 30 * time.Second, HealthWindow: 5 * time.Minute, HealthSampleRatio: 0.25}
}

// register binds the settings to their flags (and so to TRACEPORT_* and
// the YAML file, which follow the flag names).
func (d *diagnoseConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&d.SilenceAfter, "silence-after", d.SilenceAfter, "a source (service × protocol) silent this long is stale; /api/sources flags a workload whose sidecar or app path went silent")
	fs.DurationVar(&d.OrphanGrace, "orphan-grace", d.OrphanGrace, "how long a span waits for its parent (and a trace for its root) before it counts as an orphan (rootless)")
	fs.DurationVar(&d.HealthWindow, "health-window", d.HealthWindow, "sliding window of the orphan ratios and of the dependency preview")
	fs.Float64Var(&d.HealthSampleRatio, "health-sample-ratio", d.HealthSampleRatio, "share of traces (chosen by trace id, each whole) that trace health and the dependency preview watch; 1 watches all, at about 0.5 µs of CPU per span")
}

func (d diagnoseConfig) check() []string {
	var bad []string
	if d.SilenceAfter <= 0 {
		bad = append(bad, "silence-after: want > 0")
	}
	if d.OrphanGrace <= 0 {
		bad = append(bad, "orphan-grace: want > 0")
	}
	if d.HealthSampleRatio <= 0 || d.HealthSampleRatio > 1 {
		bad = append(bad, "health-sample-ratio: want more than 0 and at most 1")
	}
	if d.HealthWindow < d.OrphanGrace {
		bad = append(bad, "health-window: want at least orphan-grace")
	}
	return bad
}

// pages serves the diagnosis endpoints on the one port. The receiver is
// attached after it is built, since it needs pages in its Config first.
type pages struct {
	mux  *http.ServeMux
	topo *topology.Tracker
	opts receiver.SourcesOptions
	rc   atomic.Pointer[receiver.Receiver]
}

func newPages(topo *topology.Tracker, silenceAfter time.Duration) *pages {
	p := &pages{
		mux:  http.NewServeMux(),
		topo: topo,
		opts: receiver.SourcesOptions{SilenceAfter: silenceAfter, Workload: topo.Workload, MeshCallee: topo.MeshCallee},
	}
	p.mux.HandleFunc("GET /{$}", p.index)
	p.mux.HandleFunc("GET /api/sources", func(w http.ResponseWriter, r *http.Request) {
		if rc := p.rc.Load(); rc != nil {
			rc.SourcesHandler(p.opts).ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})
	p.mux.Handle("GET /api/dependencies", topo.DependenciesHandler())
	p.mux.Handle("GET /api/health", topo.HealthHandler())
	p.mux.Handle("GET /ui/graph.svg", topo.SVGHandler())
	return p
}

func (p *pages) attach(rc *receiver.Receiver) { p.rc.Store(rc) }

func (p *pages) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// index is GET /: findings, the dependency graph, sources and trace health
// on one self-contained page (inline SVG and CSS, no script, no CDN).
func (p *pages) index(w http.ResponseWriter, r *http.Request) {
	rc := p.rc.Load()
	if rc == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	edges := p.topo.Edges()
	health := p.topo.Health()
	var svg bytes.Buffer
	topology.WriteSVG(&svg, edges, health)
	data := struct {
		Report receiver.SourcesReport
		Health []topology.ServiceHealth
		Edges  []topology.Edge
		Graph  template.HTML
		Stats  topology.Stats
	}{rc.SourcesReport(p.opts), health, edges, template.HTML(svg.String()), p.topo.Stats()}
	var b bytes.Buffer
	if err := indexPage.Execute(&b, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

var indexPage = template.Must(template.New("index").Funcs(template.FuncMap{
	"pct": formatPct,
	"ago": func(now, t time.Time) string { return now.Sub(t).Round(time.Second).String() },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="15">
<title>traceport — sources and dependencies</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#263238}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;font-size:13px} th,td{border:1px solid #cfd8dc;padding:3px 8px;text-align:left}
th{background:#eceff1} td.n{text-align:right} tr.stale td{color:#b71c1c} tr.probe td{color:#78909c}
.finding{background:#ffebee;border-left:4px solid #c62828;padding:.5em .8em;margin:.4em 0}
.ok{background:#e8f5e9;border-left:4px solid #2e7d32;padding:.5em .8em}
.graph{overflow-x:auto;border:1px solid #cfd8dc;padding:4px} small{color:#607d8b}
</style></head><body>
<h1>traceport</h1><small>{{.Report.Time.UTC.Format "2006-01-02 15:04:05 UTC"}} · a path silent for {{.Report.SilenceAfter}} is stale · refreshes every 15 s</small>
<h2>Findings</h2><div id="findings">
{{range .Report.Findings}}<div class="finding" data-workload="{{.Workload}}" data-kind="{{.Kind}}"><b>{{.Workload}}</b> ({{.Kind}}): {{.Message}}</div>
{{else}}<div class="ok">Every workload that reports on one path also reports on the other.</div>{{end}}</div>
<h2>Dependencies</h2>
<small>Solid: calls linked by parent span (what Jaeger draws). Dotted grey: an app's calls that reached the callee through its own sidecar (healthy). Dashed red: CLIENT spans name a callee that reports spans, but no call reached a server span, directly or through the caller's sidecar (its server side was lost). Dashed grey: the callee reports no spans. A workload's sidecar and app share a column; nodes are coloured by orphan share.</small>
<div class="graph">{{.Graph}}</div>
<h2>Sources</h2>
<table id="sources"><thead><tr><th>workload</th><th>service</th><th>path</th><th>protocol</th><th>encoding</th><th>spans</th><th>requests</th><th>last seen</th><th>clients</th></tr></thead><tbody>
{{$now := .Report.Time}}{{range .Report.Sources}}<tr class="{{if .Stale}}stale{{end}}{{if .Probe}} probe{{end}}" data-service="{{.Service}}" data-protocol="{{.Protocol}}"><td>{{.Workload}}</td><td>{{.Service}}</td><td>{{.Path}}</td><td>{{.Protocol}}</td><td>{{.Encoding}}</td><td class="n">{{.Spans}}</td><td class="n">{{.Requests}}</td><td>{{ago $now .LastSeen}} ago{{if .Stale}} (stale){{end}}</td><td>{{range $i, $c := .Clients}}{{if $i}}, {{end}}{{$c}}{{end}}{{if .MoreClients}} +{{.MoreClients}}{{end}}</td></tr>
{{else}}<tr><td colspan="9">nothing received yet</td></tr>{{end}}</tbody></table>
<h2>Trace health</h2>
<table id="health"><thead><tr><th>service</th><th>workload</th><th>orphan spans</th><th>of spans</th><th>orphan share</th><th>rootless traces</th><th>of traces</th><th>rootless share</th></tr></thead><tbody>
{{range .Health}}<tr data-service="{{.Service}}"><td>{{.Service}}</td><td>{{.Workload}}</td><td class="n">{{.Orphans}}</td><td class="n">{{.Spans}}</td><td class="n">{{pct .Ratio}}</td><td class="n">{{.Rootless}}</td><td class="n">{{.Traces}}</td><td class="n">{{pct .RootRate}}</td></tr>
{{else}}<tr><td colspan="8">no verdicts yet (a span is judged once its parent arrived or its grace period ended)</td></tr>{{end}}</tbody></table>
<small>Table fill: {{.Stats.Spans}} span ids, {{.Stats.Pending}} waiting for a parent, {{.Stats.Traces}} traces; evicted early: {{range $k, $v := .Stats.Evicted}}{{$k}} {{$v}} {{end}}</small>
{{if .Report.Rejected}}<h2>Refused</h2>
<table id="rejected"><thead><tr><th>protocol</th><th>reason</th><th>requests</th><th>spans</th></tr></thead><tbody>
{{range .Report.Rejected}}<tr><td>{{.Protocol}}</td><td>{{.Reason}}</td><td class="n">{{.Requests}}</td><td class="n">{{.Spans}}</td></tr>
{{end}}</tbody></table>{{end}}
<p><small>JSON: <a href="/api/sources">/api/sources</a> · <a href="/api/dependencies?hints=true">/api/dependencies</a> · <a href="/api/health">/api/health</a> · <a href="/metrics">/metrics</a></small></p>
</body></html>
`))

func formatPct(f float64) string {
	switch {
	case f == 0:
		return "0%"
	case f < 0.001:
		return "<0.1%"
	}
	return strconv.FormatFloat(100*f, 'f', 1, 64) + "%"
}
