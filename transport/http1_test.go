package transport

import (
	"bufio"
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

func envoyHead(path string, n int, extra string) string {
	return "POST " + path + " HTTP/1.1\r\nhost: zipkin.istio-system:9411\r\ncontent-type: application/json\r\n" +
		"content-length: " + fmt.Sprint(n) + "\r\nx-envoy-expected-rq-timeout-ms: 5000\r\n" + extra + "\r\n"
}

func hostHead(host string) string {
	return "POST /api/v2/spans HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 2\r\n\r\n"
}

func typeHead(ctype string) string {
	return "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype + "\r\nContent-Length: 2\r\n\r\n"
}

// mediaType is receiver/http.go's, which the Zipkin handler reads the
// Content-Type with: the fast path must read it the same way.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// FuzzH1Head: a head the fast path takes is one net/http reads the same
// way: a POST to the same path, the same body length, no other framing.
func FuzzH1Head(f *testing.F) {
	f.Add([]byte(envoyHead("/api/v2/spans", 10, "")))
	f.Add([]byte("POST /api/v1/spans HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf; q=1\r\nContent-Length: 007\r\n\r\n"))
	f.Add([]byte("POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\n"))
	for _, host := range []string{"a b", "a/b", `a"b`, "x, y", "[::1]:9411"} {
		f.Add([]byte(hostHead(host)))
	}
	for _, ctype := range []string{"text/plain;;;", `application/json; charset="`, `application/json; charset="utf-8"`, "application/x-protobuf ;q=1", "text/html"} {
		f.Add([]byte(typeHead(ctype)))
	}
	f.Add([]byte("POST /api/v2/spans HTTP/1.1\nHost: x\nContent-Length: 2\n\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		end := bytes.Index(head, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		for i := range end + 2 { // every prefix the fast path could see first
			if _, ok := parseH1Head(head[:i], false); !ok && bytes.HasSuffix(head[:i], crlf) {
				if _, ok := parseH1Head(head[:end+2], true); ok {
					t.Fatalf("a prefix refused, the whole head taken: %q", head[:end+4])
				}
			}
		}
		req, ok := parseH1Head(head[:end+2], true)
		if !ok || hasBareLF(head[:end+2]) {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head[:end+4])))
		if err != nil {
			t.Fatalf("fast path took a head net/http refuses (%v): %q", err, head[:end+4])
		}
		if r.Method != "POST" || r.URL.Path != req.path || r.URL.RawQuery != "" || r.ContentLength != req.contentLength ||
			len(r.TransferEncoding) != 0 || r.Close != req.close || r.ProtoMinor != 1 {
			t.Fatalf("fast path read %+v, net/http %s %s %d close=%v te=%v: %q", req, r.Method, r.URL, r.ContentLength, r.Close, r.TransferEncoding, head[:end+4])
		}
		// The server's own checks, after ReadRequest: the Host header and
		// the media type handleZipkin reads.
		if !httpguts.ValidHostHeader(r.Host) {
			t.Fatalf("fast path took Host %q, net/http answers 400 malformed Host header: %q", r.Host, head[:end+4])
		}
		want := map[string]string{"": EncodingJSON, "application/json": EncodingJSON, "text/plain": EncodingJSON, "application/x-protobuf": EncodingProto, "application/protobuf": EncodingProto}[mediaType(r)]
		if want != req.enc {
			t.Fatalf("fast path read Content-Type %q as %q, handleZipkin as %q: %q", r.Header.Get("Content-Type"), req.enc, want, head[:end+4])
		}
	})
}
