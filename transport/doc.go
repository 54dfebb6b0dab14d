// Package transport serves one listener for every protocol: it accepts
// connections (connection limit, TLS, deadlines), tells HTTP/1.1 from
// HTTP/2, serves Envoy's Zipkin posts and unary gRPC on its own fast paths,
// and hands everything else to net/http or grpc.Server; it charges request
// bytes to one in-flight budget as they arrive. What a request means
// (decoding, admission, counting, the refusal table) is the handlers'
// (package receiver); transport-level failures reach them as error values
// (ErrOverBudget, ErrCutShort, ErrMalformed, *ReadError).
//
// The data path, top to bottom:
//
//	server.go      listener, TLS, preface: HTTP/1.1 fast path, or HTTP/2 sniffing
//	h2sniff.go     reads an HTTP/2 connection up to its first request; answers SETTINGS at once
//	h2head.go      which requests the gRPC fast path serves exactly as grpc.Server would
//	h2fast.go      HTTP/2 fast path for unary gRPC, else a GOAWAY that sends the client to grpc.Server
//	h2fallback.go  a native gRPC connection: budget per message, plain requests sent elsewhere
//	http1.go       HTTP/1.1 fast path for Envoy's Zipkin posts, else net/http
//	budget.go      the in-flight byte budget
//
// DESIGN.md says why there are hand-written paths at all, and what keeps
// them answering as the standard servers do.
package transport
