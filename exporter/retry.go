package exporter

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// attemptError is a failed export attempt, classified once, where the
// response is read. The retry loop only looks at retryable and retryAfter.
type attemptError struct {
	code       string        // gRPC code name or HTTP status, for traceport_export_failures_total
	retryable  bool          // worth sending again
	retryAfter time.Duration // the server's hint (RetryInfo, Retry-After); 0 = none
	tooLarge   bool          // the request is over the destination's size limit: cut it, do not drop it
	err        error
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// classifyGRPC decides retryability of a gRPC failure, per the OTLP spec
// (https://opentelemetry.io/docs/specs/otlp/#failures): UNAVAILABLE,
// CANCELLED, ABORTED, OUT_OF_RANGE, DATA_LOSS and DEADLINE_EXCEEDED are
// transient; RESOURCE_EXHAUSTED only when the server says when to come back
// (google.rpc.RetryInfo), otherwise it is a limit such as message size that
// no retry fixes (a message over the size limit is cut and sent again in
// parts, see sendParts); everything else (InvalidArgument, Unimplemented,
// Unauthenticated, ...) is permanent. Jaeger's api_v2 uses the same codes.
func classifyGRPC(err error) *attemptError {
	st := status.Convert(err)
	ae := &attemptError{code: st.Code().String(), err: err}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			ae.retryAfter = max(ri.GetRetryDelay().AsDuration(), 0)
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled, codes.Aborted, codes.OutOfRange, codes.DataLoss, codes.DeadlineExceeded:
		ae.retryable = true
	case codes.ResourceExhausted:
		ae.retryable = ae.retryAfter > 0
		// grpc-go's "grpc: received message [after decompression] larger
		// than max (N vs. M)", which Jaeger and the Collector answer.
		ae.tooLarge = !ae.retryable && strings.Contains(st.Message(), "larger than max")
	}
	return ae
}

// classifyHTTP decides retryability of an OTLP/HTTP status, per the spec
// (https://opentelemetry.io/docs/specs/otlp/#retryable-response-codes):
// 429, 502, 503 and 504 are transient, with Retry-After honoured
// (https://opentelemetry.io/docs/specs/otlp/#otlphttp-throttling); any
// other status is permanent. err describes the response.
func classifyHTTP(statusCode int, retryAfter string, now time.Time, err error) *attemptError {
	ae := &attemptError{code: strconv.Itoa(statusCode), err: err}
	switch statusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		ae.retryable = true
		ae.retryAfter = parseRetryAfter(retryAfter, now)
	case http.StatusRequestEntityTooLarge:
		ae.tooLarge = true
	}
	return ae
}

// transportError is a failure before any response: connection refused,
// reset, per-attempt timeout. Always worth retrying.
func transportError(err error) *attemptError {
	code := "transport"
	if errors.Is(err, errAttemptTimeout) {
		code = "timeout"
	}
	return &attemptError{code: code, retryable: true, err: err}
}

var errAttemptTimeout = errors.New("export attempt timed out")

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// backoff is exponential with ±50% jitter, as the OpenTelemetry Collector's
// retry sender, so senders that failed together do not return together.
type backoff struct {
	next, max time.Duration
}

// delay returns the wait before the next attempt: the jittered backoff, or
// the server's hint when that is longer.
func (b *backoff) delay(hint time.Duration) time.Duration {
	d := b.next
	if d > 0 {
		d = d/2 + rand.N(d)
	}
	b.next = min(b.next*2, b.max)
	return max(d, hint)
}
