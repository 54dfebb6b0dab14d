package topology

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"sort"
	"strings"
)

// DependencyLink is one edge in Jaeger's /api/dependencies shape
// (jaeger-idl model.DependencyLink), with source telling how it was seen.
type DependencyLink struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
	Source    string `json:"source,omitempty"`
}

// Link sources.
const (
	SourceParentChild = "parent_child" // a child span whose parent span arrived: Jaeger shows it
	SourcePeerHint    = "peer_hint"    // only CLIENT spans name the callee: Jaeger does not
)

// DependencyLinks converts edges to Jaeger's shape: the linked edges, what
// Jaeger's own dependency graph would show; with hints, also the edges only
// CLIENT spans' peer attributes show, their count being those spans.
func DependencyLinks(edges []Edge, hints bool) []DependencyLink {
	out := []DependencyLink{}
	for _, e := range edges {
		switch {
		case e.Calls > 0:
			out = append(out, DependencyLink{Parent: e.Parent, Child: e.Child, CallCount: e.Calls, Source: SourceParentChild})
		case hints && e.Hinted > 0:
			out = append(out, DependencyLink{Parent: e.Parent, Child: e.Child, CallCount: e.Hinted, Source: SourcePeerHint})
		}
	}
	return out
}

// DependenciesHandler serves GET /api/dependencies as Jaeger's query API
// does: {"data":[{"parent","child","callCount"}],"total":…}. endTs and
// lookback are accepted and ignored: the window is the tracker's.
// ?hints=true adds the edges seen only in CLIENT spans' peer attributes.
func (t *Tracker) DependenciesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		links := DependencyLinks(t.Edges(), r.URL.Query().Get("hints") == "true")
		writeJSON(w, struct {
			Data   []DependencyLink `json:"data"`
			Total  int              `json:"total"`
			Limit  int              `json:"limit"`
			Offset int              `json:"offset"`
			Errors []string         `json:"errors"`
		}{Data: links, Total: len(links)})
	})
}

// HealthHandler serves GET /api/health: every service's orphan and
// rootless shares over the window, and the tables' fill.
func (t *Tracker) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, struct {
			Window   string          `json:"window"`
			Grace    string          `json:"grace"`
			Services []ServiceHealth `json:"services"`
			Tables   Stats           `json:"tables"`
		}{t.cfg.Window.String(), t.cfg.Grace.String(), t.Health(), t.Stats()})
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Layout of the SVG graph, in pixels.
const (
	nodeW, nodeH = 260, 34
	colGap       = 110
	rowGap       = 26
	margin       = 20
)

// WriteSVG draws the edges as a standalone SVG: one column per depth (a
// service's longest call chain from a service nobody calls), sorted by
// name within a column. Linked edges are solid and labelled with their
// calls; calls that reached a server only through the caller's own sidecar
// are dotted grey (healthy); other hinted-only edges are dashed, red when
// the callee reports spans (its server side was lost), grey when it does
// not (uninstrumented).
// Nodes are coloured by orphan ratio. The output depends on its input only.
func WriteSVG(w io.Writer, edges []Edge, health []ServiceHealth) error {
	ratio := map[string]ServiceHealth{}
	for _, h := range health {
		ratio[h.Service] = h
	}
	nodes := map[string]bool{}
	for _, e := range edges {
		nodes[e.Parent], nodes[e.Child] = true, true
	}
	depth := depths(nodes, edges)
	cols := map[int][]string{}
	maxCol, maxRows := 0, 0
	for n := range nodes {
		d := depth[n]
		cols[d] = append(cols[d], n)
		maxCol = max(maxCol, d)
	}
	type pos struct{ x, y int }
	at := map[string]pos{}
	for d, names := range cols {
		sort.Strings(names)
		maxRows = max(maxRows, len(names))
		for i, n := range names {
			at[n] = pos{margin + d*(nodeW+colGap), margin + i*(nodeH+rowGap)}
		}
	}
	width := 2*margin + (maxCol+1)*(nodeW+colGap) - colGap
	height := 2*margin + max(1, maxRows)*(nodeH+rowGap) - rowGap + 40
	if len(nodes) == 0 {
		width, height = 2*margin+nodeW+colGap, 2*margin+nodeH
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="dependency-graph" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>` + "\n")
	if len(nodes) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666">No service-to-service edges seen in the window.</text>`+"\n", margin, margin+nodeH/2)
	}
	for _, e := range edges {
		p, c := at[e.Parent], at[e.Child]
		x1, y1 := p.x+nodeW, p.y+nodeH/2
		x2, y2 := c.x, c.y+nodeH/2
		var path string
		lx, ly := (x1+x2)/2, (y1+y2)/2-4
		switch {
		case c.x == p.x+nodeW+colGap: // next column
			mid := (x1 + x2) / 2
			path = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", x1, y1, mid, y1, mid, y2, x2, y2)
		case c.x > p.x: // skips columns: run along the gap under the parent's row, not through boxes
			gap := p.y + nodeH + rowGap/2
			a, z := x1+colGap/2, x2-colGap/2
			path = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d L%d,%d C%d,%d %d,%d %d,%d",
				x1, y1, a, y1, x1, gap, a, gap, z, gap, x2, gap, z, y2, x2, y2)
			lx, ly = (a+z)/2, gap-3
		default: // a call back to an earlier column (a cycle): loop below the nodes
			low := max(p.y, c.y) + nodeH + rowGap/2 + 10
			path = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", p.x+nodeW/2, p.y+nodeH, p.x+nodeW/2, low, c.x+nodeW/2, low, c.x+nodeW/2, c.y+nodeH)
			lx, ly = (p.x+c.x+nodeW)/2, low-4
		}
		kind, stroke, dash, label := "linked", "#333", "", fmt.Sprintf("%d", e.Calls)
		title := fmt.Sprintf("%s → %s: %d calls linked by parent span", e.Parent, e.Child, e.Calls)
		switch {
		case e.Calls > 0:
		case e.Answered > 0:
			kind, stroke, dash, label = "relayed", "#90a4ae", ` stroke-dasharray="2 3"`, fmt.Sprintf("%d", e.Answered)
			title = fmt.Sprintf("%s → %s: %d of %d calls reached a SERVER span through %s's own sidecar (CLIENT → CLIENT → SERVER): healthy; Jaeger draws them via the sidecar", e.Parent, e.Child, e.Answered, e.Hinted, e.Parent)
		case e.Lost():
			kind, stroke, dash, label = "broken", "#c62828", ` stroke-dasharray="6 4"`, fmt.Sprintf("%d?", e.Hinted)
			title = fmt.Sprintf("%s → %s: %d CLIENT spans name %s, which reports spans, but no call reached a SERVER span, directly or through the caller's sidecar: the server side (its sidecar path?) is missing or propagation is broken", e.Parent, e.Child, e.Hinted, e.Child)
		default:
			kind, stroke, dash, label = "hinted", "#999", ` stroke-dasharray="6 4"`, fmt.Sprintf("%d?", e.Hinted)
			title = fmt.Sprintf("%s → %s: %d CLIENT spans name it; it reports no spans (not instrumented?)", e.Parent, e.Child, e.Hinted)
		}
		fmt.Fprintf(&b, `<g class="edge %s" data-parent="%s" data-child="%s"><title>%s</title><path d="%s" fill="none" stroke="%s" stroke-width="1.6"%s marker-end="url(#arrow)"/>`,
			kind, esc(e.Parent), esc(e.Child), esc(title), path, stroke, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text></g>`+"\n", lx, ly, stroke, label)
	}
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := at[n]
		fill, sub := "#eceff1", "no verdicts yet"
		if h, ok := ratio[n]; ok && h.Spans > 0 {
			sub = fmt.Sprintf("orphans %.1f%% of %d", 100*h.Ratio, h.Spans)
			switch {
			case h.Ratio >= 0.10:
				fill = "#ffcdd2"
			case h.Ratio >= 0.01:
				fill = "#ffe0b2"
			default:
				fill = "#c8e6c9"
			}
		}
		fmt.Fprintf(&b, `<g class="node" data-service="%s"><title>%s</title><rect x="%d" y="%d" width="%d" height="%d" rx="5" fill="%s" stroke="#546e7a"/>`,
			esc(n), esc(n), p.x, p.y, nodeW, nodeH, fill)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text><text x="%d" y="%d" font-size="10" fill="#37474f">%s</text></g>`+"\n",
			p.x+8, p.y+14, esc(clip(n, 36)), p.x+8, p.y+28, esc(sub))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// depths gives each node its longest distance from a node without
// callers; nodes on cycles stop growing after len(nodes) rounds.
func depths(nodes map[string]bool, edges []Edge) map[string]int {
	d := make(map[string]int, len(nodes))
	for round := 0; round < len(nodes); round++ {
		changed := false
		for _, e := range edges {
			if e.Parent == e.Child {
				continue
			}
			if nd := d[e.Parent] + 1; nd > d[e.Child] && nd < len(nodes) {
				d[e.Child] = nd
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	return d
}

func esc(s string) string { return html.EscapeString(s) }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// SVGHandler serves the graph alone (GET /ui/graph.svg).
func (t *Tracker) SVGHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		WriteSVG(w, t.Edges(), t.Health())
	})
}
