package receiver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/traceport/traceport/bench"
)

// envoyHead is the head Envoy's Zipkin tracer sends (HTTP/1.1, JSON).
func envoyHead(path string, n int, extra string) string {
	return "POST " + path + " HTTP/1.1\r\nhost: zipkin.istio-system:9411\r\ncontent-type: application/json\r\n" +
		"content-length: " + fmt.Sprint(n) + "\r\nx-envoy-expected-rq-timeout-ms: 5000\r\n" + extra + "\r\n"
}

type h1Exchange struct {
	status int
	body   string
	header http.Header
}

// exchange writes raw on one connection and reads up to want responses,
// fewer if the server closes the connection.
func exchange(t *testing.T, addr string, raw []byte, closeWrite bool, want int) []h1Exchange {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	var out []h1Exchange
	for len(out) < want {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Header.Del("Date")
		out = append(out, h1Exchange{resp.StatusCode, string(b), resp.Header})
	}
	return out
}

// TestHTTP1FastPath sends the same bytes to a receiver with the fast path
// and to one without it: the responses (status, headers, body) and the
// counters must be the same, and the fast path must have served exactly the
// requests of Envoy's shape, handing the rest to net/http.
func TestHTTP1FastPath(t *testing.T) {
	v2 := bench.EnvoyZipkinJSON(3, 1)
	v1 := []byte(`[{"traceId":"0000000000000001","id":"0000000000000002","name":"get","annotations":[{"timestamp":1766022480000000,"value":"cs","endpoint":{"serviceName":"legacy"}}]}]`)
	proto := bench.EnvoyZipkinProto(2, 1)
	oneBad := []byte(`[{"traceId":"1","id":"2","name":"ok","localEndpoint":{"serviceName":"a"}},{"traceId":"zz","id":"3","localEndpoint":{"serviceName":"a"}}]`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(v2)
	zw.Close()
	envoy := func(body []byte) string { return envoyHead("/api/v2/spans", len(body), "") + string(body) }

	cases := []struct {
		name       string
		raw        string
		cfg        Config
		fast       int64 // requests the fast path serves
		statuses   []int
		pushFails  bool
		closeWrite bool
	}{
		{name: "envoy v2 json", raw: envoy(v2), fast: 1, statuses: []int{202}},
		{name: "three requests in one write", raw: envoy(v2) + envoy(v2) + envoy(v2), fast: 3, statuses: []int{202, 202, 202}},
		{name: "then a probe on the same connection", raw: envoy(v2) + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + envoy(v2), fast: 1, statuses: []int{202, 200, 202}},
		{name: "zipkin proto", raw: "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: " + fmt.Sprint(len(proto)) + "\r\n\r\n" + string(proto), fast: 1, statuses: []int{202}},
		{name: "v1 json", raw: envoyHead("/api/v1/spans", len(v1), "") + string(v1), fast: 1, statuses: []int{202}},
		{name: "v2 json on the v1 path", raw: envoyHead("/api/v1/spans", len(v2), "") + string(v2), fast: 1, statuses: []int{202}},
		{name: "no content type, odd spacing and case", raw: "POST /api/v2/spans HTTP/1.1\r\nHOST:x\r\nCONTENT-LENGTH:\t" + fmt.Sprint(len(v2)) + " \r\n\r\n" + string(v2), fast: 1, statuses: []int{202}},
		{name: "empty list", raw: envoyHead("/api/v2/spans", 2, "") + "[]", fast: 1, statuses: []int{202}},
		{name: "connection close", raw: envoyHead("/api/v2/spans", len(v2), "Connection: close\r\n") + string(v2) + envoy(v2), fast: 1, statuses: []int{202}},
		{name: "gzip body", raw: envoyHead("/api/v2/spans", gz.Len(), "Content-Encoding: gzip\r\n") + gz.String(), statuses: []int{202}},
		{name: "chunked body", raw: "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(v2), v2), statuses: []int{202}},
		{name: "query string", raw: "POST /api/v2/spans?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: " + fmt.Sprint(len(v2)) + "\r\n\r\n" + string(v2), statuses: []int{202}},
		{name: "HTTP/1.0", raw: "POST /api/v2/spans HTTP/1.0\r\nHost: x\r\nContent-Length: " + fmt.Sprint(len(v2)) + "\r\n\r\n" + string(v2), statuses: []int{202}},
		{name: "no host", raw: "POST /api/v2/spans HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]", statuses: []int{400}},
		{name: "two content lengths", raw: "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[]", statuses: []int{400}},
		{name: "folded header line", raw: "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n[]", statuses: []int{202}},
		{name: "bad content type", raw: "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n[]", statuses: []int{415}},
		{name: "malformed json", raw: envoyHead("/api/v2/spans", 5, "") + "[{,]}" + envoy(v2), statuses: []int{400, 202}}, // net/http keeps the connection
		{name: "one invalid span of two", raw: envoy(oneBad), statuses: []int{202}},
		{name: "over the size limit", raw: envoyHead("/api/v2/spans", 2<<20, ""), statuses: []int{413}, closeWrite: true},
		{name: "body cut short", raw: envoyHead("/api/v2/spans", 100, "") + "[{", statuses: []int{400}, closeWrite: true},
		{name: "queue full at the push", raw: envoy(v2) + envoy(v2), pushFails: true, fast: 2, statuses: []int{429, 429}},
		{name: "GET", raw: "GET /api/v2/spans HTTP/1.1\r\nHost: x\r\n\r\n", statuses: []int{405}},
		{name: "host with a space", raw: hostHead("a b") + "[]", statuses: []int{400}},
		{name: "host with a slash", raw: hostHead("a/b") + "[]", statuses: []int{400}},
		{name: "host with a quote", raw: hostHead(`a"b`) + "[]", statuses: []int{400}},
		{name: "host list", raw: hostHead("x, y") + "[]", statuses: []int{400}},
		{name: "host with a port", raw: hostHead("zipkin:9411") + "[]", fast: 1, statuses: []int{202}},
		{name: "empty media type parameters", raw: typeHead("text/plain;;;") + "[]", statuses: []int{415}},
		{name: "unterminated quoted parameter", raw: typeHead(`application/json; charset="`) + "[]", statuses: []int{415}},
		{name: "media type with a parameter", raw: typeHead("application/json; charset=utf-8") + "[]", fast: 1, statuses: []int{202}},
		{name: "media type in capitals, spaced parameter", raw: typeHead("Application/JSON ; charset=UTF-8") + "[]", fast: 1, statuses: []int{202}},
		// net/http reads these at once: the fast path must not wait for a
		// blank line (exchange gives up after 5 s, before the header timeout).
		{name: "bare LF", raw: "POST /api/v2/spans HTTP/1.1\nHost: x\nContent-Length: 2\n\n[]", statuses: []int{202}},
		{name: "malformed header line, head unfinished", raw: "POST /api/v2/spans HTTP/1.1\r\nHost x\r\n", statuses: []int{400}},
		{name: "malformed version, head unfinished", raw: "POST /api/v2/spans HTTP/x\r\nHost: x\r\n", statuses: []int{400}},
		{name: "body timeout", raw: envoyHead("/api/v2/spans", 100, "") + "[{", cfg: Config{ReadTimeout: 300 * time.Millisecond}, fast: 1, statuses: []int{400}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got [2][]h1Exchange
			var counters [2]string
			for i, off := range []bool{true, false} {
				tr := startReceiver(t, c.cfg)
				tr.rc.transport.SetFastPaths(!off, true)
				tr.sink.pushFails = c.pushFails
				got[i] = exchange(t, tr.addr, []byte(c.raw), c.closeWrite, len(c.statuses))
				counters[i] = countersText(t, tr)
				if !off {
					if n := h1Served(tr.rc); n != c.fast {
						t.Errorf("fast path served %d requests, want %d", n, c.fast)
					}
				}
			}
			var statuses []int
			for _, e := range got[1] {
				statuses = append(statuses, e.status)
			}
			if fmt.Sprint(statuses) != fmt.Sprint(c.statuses) {
				t.Errorf("statuses %v, want %v", statuses, c.statuses)
			}
			if addrs.ReplaceAllString(fmt.Sprint(got[0]), "ADDR") != addrs.ReplaceAllString(fmt.Sprint(got[1]), "ADDR") {
				t.Errorf("responses differ:\nnet/http:  %v\nfast path: %v", got[0], got[1])
			}
			if counters[0] != counters[1] {
				t.Errorf("counters differ:\nnet/http:\n%s\nfast path:\n%s", counters[0], counters[1])
			}
		})
	}
}

// addrs are the connection's addresses in a read error's message, which
// differ from one receiver to the other.
var addrs = regexp.MustCompile(`127\.0\.0\.1:\d+`)

func hostHead(host string) string {
	return "POST /api/v2/spans HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 2\r\n\r\n"
}

func typeHead(ctype string) string {
	return "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype + "\r\nContent-Length: 2\r\n\r\n"
}

// countersText is the receiver's traceport_* series, one per line.
func countersText(t *testing.T, tr *testReceiver) string {
	t.Helper()
	mfs, err := tr.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "traceport_received") && !strings.HasPrefix(mf.GetName(), "traceport_rejected") {
			continue
		}
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(&b, "%s %v %v\n", mf.GetName(), m.GetLabel(), m.GetCounter().GetValue())
		}
	}
	return b.String()
}

// An idle keep-alive connection on the fast path does not hold up
// Shutdown, and a request in progress is answered before its connection
// closes.
func TestHTTP1FastPathShutdown(t *testing.T) {
	tr := startReceiver(t, Config{})
	body := bench.EnvoyZipkinJSON(2, 1)
	c, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	send := func() int {
		c.Write([]byte(envoyHead("/api/v2/spans", len(body), "") + string(body)))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(); code != 202 {
		t.Fatalf("status %d", code)
	}
	// An idle connection that held Shutdown up would hold it until the
	// deadline: an error, however busy the machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.rc.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an idle keep-alive connection: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("the idle connection is still open after Shutdown")
	}
}
