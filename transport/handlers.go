package transport

import (
	"errors"
	"net/http"

	"google.golang.org/grpc/mem"
)

// ZipkinHandler serves the Zipkin posts the HTTP/1.1 fast path reads
// (http1.go). It answers into a ResponseWriter the fast path provides and
// writes out; a request it does not take is handed, with its connection,
// to net/http (Handlers.HTTP), which serves it again from its first byte.
type ZipkinHandler interface {
	// AdmitZipkin reports whether a request may be read now; false hands
	// it to net/http, whose handler refuses it.
	AdmitZipkin() bool
	// ServeZipkin decodes and queues one request. It returns false, with
	// nothing written, when net/http should serve the request instead (a
	// body it would refuse, which the net/http handler counts and answers);
	// otherwise the fast path answers 202 unless w was written to.
	ServeZipkin(w http.ResponseWriter, req *ZipkinRequest) bool
	// RejectZipkin counts and answers a request the transport could not
	// read whole: err is ErrOverBudget or a *ReadError.
	RejectZipkin(w http.ResponseWriter, err error)
}

// ZipkinRequest is a Zipkin post read by the HTTP/1.1 fast path.
type ZipkinRequest struct {
	Path     string // /api/v2/spans or /api/v1/spans
	Encoding string // EncodingJSON or EncodingProto
	Client   string // the remote address
	Body     []byte // valid until ServeZipkin returns
}

// The Zipkin encodings a Content-Type asks for.
const (
	EncodingJSON  = "json"
	EncodingProto = "proto"
)

// UnaryHandler serves the unary gRPC requests of the HTTP/2 fast path
// (h2fast.go). method is the request's :path. Errors returned are gRPC
// statuses, and each request refused or cut off is counted by the handler
// through Refuse or Reject, so that one table maps failures to reasons.
type UnaryHandler interface {
	// Serves reports whether method is one of the handler's; others are
	// answered with Unknown's status.
	Serves(method string) bool
	// Unknown counts a request for another method and returns its status.
	Unknown(method string) error
	// Admit is the door, before the message is read: a non-nil status
	// (already counted) answers the request.
	Admit(method string) error
	// Decode is called as soon as the message is in and decompressed, as
	// grpc.Server unmarshals it. A non-nil value goes to Serve instead of
	// msg, which Decode must not keep; nil keeps msg for Serve.
	Decode(method string, msg []byte) (any, error)
	// Serve handles a whole request: decoded is what Decode returned, or
	// else msg, owned by buf, which the handler frees. reply is the
	// response message.
	Serve(method, client string, decoded any, msg []byte, buf mem.Buffer) (reply []byte, err error)
	// Refuse counts a request refused while reading its message (err is a
	// gRPC status of grpc-go's reading rules, or a transport error) and
	// returns the status to answer.
	Refuse(method string, err error) error
	// Reject counts a request the transport ended without a status of
	// the handler's: ErrOverBudget, ErrCutShort or ErrMalformed.
	Reject(method string, err error)
}

// Transport-level failures of one request, for the handler to count.
var (
	// ErrCutShort: the request's upload did not complete (reset, the
	// connection gone, or not in by --read-timeout).
	ErrCutShort = errors.New("request cut short")
	// ErrMalformed: the request's framing is broken (a second message
	// cut short).
	ErrMalformed = errors.New("malformed request framing")
)

// ReadError is a failure reading a request's body (a timeout, the client
// gone), as net/http's handlers report it.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading request body: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }
