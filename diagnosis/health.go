package diagnosis

import (
	"encoding/json"
	"net/http"

	"github.com/traceport/traceport/topology"
)

// serveHealth serves GET /api/health: every service's orphan and rootless
// shares over the window, and the tables' fill.
func (d *Diagnosis) serveHealth(w http.ResponseWriter, r *http.Request) {
	window, grace := d.topo.Window()
	writeJSON(w, struct {
		Window   string                   `json:"window"`
		Grace    string                   `json:"grace"`
		Services []topology.ServiceHealth `json:"services"`
		Tables   topology.Stats           `json:"tables"`
	}{window.String(), grace.String(), d.topo.Health(), d.topo.Stats()})
}

// writeJSON is how every API of the package answers: indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
