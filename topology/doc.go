// Package topology watches span parent links as they pass through traceport:
// spans whose parent never arrives (orphans), traces whose root never
// arrives, and the service-to-service edges the spans show, all with
// bounded memory. It answers the question Jaeger's empty dependency graph
// raises — which path lost which spans — while traceport still holds them.
// It keeps the data and serves nothing: package diagnosis turns Edges,
// Health and Stats into /api/dependencies, /api/health and the graph.
//
// # What is measured
//
// A span with a parent id waits up to Config.Grace (default 30 s) for that
// parent. If the parent arrives (before or within the grace period) and
// belongs to another service, the pair is an edge parent → child: the same
// rule Jaeger uses for /api/dependencies. If it never arrives, the span is
// an orphan: traceport_orphan_spans_total{service} counts it under the
// child's service. A trace whose first span arrived Grace ago and that has
// no span without a parent is rootless (traceport_rootless_traces_total,
// counted once for every service of the trace, up to
// Config.MaxTraceServices). Ratios are kept over a sliding window
// (Config.Window, default 5 min, in ten buckets).
//
// CLIENT spans also name whom they call — peer.service, Envoy's
// upstream_cluster ("outbound|8000||auth-api.auth.svc.cluster.local" →
// auth-api.auth), server.address, net.peer.name — which gives "hinted"
// edges: calls a client made whether or not the callee's spans arrived.
// Each such call gets a verdict when its grace period ends: answered if a
// SERVER span is its child, or the child of a CLIENT span that is its child
// (an instrumented app's call relayed by its own sidecar, up to eight
// CLIENT spans deep), unanswered otherwise. An edge whose calls were named,
// never linked and never answered, to a callee that reports spans, is the
// picture of a lost server side (Edge.Lost).
//
// # What a high orphan ratio means
//
// Orphans are what make Jaeger say "No service dependencies found": Jaeger
// draws an edge only from a child span to a stored parent. A few orphans
// are normal at the edge of the window (a parent older than the sliding
// memory, a client outside the mesh that propagates context but does not
// report). A ratio that stays high for one service has few usual causes:
//
//   - A blocked sidecar path: the app's SDK reports over OTLP but its Envoy's
//     Zipkin spans never leave the pod (a NetworkPolicy without port 9411,
//     or a Telemetry/meshConfig pointing at a dead address). The app's
//     SERVER spans are children of sidecar spans that never arrive. GET
//     /api/sources flags the workload; `traceport doctor` shows the path.
//   - B3 vs W3C propagation mismatch: the caller sends b3 headers and the
//     callee's SDK reads only traceparent (or the reverse), so the callee
//     starts new traces (rootless elsewhere, orphans nowhere) or, with a
//     partial b3 single-header, keeps a trace id but a parent the caller
//     never reported. Configure both propagators on both sides.
//   - Sampling disagreement: the sidecar samples at 1 % while the app
//     samples everything (or honours a different flag), so the app reports
//     children of parents that were never recorded. Make the app honour the
//     parent's sampled flag (parentbased_* samplers).
//
// # Bounds
//
// Memory is bounded by Config: MaxSpans span ids (~60 bytes each, with the
// parent's key, service, peer and kind a CLIENT span's answer needs) and as
// many hinted calls waiting for their verdict (16 bytes each), MaxPending
// children waiting for a parent, MaxTraces traces waiting for their root
// verdict with at most MaxTraceServices services each (4 bytes a service),
// MaxNames distinct service and peer names (beyond it "_other"). When
// a table is full its oldest entry is dropped early and counted in
// traceport_topology_evicted_total{table}; a span id evicted before its
// late child arrives makes that child a false orphan, so a rising eviction
// count means the ratios are pessimistic and the limits too small for the
// traffic.
//
// The tracker does not walk OTLP requests itself: it is shown the
// receiver's validation walk (Begin, translate.ScanOTLPVisit, End), and
// walks only requests the receiver converted itself (Observe, with
// translate.VisitOTLP). Its cost is then a few map operations per span,
// under one lock per shard (spans are sharded by trace id, so a parent and
// its child always meet in the same shard).
package topology
