package diagnosis

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/traceport/traceport/topology"
)

// Topology is what diagnosis reads of the topology tracker
// (*topology.Tracker): trace health, dependencies and the tables' fill over
// its window, and the workload each service belongs to.
type Topology interface {
	Edges() []topology.Edge
	Health() []topology.ServiceHealth
	Stats() topology.Stats
	Window() (window, grace time.Duration)
	Workload(service string) string
	MeshCallee(workload string) bool
}

// Diagnosis serves what it finds on the receiver's port. Create it with
// New once the receiver and the tracker exist, and Register it on the mux
// the receiver serves as Config.Pages.
type Diagnosis struct {
	cfg   Config
	topo  Topology
	table SourceTable
}

// New reads sources from table and trace health and dependencies from
// topo. A zero cfg.SilenceAfter is DefaultConfig's.
func New(cfg Config, topo Topology, table SourceTable) *Diagnosis {
	if cfg.SilenceAfter <= 0 {
		cfg.SilenceAfter = DefaultConfig().SilenceAfter
	}
	return &Diagnosis{cfg: cfg, topo: topo, table: table}
}

// Register adds GET /, /api/sources, /api/dependencies, /api/health and
// /ui/graph.svg to mux.
func (d *Diagnosis) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", d.servePage)
	mux.HandleFunc("GET /api/sources", d.serveSources)
	mux.HandleFunc("GET /api/dependencies", d.serveDependencies)
	mux.HandleFunc("GET /api/health", d.serveHealth)
	mux.HandleFunc("GET /ui/graph.svg", d.serveGraph)
}

func (d *Diagnosis) now() time.Time {
	if d.cfg.Now != nil {
		return d.cfg.Now()
	}
	return time.Now()
}

// serveSources serves GET /api/sources as JSON (SourcesReport).
// ?probe=false leaves out the doctor's probe sources.
func (d *Diagnosis) serveSources(w http.ResponseWriter, r *http.Request) {
	rep := d.Report()
	if strings.EqualFold(r.URL.Query().Get("probe"), "false") {
		kept := rep.Sources[:0]
		for _, s := range rep.Sources {
			if !s.Probe {
				kept = append(kept, s)
			}
		}
		rep.Sources = kept
	}
	writeJSON(w, rep)
}

// servePage is GET /: findings, the dependency graph, sources and trace
// health on one self-contained page (inline SVG and CSS, no script, no CDN).
func (d *Diagnosis) servePage(w http.ResponseWriter, r *http.Request) {
	edges := d.topo.Edges()
	health := d.topo.Health()
	var svg bytes.Buffer
	writeSVG(&svg, edges, health)
	data := pageData{d.Report(), health, edges, template.HTML(svg.String()), d.topo.Stats()}
	var b bytes.Buffer
	if err := page.Execute(&b, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}
