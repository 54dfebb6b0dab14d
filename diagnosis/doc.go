// Package diagnosis tells an operator which of the mesh's trace paths are
// silent or losing spans: the findings of GET /api/sources (a workload
// whose sidecar or app path went quiet), trace health (GET /api/health),
// the dependency preview in Jaeger's shape (GET /api/dependencies), the
// dependency graph it draws as SVG (GET /ui/graph.svg) and the page at GET /
// that shows them together. It reads the receiver's source table
// (SourceTable) and the topology tracker (Topology); it counts nothing
// itself.
package diagnosis
