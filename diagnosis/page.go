package diagnosis

import (
	"html/template"
	"strconv"
	"time"

	"github.com/traceport/traceport/topology"
)

// pageData is what the page shows.
type pageData struct {
	Report SourcesReport
	Health []topology.ServiceHealth
	Edges  []topology.Edge
	Graph  template.HTML // the dependency graph, inline SVG
	Stats  topology.Stats
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
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
