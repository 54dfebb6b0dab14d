package receiver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// reason is why a request (or some of its spans) was refused. The values are
// the `reason` label of traceport_rejected_requests_total and
// traceport_rejected_spans_total: a fixed set, so alerts can rely on them.
type reason string

const (
	reasonMalformed           reason = "malformed"              // body does not decode
	reasonInvalidSpan         reason = "invalid_span"           // one span left out of an accepted request
	reasonUnsupportedMedia    reason = "unsupported_media_type" // Content-Type we cannot decode
	reasonUnsupportedEncoding reason = "unsupported_encoding"   // Content-Encoding we cannot decompress
	reasonTooLarge            reason = "too_large"              // over --max-request-bytes, compressed or not
	reasonDecompress          reason = "decompress"             // corrupt gzip/deflate/zstd stream
	reasonReadBody            reason = "read_body"              // client went away or timed out mid-body
	reasonMethod              reason = "method"                 // e.g. GET /api/v2/spans
	reasonNotFound            reason = "not_found"              // no such path or gRPC method
	reasonQueueFull           reason = "queue_full"             // backpressure: the export queue has no room
	reasonShuttingDown        reason = "shutting_down"          // SIGTERM received; readiness already false
	reasonMemoryLimit         reason = "memory_limit"           // above the soft share of --memory-limit
)

// allReasons lists every reason so counters start at zero and alerts see them.
var allReasons = []reason{
	reasonMalformed, reasonInvalidSpan, reasonUnsupportedMedia, reasonUnsupportedEncoding,
	reasonTooLarge, reasonDecompress, reasonReadBody, reasonMethod, reasonNotFound,
	reasonQueueFull, reasonShuttingDown, reasonMemoryLimit,
}

// reply is how one reason is answered on each transport. Retryable reasons
// follow the OTLP spec's lists so OTLP clients retry exactly these:
// https://opentelemetry.io/docs/specs/otlp/#failures (gRPC) and
// https://opentelemetry.io/docs/specs/otlp/#failures-1 (HTTP: 429, 502, 503, 504).
var replies = map[reason]struct {
	httpStatus int
	grpcCode   codes.Code
}{
	reasonMalformed:           {http.StatusBadRequest, codes.InvalidArgument},
	reasonInvalidSpan:         {http.StatusBadRequest, codes.InvalidArgument},
	reasonUnsupportedMedia:    {http.StatusUnsupportedMediaType, codes.InvalidArgument},
	reasonUnsupportedEncoding: {http.StatusUnsupportedMediaType, codes.Unimplemented},
	reasonTooLarge:            {http.StatusRequestEntityTooLarge, codes.ResourceExhausted}, // no RetryInfo: not retryable
	reasonDecompress:          {http.StatusBadRequest, codes.InvalidArgument},
	reasonReadBody:            {http.StatusBadRequest, codes.Canceled},
	reasonMethod:              {http.StatusMethodNotAllowed, codes.Unimplemented},
	reasonNotFound:            {http.StatusNotFound, codes.Unimplemented},
	reasonQueueFull:           {http.StatusTooManyRequests, codes.ResourceExhausted}, // with RetryInfo / Retry-After: retryable
	reasonShuttingDown:        {http.StatusServiceUnavailable, codes.Unavailable},
	reasonMemoryLimit:         {http.StatusTooManyRequests, codes.ResourceExhausted}, // with RetryInfo / Retry-After: retryable
}

// refusal is an error that carries its reason, the client-facing message and,
// for backpressure, how long the client should wait.
type refusal struct {
	reason     reason
	msg        string
	retryAfter time.Duration
}

func (r *refusal) Error() string { return r.msg }

func refuse(rsn reason, format string, args ...any) *refusal {
	return &refusal{reason: rsn, msg: fmt.Sprintf(format, args...)}
}

// asRefusal finds the refusal in err; anything else is a malformed body.
func asRefusal(err error) *refusal {
	var r *refusal
	if errors.As(err, &r) {
		return r
	}
	return &refusal{reason: reasonMalformed, msg: err.Error()}
}

func (r *refusal) httpStatus() int { return replies[r.reason].httpStatus }

// grpcStatus is the refusal as a gRPC status; backpressure carries RetryInfo,
// which is what makes RESOURCE_EXHAUSTED retryable for OTLP clients.
func (r *refusal) grpcStatus() *status.Status {
	st := status.New(replies[r.reason].grpcCode, r.msg)
	if r.retryAfter > 0 {
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(r.retryAfter)}); err == nil {
			return d
		}
	}
	return st
}
