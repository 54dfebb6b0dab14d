package receiver

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP/1.1 fast path. For ten Envoy spans, net/http spends about as
// much CPU per request as the decoding: a Request with its Header map and
// context, a response with its buffers, a Date header formatted anew. Envoy
// posts its spans in small requests (5 spans by default), each on a
// keep-alive HTTP/1.1 connection, so traceport reads that one shape of
// request itself: POST /api/v2/spans or /api/v1/spans, HTTP/1.1, a
// Content-Length, no Content-Encoding, nothing to negotiate.
//
// Anything else goes to net/http: at the first request of any other shape
// (another path or method, chunked or compressed bodies, Expect, Upgrade,
// an odd header line) the connection is handed over, with the bytes read so
// far replayed, and net/http serves it from then on. A request that fails
// (a malformed body, invalid spans, a refusal at the door) is handed over
// too, before anything was counted: every error response is net/http's and
// the handlers' own. Only a refusal after the spans were counted (the queue
// filled meanwhile) is answered here, by the same rejectHTTP.

const (
	h1BufSize  = 8 << 10 // a request head must fit: Envoy's are ~300 bytes
	h1MaxLines = 64
)

// fastConns tracks the connections a fast path (HTTP/1.1 or gRPC)
// serves, for Shutdown.
type fastConns struct {
	mu    sync.Mutex
	conns map[*fastConn]struct{}
	wg    sync.WaitGroup

	off               bool         // tests: no connection takes the fast path
	served, handedOff atomic.Int64 // tests check the routing
}

// fastConn is a connection as fastConns sees it.
type fastConn struct {
	conn net.Conn
	idle atomic.Bool // waiting for a request: Shutdown may wake it to close
}

type h1Conn struct {
	fastConn
	rc     *Receiver
	br     *bufio.Reader
	client string
	head   []byte // the current request's head, kept for a replay
	out    []byte // the response
}

// h1Request is what the fast path needs of a request head.
type h1Request struct {
	path          string
	contentLength int64
	enc           string // encJSON or encProto
	close         bool   // Connection: close
}

// serveHTTP1 runs the fast path on one HTTP/1.1 connection whose first
// bytes, already read, are head.
func (rc *Receiver) serveHTTP1(conn net.Conn, head []byte) {
	if rc.h1.off {
		rc.plain.deliver(&replayConn{Conn: conn, head: head})
		return
	}
	h := &h1Conn{fastConn: fastConn{conn: conn}, rc: rc, client: conn.RemoteAddr().String()}
	h.br = bufio.NewReaderSize(&replayConn{Conn: conn, head: head}, h1BufSize)
	if !rc.h1.add(&h.fastConn, rc) {
		conn.Close()
		return
	}
	defer rc.h1.remove(&h.fastConn)
	h.serve()
}

// add tracks c; false means traceport is shutting down and c is not served.
func (t *fastConns) add(c *fastConn, rc *Receiver) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rc.shuttingDown.Load() {
		return false
	}
	if t.conns == nil {
		t.conns = map[*fastConn]struct{}{}
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *fastConns) remove(c *fastConn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.wg.Done()
}

// closeIdle wakes the fast path's idle connections so they close; the
// busy ones close after their current request (shuttingDown is set).
func (t *fastConns) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h := range t.conns {
		if h.idle.Load() {
			h.conn.SetReadDeadline(time.Now())
		}
	}
}

// wait waits for the fast path's connections to close; when ctx ends
// first, it closes those left (as grpc.Server.Stop does), which ends their
// requests still uploading, counted as cut off.
func (t *fastConns) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.conns {
			c.conn.Close()
		}
		t.mu.Unlock()
	}
}

func (h *h1Conn) serve() {
	rc := h.rc
	for {
		if h.br.Buffered() == 0 {
			h.conn.SetReadDeadline(time.Now().Add(rc.cfg.IdleTimeout))
			h.idle.Store(true)
			if rc.shuttingDown.Load() {
				h.conn.Close()
				return
			}
			_, err := h.br.Peek(1)
			h.idle.Store(false)
			if err != nil {
				h.conn.Close()
				return
			}
		}
		start := time.Now()
		h.conn.SetReadDeadline(start.Add(rc.cfg.ReadHeaderTimeout))
		req, n, ok := h.readHead()
		if !ok {
			h.handOff(nil)
			return
		}
		h.conn.SetReadDeadline(start.Add(rc.cfg.ReadTimeout))
		if !h.serveZipkin(req, n) {
			return
		}
		if req.close || rc.shuttingDown.Load() {
			h.conn.Close()
			return
		}
	}
}

// readHead finds the next request's head in the buffer and parses it; n is
// its length. ok is false when the request is not the fast path's: nothing
// has been consumed then.
func (h *h1Conn) readHead() (req h1Request, n int, ok bool) {
	for {
		buf, _ := h.br.Peek(h.br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			req, ok = parseH1Head(buf[:i+2])
			return req, i + 4, ok
		}
		if h.br.Buffered() == h.br.Size() {
			return req, 0, false // a long head: net/http has the limits and the 431
		}
		if _, err := h.br.Peek(h.br.Buffered() + 1); err != nil {
			return req, 0, false // net/http reports the timeout or the cut
		}
	}
}

// parseH1Head accepts only heads of the fast path's shape; head ends with
// the last header line's CRLF.
func parseH1Head(head []byte) (req h1Request, ok bool) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	switch {
	case bytes.Equal(line, []byte("POST /api/v2/spans HTTP/1.1")):
		req.path = "/api/v2/spans"
	case bytes.Equal(line, []byte("POST /api/v1/spans HTTP/1.1")):
		req.path = "/api/v1/spans"
	default:
		return req, false
	}
	req.contentLength = -1
	req.enc = encJSON
	host, ctype := false, false
	for lines := 0; len(rest) > 0; lines++ {
		if lines == h1MaxLines {
			return req, false
		}
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || len(name) == 0 || !isToken(name) {
			return req, false // includes obs-fold continuation lines
		}
		value = bytes.Trim(value, " \t")
		if !isFieldValue(value) {
			return req, false
		}
		switch {
		case equalFold(name, "content-length"):
			if req.contentLength >= 0 || len(value) == 0 || len(value) > 12 {
				return req, false
			}
			cl, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || cl < 0 || value[0] == '+' {
				return req, false
			}
			req.contentLength = cl
		case equalFold(name, "content-type"):
			if ctype {
				return req, false
			}
			ctype = true
			mt, _, _ := bytes.Cut(value, []byte(";"))
			mt = bytes.TrimRight(mt, " \t")
			switch {
			case len(mt) == 0, equalFold(mt, "application/json"), equalFold(mt, "text/plain"):
				req.enc = encJSON
			case equalFold(mt, "application/x-protobuf"), equalFold(mt, "application/protobuf"):
				req.enc = encProto
			default:
				return req, false
			}
		case equalFold(name, "connection"):
			switch {
			case equalFold(value, "close"):
				req.close = true
			case equalFold(value, "keep-alive"):
			default:
				return req, false
			}
		case equalFold(name, "host"):
			if host {
				return req, false
			}
			host = true
		case equalFold(name, "content-encoding"):
			if !equalFold(value, "identity") {
				return req, false
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"), equalFold(name, "upgrade"),
			equalFold(name, "trailer"), equalFold(name, "te"):
			return req, false
		}
	}
	return req, host && req.contentLength >= 0
}

// serveZipkin serves one fast-path request; false when the connection was
// handed over or closed.
func (h *h1Conn) serveZipkin(req h1Request, headLen int) bool {
	rc := h.rc
	if req.contentLength > rc.cfg.MaxRequestBytes || rc.admit(false) != nil {
		h.handOff(nil) // net/http answers 413 or the refusal
		return false
	}
	buf, _ := h.br.Peek(headLen)
	h.head = append(h.head[:0], buf...)
	h.br.Discard(headLen)

	body := getBody()
	defer putBody(body)
	body.Grow(int(req.contentLength))
	b := body.AvailableBuffer()[:req.contentLength]
	if n, err := io.ReadFull(h.br, b); err != nil {
		h.handOff(b[:n]) // net/http meets the same timeout or cut, and reports it
		return false
	}
	data, owned, counts, rejected, err := rc.decodeZipkin(req.enc, b)
	if err != nil || rejected.Spans > 0 {
		release(owned)
		h.handOff(b) // handleZipkin decodes it again, counts and answers
		return false
	}
	if err := rc.ingestOwned(protoZipkin, req.enc, h.client, data, owned, counts, false); err != nil {
		w := &h1ResponseWriter{header: http.Header{}}
		rc.rejectHTTP(w, protoZipkin, "", asRefusal(err))
		h.out = w.appendTo(h.out[:0], req.close || rc.shuttingDown.Load())
	} else {
		h.out = appendH1Status(h.out[:0], http.StatusAccepted)
		h.out = append(h.out, "Content-Length: 0\r\n"...)
		if req.close || rc.shuttingDown.Load() {
			h.out = append(h.out, "Connection: close\r\n"...)
		}
		h.out = append(h.out, "\r\n"...)
	}
	rc.h1.served.Add(1)
	if _, err := h.conn.Write(h.out); err != nil {
		h.conn.Close()
		return false
	}
	return true
}

// handOff gives the connection to net/http, replaying the current request
// (its head, and body when it was read) and whatever followed it.
func (h *h1Conn) handOff(body []byte) {
	h.rc.h1.handedOff.Add(1)
	var replay []byte
	if body != nil {
		replay = append(append(replay, h.head...), body...)
	}
	rest, _ := h.br.Peek(h.br.Buffered())
	replay = append(replay, rest...)
	h.conn.SetReadDeadline(time.Time{})
	h.rc.plain.deliver(&replayConn{Conn: h.conn, head: replay})
}

// appendH1Status writes the status line and the Date header.
func appendH1Status(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\nDate: "...)
	b = append(b, httpDate()...)
	return append(b, "\r\n"...)
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var cachedDate atomic.Pointer[dateText]

// h1ResponseWriter collects a response that rejectHTTP writes.
type h1ResponseWriter struct {
	header http.Header
	code   int
	body   []byte
}

func (w *h1ResponseWriter) Header() http.Header { return w.header }

func (w *h1ResponseWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *h1ResponseWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

func (w *h1ResponseWriter) appendTo(b []byte, closing bool) []byte {
	b = appendH1Status(b, w.code)
	w.header.Set("Content-Length", strconv.Itoa(len(w.body)))
	if closing {
		w.header.Set("Connection", "close")
	}
	var hb bytes.Buffer
	w.header.Write(&hb)
	b = append(b, hb.Bytes()...)
	b = append(b, "\r\n"...)
	return append(b, w.body...)
}

// isToken reports whether b is an RFC 9110 token (a header name).
func isToken(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isFieldValue reports whether a header value has no control bytes (CR and
// LF included: they would end a line), as net/http requires.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// equalFold compares ASCII case-insensitively with a lower-case literal.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
