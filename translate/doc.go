// Package translate converts trace wire formats (Zipkin v1/v2 JSON, Zipkin
// proto3, Jaeger api_v2, OTLP) to and from traceport's normal model,
// pdata's ptrace.Traces, with pure functions: no I/O, no metrics, no globals.
// Jaeger api_v2 is mapped by the Collector's translator (contrib
// pkg/translator/jaeger), whose HTTP-convention feature gates are the one
// process-wide setting this package reads; it sets none (main does).
//
// OTLP is not translated at all on the hot path: ScanOTLP validates a
// serialized ExportTraceServiceRequest and counts its spans per service
// without decoding it, so it can be forwarded byte for byte; ScanOTLPVisit
// shows the same walk to an OTLPVisitor (trace health), so a request is
// walked once. NextField and EachField are the field readers for code that
// picks or cuts fields of a validated request.
package translate
