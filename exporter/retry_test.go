package exporter

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestClassifyGRPC(t *testing.T) {
	f := func(code codes.Code, retryInfo time.Duration, wantRetry bool, wantAfter time.Duration) {
		t.Helper()
		st := status.New(code, "x")
		if retryInfo != 0 {
			st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryInfo)})
		}
		ae := classifyGRPC(st.Err())
		if ae.retryable != wantRetry || ae.retryAfter != wantAfter || ae.code != code.String() {
			t.Errorf("%v (RetryInfo %v): retryable %v after %v code %q; want %v after %v",
				code, retryInfo, ae.retryable, ae.retryAfter, ae.code, wantRetry, wantAfter)
		}
	}
	// https://opentelemetry.io/docs/specs/otlp/#failures
	f(codes.Unavailable, 0, true, 0)
	f(codes.Canceled, 0, true, 0)
	f(codes.Aborted, 0, true, 0)
	f(codes.OutOfRange, 0, true, 0)
	f(codes.DataLoss, 0, true, 0)
	f(codes.DeadlineExceeded, 0, true, 0)
	f(codes.Unavailable, 2*time.Second, true, 2*time.Second)
	f(codes.ResourceExhausted, 0, false, 0)
	f(codes.ResourceExhausted, 500*time.Millisecond, true, 500*time.Millisecond)
	f(codes.InvalidArgument, 0, false, 0)
	f(codes.Unimplemented, 0, false, 0)
	f(codes.Unauthenticated, 0, false, 0)
	f(codes.PermissionDenied, 0, false, 0)
	f(codes.Internal, 0, false, 0)
	f(codes.Unknown, 0, false, 0)
	f(codes.NotFound, 0, false, 0)
	f(codes.FailedPrecondition, 0, false, 0)
	f(codes.AlreadyExists, 0, false, 0)
}

func TestClassifyHTTP(t *testing.T) {
	now := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
	f := func(code int, retryAfter string, wantRetry bool, wantAfter time.Duration) {
		t.Helper()
		ae := classifyHTTP(code, retryAfter, now, errors.New("x"))
		if ae.retryable != wantRetry || ae.retryAfter != wantAfter {
			t.Errorf("%d Retry-After %q: retryable %v after %v; want %v after %v",
				code, retryAfter, ae.retryable, ae.retryAfter, wantRetry, wantAfter)
		}
	}
	// https://opentelemetry.io/docs/specs/otlp/#retryable-response-codes
	f(429, "", true, 0)
	f(429, "3", true, 3*time.Second)
	f(502, "", true, 0)
	f(503, "120", true, 2*time.Minute)
	f(503, now.Add(90*time.Second).Format(http.TimeFormat), true, 90*time.Second)
	f(503, now.Add(-time.Hour).Format(http.TimeFormat), true, 0)
	f(503, "soon", true, 0)
	f(503, "-5", true, 0)
	f(504, "", true, 0)
	f(400, "5", false, 0) // Retry-After only counts where retrying does
	f(401, "", false, 0)
	f(404, "", false, 0)
	f(413, "", false, 0)
	f(500, "", false, 0)
	f(301, "", false, 0)
}

func TestBackoff(t *testing.T) {
	b := backoff{next: 100 * time.Millisecond, max: 400 * time.Millisecond}
	for i, base := range []time.Duration{100, 200, 400, 400, 400} {
		base *= time.Millisecond
		d := b.delay(0)
		if d < base/2 || d >= base*3/2 {
			t.Errorf("attempt %d: delay %v outside [%v, %v)", i, d, base/2, base*3/2)
		}
	}
	if d := b.delay(3 * time.Second); d != 3*time.Second {
		t.Errorf("server hint 3s: delay %v", d)
	}
}

func TestRejectedSpans(t *testing.T) {
	f := func(resp []byte, want int64) {
		t.Helper()
		if got := rejectedSpans(resp); got != want {
			t.Errorf("rejectedSpans(%x) = %d, want %d", resp, got, want)
		}
	}
	f(nil, 0)
	f(partialSuccess(0), 0)
	f(partialSuccess(42), 42)
	f(partialSuccess(1<<40), 1<<40)
	f([]byte{0x0a, 0x05, 0x08}, 0) // truncated
	f([]byte{0xff}, 0)
	// A future field before partial_success is skipped.
	resp := ptraceotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedSpans(3)
	b, _ := resp.MarshalProto()
	f(append([]byte{0x12, 0x02, 'h', 'i'}, b...), 3)
}

func TestStatusMessage(t *testing.T) {
	st := status.New(codes.InvalidArgument, "span 3: empty trace id").Proto()
	b, err := proto.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	f := func(body []byte, want string) {
		t.Helper()
		if got := statusMessage(body); got != want {
			t.Errorf("statusMessage(%q) = %q, want %q", body, got, want)
		}
	}
	f(b, "span 3: empty trace id")
	f([]byte("Bad Request\n"), "Bad Request")
	f([]byte(strings.Repeat("x", 1000)), strings.Repeat("x", 256))
	f(nil, "")
}

func TestConfigValidate(t *testing.T) {
	f := func(mod func(*Config), wantErr string) {
		t.Helper()
		c := Config{Endpoint: "jaeger:4317"}
		mod(&c)
		err := c.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("unexpected error: %v", err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("error %v, want one containing %q", err, wantErr)
		}
	}
	f(func(*Config) {}, "")
	f(func(c *Config) { c.Endpoint = "" }, "")
	f(func(c *Config) { c.Endpoint = "[::1]:4317"; c.Protocol = "otlp-http" }, "")
	f(func(c *Config) { c.Protocol = "zipkin" }, `jaeger-protocol "zipkin": want otlp-grpc, otlp-http or jaeger-grpc`)
	f(func(c *Config) { c.Compression = "snappy" }, `jaeger-compression "snappy"`)
	f(func(c *Config) { c.Endpoint = "jaeger" }, `jaeger-endpoint "jaeger": want HOST:PORT`)
	f(func(c *Config) { c.Endpoint = "jaeger:0" }, `jaeger-endpoint "jaeger:0": port "0"`)
	f(func(c *Config) { c.Endpoint = "jaeger:http" }, `port "http"`)
	f(func(c *Config) { c.Endpoint = ":4317" }, "empty host")
	f(func(c *Config) { c.QueueSpans = -1 }, "queue-spans -1")
	f(func(c *Config) { c.Senders = -2 }, "senders -2")
	f(func(c *Config) { c.Timeout = -time.Second }, "export-timeout")
	f(func(c *Config) { c.RetryMaxElapsed = -time.Second }, "retry-max-elapsed")
	f(func(c *Config) { c.RetryInitialInterval = time.Minute }, "retry-initial-interval 1m0s: more than retry-max-interval 30s")
	f(func(c *Config) { c.BatchMaxSpans = 200_000 }, "batch-max-spans 200000: more than queue-spans 100000")

	d := Defaults()
	if d.Protocol != ProtocolOTLPGRPC || d.Compression != "gzip" || d.BatchMaxSpans != 8192 ||
		d.BatchTimeout != 200*time.Millisecond || d.QueueSpans != 100_000 || d.Senders != 4 ||
		d.Timeout != 5*time.Second || d.RetryInitialInterval != time.Second ||
		d.RetryMaxInterval != 30*time.Second || d.RetryMaxElapsed != 5*time.Minute {
		t.Errorf("Defaults() = %+v", d)
	}
	var c Config
	c.SetDefaults()
	if c.RetryMaxElapsed != 0 {
		t.Errorf("SetDefaults changed RetryMaxElapsed 0 (retry until shutdown) to %v", c.RetryMaxElapsed)
	}
}

func TestQueueTake(t *testing.T) {
	var q memQueue
	for _, n := range []int{100, 100, 300, 50, 50, 50} {
		q.push(item{data: make([]byte, n*10), spans: n})
	}
	f := func(maxSpans, maxBytes int, want ...int) {
		t.Helper()
		var got []int
		for _, it := range q.take(nil, maxSpans, maxBytes) {
			got = append(got, it.spans)
		}
		if !equal(got, want) {
			t.Errorf("take(%d, %d) = %v, want %v", maxSpans, maxBytes, got, want)
		}
	}
	f(250, 1<<20, 100, 100) // 300 would not fit
	f(250, 1<<20, 300)      // too big for any batch: goes alone
	f(250, 1000, 50, 50)    // bytes bound first
	if q.spans != 50 || q.bytes != 500 || q.len() != 1 {
		t.Errorf("queue left with %d spans, %d bytes, %d items", q.spans, q.bytes, q.len())
	}
	if n := q.drain(); n != 50 || q.len() != 0 {
		t.Errorf("drain = %d, len %d after", n, q.len())
	}
	// A standing backlog compacts the backing array instead of growing it.
	for range 10 {
		q.push(item{data: []byte{1}, spans: 1})
	}
	for range 100_000 {
		q.push(item{data: []byte{1}, spans: 1})
		q.take(nil, 1, 1)
	}
	if q.len() != 10 || cap(q.items) > 5000 {
		t.Errorf("len %d cap %d", q.len(), cap(q.items))
	}
}

// FuzzResponse feeds arbitrary OTLP export responses and error bodies to
// the parsers: no panic, and rejected_spans agrees with pdata wherever
// pdata can decode the response.
func FuzzResponse(f *testing.F) {
	f.Add(partialSuccess(0))
	f.Add(partialSuccess(7))
	f.Add([]byte{0x0a, 0x05, 0x08})
	f.Add([]byte("Bad Request"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := rejectedSpans(b)
		_ = statusMessage(b)
		resp := ptraceotlp.NewExportResponse()
		if err := resp.UnmarshalProto(b); err == nil {
			if want := resp.PartialSuccess().RejectedSpans(); got != want {
				t.Errorf("rejectedSpans(%x) = %d, pdata says %d", b, got, want)
			}
		}
	})
}
