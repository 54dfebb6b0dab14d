package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// httpConn is one HTTP/1.1 keep-alive connection that writes pre-framed
// requests as they are: no header map, no body copy. Only the response goes
// through net/http's parser.
type httpConn struct {
	addr    string
	timeout time.Duration
	json    bool // OTLP/JSON replies
	otlp    bool

	mu     sync.Mutex // guards c against close from another goroutine
	c      net.Conn
	closed bool
	br     *bufio.Reader
	body   []byte
	stop   func() bool
}

func dialHTTP(ctx context.Context, cfg Config) (*httpConn, error) {
	h := &httpConn{
		addr:    cfg.Target,
		timeout: cfg.Timeout,
		json:    cfg.Protocol == OTLPHTTPJSON,
		otlp:    cfg.Protocol == OTLPHTTP || cfg.Protocol == OTLPHTTPJSON,
		br:      bufio.NewReaderSize(nil, 16<<10),
	}
	if _, err := h.conn(ctx); err != nil {
		return nil, err
	}
	// A run cut short must not wait for a request's timeout.
	h.stop = context.AfterFunc(ctx, h.close)
	return h, nil
}

func (h *httpConn) conn(ctx context.Context) (net.Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, net.ErrClosed
	}
	if h.c != nil {
		return h.c, nil
	}
	d := net.Dialer{Timeout: h.timeout}
	c, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", h.addr, err)
	}
	h.c = c
	h.br.Reset(c)
	return c, nil
}

func (h *httpConn) drop(c net.Conn) {
	h.mu.Lock()
	if h.c == c {
		h.c = nil
	}
	h.mu.Unlock()
	c.Close()
}

func (h *httpConn) close() {
	h.mu.Lock()
	h.closed = true
	c := h.c
	h.c = nil
	h.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if h.stop != nil {
		h.stop()
	}
}

func (h *httpConn) send(ctx context.Context, p *payload) (string, int64, error) {
	c, err := h.conn(ctx)
	if err != nil {
		return "", 0, err
	}
	c.SetDeadline(time.Now().Add(h.timeout))
	if _, err := c.Write(p.wire); err != nil {
		h.drop(c)
		return "", 0, err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		h.drop(c)
		return "", 0, err
	}
	// Keep up to 64 KB of the reply (an OTLP partial success is small);
	// drain the rest so the connection can be reused.
	h.body, err = readUpTo(resp.Body, h.body[:0], 64<<10)
	resp.Body.Close()
	if err != nil || resp.Close {
		h.drop(c)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "http " + strconv.Itoa(resp.StatusCode), 0, nil
	}
	if err != nil {
		// The server took the request; only the reply's tail was lost.
		return "", 0, nil
	}
	if !h.otlp || len(h.body) == 0 {
		return "", 0, nil
	}
	if h.json {
		return "", rejectedJSON(h.body), nil
	}
	rejected, _ := rejectedProto(h.body)
	return "", rejected, nil
}

func readUpTo(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for len(buf) < limit {
		if cap(buf) == len(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	_, err := io.Copy(io.Discard, r)
	return buf, err
}

// rejectedProto reads partial_success.rejected_spans from a serialized
// ExportTraceServiceResponse without decoding the rest.
func rejectedProto(b []byte) (int64, error) {
	var rejected int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType { // partial_success
			ps, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			b = b[n:]
			for len(ps) > 0 {
				num, typ, n := protowire.ConsumeTag(ps)
				if n < 0 {
					return 0, protowire.ParseError(n)
				}
				ps = ps[n:]
				if num == 1 && typ == protowire.VarintType { // rejected_spans
					v, n := protowire.ConsumeVarint(ps)
					if n < 0 {
						return 0, protowire.ParseError(n)
					}
					ps = ps[n:]
					rejected = int64(v)
					continue
				}
				n = protowire.ConsumeFieldValue(num, typ, ps)
				if n < 0 {
					return 0, protowire.ParseError(n)
				}
				ps = ps[n:]
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return rejected, nil
}

// rejectedJSON reads partialSuccess.rejectedSpans from an OTLP/JSON reply;
// int64 comes as a string or a number.
func rejectedJSON(b []byte) int64 {
	var r struct {
		PartialSuccess struct {
			RejectedSpans json.RawMessage `json:"rejectedSpans"`
		} `json:"partialSuccess"`
	}
	if json.Unmarshal(b, &r) != nil || len(r.PartialSuccess.RejectedSpans) == 0 {
		return 0
	}
	s := string(r.PartialSuccess.RejectedSpans)
	if len(s) >= 2 && s[0] == '"' {
		s = s[1 : len(s)-1]
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
