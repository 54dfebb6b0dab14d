package receiver

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func zstdBomb(n int) []byte {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	return enc.EncodeAll(bytes.Repeat([]byte{' '}, n), nil)
}

func deflateBomb(n int) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(bytes.Repeat([]byte{' '}, n))
	w.Close()
	return buf.Bytes()
}

// TestHostileBodies: bombs, deep nesting, huge spans and bad bytes each get
// their documented answer and counter; nothing else is affected.
func TestHostileBodies(t *testing.T) {
	tr := startReceiver(t, Config{MaxRequestBytes: 4 << 20})
	base := "http://" + tr.addr
	c := h1Client()

	for _, b := range []struct {
		name, enc string
		body      []byte
	}{{"zstd", "zstd", zstdBomb(64 << 20)}, {"deflate", "deflate", deflateBomb(64 << 20)}, {"gzip", "gzip", gzipped(bytes.Repeat([]byte{' '}, 64<<20))}} {
		code, msg, _ := post(t, c, base+"/api/v2/spans", "application/json", b.body, "Content-Encoding", b.enc)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "max-request-bytes") {
			t.Errorf("%s bomb (%d bytes inflating to 64 MiB): %d %q, want 413 naming --max-request-bytes", b.name, len(b.body), code, msg)
		}
	}
	if got := tr.rejected(t, protoZipkin, reasonTooLarge); got != 3 {
		t.Errorf("rejected_requests_total{zipkin,too_large} = %v, want 3", got)
	}

	deep := strings.Repeat(`{"a":[`, 5000) + strings.Repeat(`]}`, 5000)
	code, msg, _ := post(t, c, base+"/api/v2/spans", "application/json", []byte(`[{"traceId":"1","id":"2","tags":`+deep+`}]`))
	if code != http.StatusBadRequest {
		t.Errorf("JSON nested 10000 deep: %d %q, want 400", code, msg)
	}

	// 100k tags on one span: accepted whole (well under the size limit).
	var tags strings.Builder
	for i := 0; i < 100_000; i++ {
		if i > 0 {
			tags.WriteByte(',')
		}
		fmt.Fprintf(&tags, `"k%d":"v"`, i)
	}
	tr.sink.reset()
	code, msg, _ = post(t, c, base+"/api/v2/spans", "application/json", []byte(`[{"traceId":"1","id":"2","timestamp":1700000000000000,"localEndpoint":{"serviceName":"many-tags"},"tags":{`+tags.String()+`}}]`))
	if code != http.StatusAccepted {
		t.Fatalf("span with 100k tags: %d %q", code, msg)
	}
	if n := tr.sink.traces(t).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Len(); n != 100_000 {
		t.Errorf("span with 100k tags forwarded with %d attributes", n)
	}

	// Invalid UTF-8: accepted, and what is forwarded is valid UTF-8.
	tr.sink.reset()
	code, _, _ = post(t, c, base+"/api/v2/spans", "application/json", []byte("[{\"traceId\":\"1\",\"id\":\"2\",\"name\":\"bad \xff\xfe name\",\"localEndpoint\":{\"serviceName\":\"utf\xc3\"}}]"))
	if code != http.StatusAccepted {
		t.Fatalf("invalid UTF-8: %d", code)
	}
	rs := tr.sink.traces(t).ResourceSpans().At(0)
	name := rs.ScopeSpans().At(0).Spans().At(0).Name()
	svc, _ := rs.Resource().Attributes().Get("service.name")
	if !utf8.ValidString(name) || !utf8.ValidString(svc.Str()) {
		t.Errorf("forwarded invalid UTF-8: name %q service %q", name, svc.Str())
	}

	// A negative duration costs that span only.
	before := gatherValue(t, tr.reg, "traceport_rejected_spans_total", map[string]string{"protocol": protoZipkin, "reason": string(reasonInvalidSpan)})
	tr.sink.reset()
	code, _, _ = post(t, c, base+"/api/v2/spans", "application/json",
		[]byte(`[{"traceId":"1","id":"2","timestamp":10,"duration":-5},{"traceId":"1","id":"3","timestamp":10,"duration":5}]`))
	if code != http.StatusAccepted || tr.sink.traces(t).SpanCount() != 1 {
		t.Errorf("negative duration: status %d, %d spans forwarded; want 202 and the good span", code, tr.sink.traces(t).SpanCount())
	}
	if got := gatherValue(t, tr.reg, "traceport_rejected_spans_total", map[string]string{"protocol": protoZipkin, "reason": string(reasonInvalidSpan)}) - before; got != 1 {
		t.Errorf("rejected_spans_total{zipkin,invalid_span} grew by %v, want 1", got)
	}
}

// TestOTLPPartialSuccess: a span id of the wrong length drops that span, not
// the request (the Collector would refuse all of it).
func TestOTLPPartialSuccess(t *testing.T) {
	tr := startReceiver(t, Config{})
	span := func(id []byte) *tracepb.Span {
		return &tracepb.Span{TraceId: bytes.Repeat([]byte{1}, 16), SpanId: id, Name: "s"}
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{
		Spans: []*tracepb.Span{span([]byte{1, 1, 1, 1, 1, 1, 1, 1}), span([]byte{2, 2}), span([]byte{3, 3, 3, 3, 3, 3, 3, 3})},
	}}}}}
	body, _ := proto.Marshal(req)
	code, msg, _ := post(t, h1Client(), "http://"+tr.addr+"/v1/traces", "application/x-protobuf", body)
	if code != http.StatusOK {
		t.Fatalf("status %d %q, want 200 with partial success", code, msg)
	}
	var resp coltracepb.ExportTraceServiceResponse
	if err := proto.Unmarshal([]byte(msg), &resp); err != nil {
		t.Fatal(err)
	}
	if ps := resp.GetPartialSuccess(); ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), "spans[1]: span_id: length 2") {
		t.Errorf("partial success %v, want 1 rejected span naming spans[1].span_id", ps)
	}
	if got := tr.sink.traces(t).SpanCount(); got != 2 {
		t.Errorf("forwarded %d spans, want the 2 good ones", got)
	}
}

// TestSlowClients: a client that trickles its headers or body is cut off.
func TestSlowClients(t *testing.T) {
	tr := startReceiver(t, Config{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond})
	f := func(name string, send func(net.Conn)) {
		t.Helper()
		conn, err := net.Dial("tcp", tr.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go send(conn)
		// The sender trickles for 5s; our own deadline, far later, only
		// ends a test whose server never cuts the client off.
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		_, err = bufio.NewReader(conn).ReadString('\n')
		for err == nil {
			_, err = bufio.NewReader(conn).ReadString('\n')
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: the server never closed the connection", name)
		}
	}
	f("slow headers", func(c net.Conn) {
		c.Write([]byte("POST /api/v2/spans HTTP/1.1\r\nHost: x\r\n"))
		for i := 0; i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Write([]byte("X-A: b\r\n")); err != nil {
				return
			}
		}
	})
	f("slow body", func(c net.Conn) {
		c.Write([]byte("POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["))
		for i := 0; i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	})
	f("silent HTTP/2", func(c net.Conn) { c.Write(http2Preface) })
}

// TestMemoryGuard: near --memory-limit, requests are refused before their
// body is read, with a retryable answer.
func TestMemoryGuard(t *testing.T) {
	tr := startReceiver(t, Config{MemoryLimit: 1 << 20}) // far below what any Go process uses
	waitFor(t, "the guard's first sample", tr.rc.memory.overLimit)
	code, _, hdr := post(t, h1Client(), "http://"+tr.addr+"/v1/traces", "application/x-protobuf", nil)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("over the memory limit: %d Retry-After %q, want 429 with Retry-After", code, hdr.Get("Retry-After"))
	}
	if got := tr.rejected(t, protoOTLPHTTP, reasonMemoryLimit); got != 1 {
		t.Errorf("rejected_requests_total{otlp_http,memory_limit} = %v, want 1", got)
	}
}
