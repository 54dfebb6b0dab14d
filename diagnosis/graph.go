package diagnosis

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/traceport/traceport/topology"
)

// DependencyLink is one edge in Jaeger's /api/dependencies shape
// (jaeger-idl model.DependencyLink), with source telling how it was seen.
type DependencyLink struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
	Source    string `json:"source,omitempty"`
	// Lost marks a peer_hint link whose calls never reached a SERVER span,
	// directly or through the caller's own sidecar, while the callee
	// reports spans: its server side is missing (see topology.Edge.Lost).
	Lost bool `json:"lost,omitempty"`
}

// Link sources.
const (
	SourceParentChild = "parent_child" // a child span whose parent span arrived: Jaeger shows it
	SourcePeerHint    = "peer_hint"    // only CLIENT spans name the callee: Jaeger does not
)

// dependencyLinks converts edges to Jaeger's shape: the linked edges, what
// Jaeger's own dependency graph would show; with hints, also the edges only
// CLIENT spans' peer attributes show, their count being those spans.
func dependencyLinks(edges []topology.Edge, hints bool) []DependencyLink {
	out := []DependencyLink{}
	for _, e := range edges {
		switch {
		case e.Calls > 0:
			out = append(out, DependencyLink{Parent: e.Parent, Child: e.Child, CallCount: e.Calls, Source: SourceParentChild})
		case hints && e.Hinted > 0:
			out = append(out, DependencyLink{Parent: e.Parent, Child: e.Child, CallCount: e.Hinted, Source: SourcePeerHint, Lost: e.Lost()})
		}
	}
	return out
}

// serveDependencies serves GET /api/dependencies as Jaeger's query API
// does: {"data":[{"parent","child","callCount"}],"total":…}. endTs and
// lookback are accepted and ignored: the window is the tracker's.
// ?hints=true adds the edges seen only in CLIENT spans' peer attributes.
func (d *Diagnosis) serveDependencies(w http.ResponseWriter, r *http.Request) {
	links := dependencyLinks(d.topo.Edges(), r.URL.Query().Get("hints") == "true")
	writeJSON(w, struct {
		Data   []DependencyLink `json:"data"`
		Total  int              `json:"total"`
		Limit  int              `json:"limit"`
		Offset int              `json:"offset"`
		Errors []string         `json:"errors"`
	}{Data: links, Total: len(links)})
}

// serveGraph serves the dependency graph alone (GET /ui/graph.svg).
func (d *Diagnosis) serveGraph(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	writeSVG(w, d.topo.Edges(), d.topo.Health())
}

// Layout of the SVG graph, in pixels. Node boxes are as wide as the
// longest (clipped) name needs; a workload's sidecar and app share a
// column, so a gateway calling a chain of five workloads is six columns:
// at most 1,336 px, which a 1,400 px window shows at full scale.
const (
	nodeH          = 34
	minNodeW       = 140
	maxNodeW       = 176
	nameClip       = 22 // characters of a name shown in its box; its <title> has all
	colGap, rowGap = 48, 22
	margin         = 20 // room for the curve of an app's call to its own sidecar
	bulge          = 16 // how far a call within a column curves out of it
)

type pos struct{ x, y int }

// layout places nodes: one column per layer of workloads (see layers),
// workloads sorted by name within a column, a workload's sidecar (the
// service named as the workload) above its app. It returns the positions,
// the node width and the drawing's size.
func layout(edges []topology.Edge, workload map[string]string) (at map[string]pos, nodeW, width, height int) {
	unit := func(n string) string {
		if w := workload[n]; w != "" {
			return w
		}
		return n
	}
	units := map[string]bool{}
	members := map[string][]string{}
	var unitEdges []topology.Edge
	longest := 0
	for _, e := range edges {
		for _, n := range []string{e.Parent, e.Child} {
			if u := unit(n); !slices.Contains(members[u], n) {
				members[u] = append(members[u], n)
				units[u] = true
				longest = max(longest, min(nameClip, len([]rune(n))))
			}
		}
		if unit(e.Parent) != unit(e.Child) {
			unitEdges = append(unitEdges, topology.Edge{Parent: unit(e.Parent), Child: unit(e.Child)})
		}
	}
	// About 7 px per character of bold 12 px sans-serif, and padding.
	nodeW = min(maxNodeW, max(minNodeW, longest*7+16))
	if len(units) == 0 {
		return nil, nodeW, 2*margin + 2*minNodeW + colGap, 2*margin + nodeH
	}
	layer := layers(units, unitEdges)
	cols := map[int][]string{}
	maxCol, maxRows := 0, 0
	for u, d := range layer {
		cols[d] = append(cols[d], u)
		maxCol = max(maxCol, d)
	}
	at = map[string]pos{}
	for d, us := range cols {
		sort.Strings(us)
		row := 0
		for _, u := range us {
			ns := members[u]
			sort.Slice(ns, func(i, j int) bool { return ns[i] == u || ns[j] != u && ns[i] < ns[j] })
			for _, n := range ns {
				at[n] = pos{margin + d*(nodeW+colGap), margin + row*(nodeH+rowGap)}
				row++
			}
		}
		maxRows = max(maxRows, row)
	}
	width = 2*margin + (maxCol+1)*(nodeW+colGap) - colGap
	height = 2*margin + maxRows*(nodeH+rowGap) - rowGap + 40
	return at, nodeW, width, height
}

// writeSVG draws the edges as an SVG that scales to its container (viewBox,
// width 100%, never wider than its natural size). Linked edges are solid
// and labelled with their calls; calls that reached a server only through
// the caller's own sidecar are dotted grey (healthy); other hinted-only
// edges are dashed, red when the callee reports spans (its server side was
// lost), grey when it does not (uninstrumented). Nodes are coloured by
// orphan ratio. The output depends on its input only.
func writeSVG(w io.Writer, edges []topology.Edge, health []topology.ServiceHealth) error {
	ratio := map[string]topology.ServiceHealth{}
	for _, h := range health {
		ratio[h.Service] = h
	}
	workload := map[string]string{}
	for _, h := range health {
		workload[h.Service] = h.Workload
	}
	at, nodeW, width, height := layout(edges, workload)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="dependency-graph" viewBox="0 0 %d %d" width="100%%" style="max-width:%dpx;height:auto" font-family="sans-serif" font-size="12">`+"\n", width, height, width)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>` + "\n")
	if len(at) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666">No service-to-service edges seen in the window.</text>`+"\n", margin, margin+nodeH/2)
	}
	for _, e := range edges {
		p, c := at[e.Parent], at[e.Child]
		path, lx, ly := edgePath(p, c, nodeW)
		kind, stroke, dash, label, title := edgeLook(e)
		fmt.Fprintf(&b, `<g class="edge %s" data-parent="%s" data-child="%s"><title>%s</title><path d="%s" fill="none" stroke="%s" stroke-width="1.6"%s marker-end="url(#arrow)"/>`,
			kind, esc(e.Parent), esc(e.Child), esc(title), path, stroke, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text></g>`+"\n", lx, ly, stroke, label)
	}
	names := make([]string, 0, len(at))
	for n := range at {
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
			p.x+8, p.y+14, esc(clip(n, nameClip)), p.x+8, p.y+28, esc(sub))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// edgeLook is how an edge is drawn: its class, colour, dash and label,
// and the <title> that says what it means.
func edgeLook(e topology.Edge) (kind, stroke, dash, label, title string) {
	kind, stroke, dash, label = "linked", "#333", "", fmt.Sprintf("%d", e.Calls)
	title = fmt.Sprintf("%s → %s: %d calls linked by parent span", e.Parent, e.Child, e.Calls)
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
		if e.ChildReports {
			title = fmt.Sprintf("%s → %s: %d CLIENT spans name it; their calls are still within the grace period", e.Parent, e.Child, e.Hinted)
		}
	}
	return kind, stroke, dash, label, title
}

// edgePath routes an edge from node p to node c: a curve to the next
// column, along the row gap when it skips columns (not through boxes),
// out of the side within a column, below the nodes back to an earlier
// column. lx, ly place its label.
func edgePath(p, c pos, nodeW int) (path string, lx, ly int) {
	x1, y1 := p.x+nodeW, p.y+nodeH/2
	x2, y2 := c.x, c.y+nodeH/2
	lx, ly = (x1+x2)/2, (y1+y2)/2-4
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
	case c.x == p.x && c.y > p.y: // down the column (a sidecar to its app): bulge right
		xr := p.x + nodeW
		path = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", xr, p.y+nodeH*3/4, xr+bulge, p.y+nodeH*3/4, xr+bulge, c.y+nodeH/4, xr, c.y+nodeH/4)
		lx, ly = xr+14, (p.y+c.y+nodeH)/2+4
	case c.x == p.x && c.y < p.y: // up the column (an app to its own sidecar): bulge left
		path = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", p.x, p.y+nodeH/4, p.x-bulge, p.y+nodeH/4, p.x-bulge, c.y+nodeH*3/4, p.x, c.y+nodeH*3/4)
		lx, ly = p.x-14, (p.y+c.y+nodeH)/2+4
	default: // a call back to an earlier column (a cycle): loop below the nodes
		low := max(p.y, c.y) + nodeH + rowGap/2 + 10
		path = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", p.x+nodeW/2, p.y+nodeH, p.x+nodeW/2, low, c.x+nodeW/2, low, c.x+nodeW/2, c.y+nodeH)
		lx, ly = (p.x+c.x+nodeW)/2, low-4
	}
	return path, lx, ly
}

// layers gives each node its column: the longest call chain leading to it
// once cycles are broken. A depth-first walk from the services nobody calls
// (then from the rest, by name) drops the edges that close a cycle — in a
// mesh, app ↔ own sidecar is one in every instrumented workload — so that
// every node in column d > 0 has a caller in column d-1: no empty columns.
func layers(nodes map[string]bool, edges []topology.Edge) map[string]int {
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string][]string{}
	called := map[string]bool{}
	for _, e := range edges {
		if e.Parent != e.Child {
			out[e.Parent] = append(out[e.Parent], e.Child)
			called[e.Child] = true
		}
	}
	for _, cs := range out {
		sort.Strings(cs)
	}
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var post []string // reverse topological order of the acyclic part
	forward := map[[2]string]bool{}
	var visit func(n string)
	visit = func(n string) {
		state[n] = open
		for _, c := range out[n] {
			switch state[c] {
			case unseen:
				forward[[2]string{n, c}] = true
				visit(c)
			case done:
				forward[[2]string{n, c}] = true
			} // open: c is on the walk's stack, n → c closes a cycle
		}
		state[n] = done
		post = append(post, n)
	}
	for _, roots := range []bool{true, false} {
		for _, n := range names {
			if state[n] == unseen && called[n] != roots {
				visit(n)
			}
		}
	}
	layer := make(map[string]int, len(names))
	for _, n := range names {
		layer[n] = 0
	}
	for i := len(post) - 1; i >= 0; i-- {
		n := post[i]
		for _, c := range out[n] {
			if forward[[2]string{n, c}] {
				layer[c] = max(layer[c], layer[n]+1)
			}
		}
	}
	return layer
}

func esc(s string) string { return html.EscapeString(s) }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
