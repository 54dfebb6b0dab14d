package bench

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// The protocols Run can send.
const (
	ZipkinJSON   = "zipkin-json"    // POST /api/v2/spans, Envoy-shaped Zipkin v2 JSON
	ZipkinProto  = "zipkin-proto"   // POST /api/v2/spans, same spans as zipkin2 proto3
	OTLPGRPC     = "otlp-grpc"      // TraceService/Export, SDK-shaped
	OTLPHTTP     = "otlp-http"      // POST /v1/traces, protobuf
	OTLPHTTPJSON = "otlp-http-json" // POST /v1/traces, JSON
	JaegerGRPC   = "jaeger-grpc"    // jaeger.api_v2.CollectorService/PostSpans
)

// Protocols lists every protocol Run accepts.
var Protocols = []string{ZipkinJSON, ZipkinProto, OTLPGRPC, OTLPHTTP, OTLPHTTPJSON, JaegerGRPC}

// Config says what to send, where, how fast and for how long. Zero values
// take the defaults noted; with neither Count nor Duration, Run sends until
// its context ends.
type Config struct {
	Target   string // HOST:PORT
	Protocol string // one of Protocols

	SpansPerRequest int // default 100
	Connections     int // TCP connections; default 1
	// Streams is the number of requests in flight per connection for the
	// gRPC protocols (HTTP/1.1 carries one at a time); default 1.
	Streams int
	// Variety is the number of distinct payloads, each with its own ids,
	// sent in turn; default 10.
	Variety int

	Rate     float64       // spans per second; 0 sends flat out
	Count    int64         // spans to send; 0 is no bound
	Duration time.Duration // 0 is no bound

	// Gzip compresses HTTP bodies before the clock starts; for gRPC it turns
	// on the gzip compressor, which then costs the generator CPU per request.
	Gzip bool
	// Timeout bounds each request; default 10s.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.SpansPerRequest == 0 {
		c.SpansPerRequest = 100
	}
	if c.Connections == 0 {
		c.Connections = 1
	}
	if c.Streams == 0 {
		c.Streams = 1
	}
	if c.Variety == 0 {
		c.Variety = 10
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Validate reports the first setting Run cannot work with.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Target); err != nil {
		return fmt.Errorf("target %q: want HOST:PORT: %w", c.Target, err)
	}
	switch {
	case !slices.Contains(Protocols, c.Protocol):
		return fmt.Errorf("protocol %q: want one of %v", c.Protocol, Protocols)
	case c.SpansPerRequest < 1:
		return errors.New("spans per request must be at least 1")
	case c.Connections < 1 || c.Streams < 1 || c.Variety < 1:
		return errors.New("connections, streams and variety must be at least 1")
	case c.Rate < 0 || c.Count < 0 || c.Duration < 0 || c.Timeout < 0:
		return errors.New("rate, count, duration and timeout must not be negative")
	}
	return nil
}

func (c Config) grpc() bool { return c.Protocol == OTLPGRPC || c.Protocol == JaegerGRPC }

// Result is what a run measured. Latencies are of acknowledged and failed
// requests alike; with a Rate, a request sent late because every connection
// was busy is timed from when it was due, so a stalled server shows in the
// tail instead of hiding in a lower send rate.
type Result struct {
	AcceptedSpans int64            `json:"accepted_spans"`
	RejectedSpans int64            `json:"rejected_spans"` // OTLP partial success
	SentSpans     int64            `json:"sent_spans"`     // in finished requests, whatever the reply
	Requests      int64            `json:"requests"`       // finished, whatever the reply
	Bytes         int64            `json:"bytes"`          // request bodies as sent
	Errors        map[string]int64 `json:"errors"`         // failed requests by "http 503", "grpc Unavailable", "transport"
	FirstError    string           `json:"first_error,omitempty"`
	Elapsed       time.Duration    `json:"elapsed_ns"`
	P50           time.Duration    `json:"p50_ns"`
	P99           time.Duration    `json:"p99_ns"`
	P999          time.Duration    `json:"p999_ns"`
	Max           time.Duration    `json:"max_ns"`
}

// SpansPerSecond is the accepted spans over the elapsed time.
func (r Result) SpansPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.AcceptedSpans) / r.Elapsed.Seconds()
}

// ErrorCount is the number of failed requests.
func (r Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}
