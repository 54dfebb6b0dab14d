// Package diagnosis tells an operator which of the mesh's trace paths are
// silent or losing spans: the findings of GET /api/sources (a workload
// whose sidecar or app path went quiet), trace health (GET /api/health),
// the dependency preview (GET /api/dependencies) and the page at GET / that
// shows them together. It reads the receiver's source table and the
// topology tracker; it counts nothing itself.
package diagnosis
