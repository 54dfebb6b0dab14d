package transport

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http/httpguts"
)

// The HTTP/1.1 fast path reads one shape of request itself: Envoy's Zipkin
// posts (POST /api/v2/spans or /api/v1/spans, HTTP/1.1, a Content-Length, no
// Content-Encoding), on keep-alive connections; anything else, and any
// request the handler does not take, is handed with its connection to
// net/http, the bytes read so far replayed. See DESIGN.md for why.

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

	off               atomic.Bool  // --fast-paths=off (and tests): no connection takes the fast path
	served, handedOff atomic.Int64 // tests check the routing
}

// fastConn is a connection as fastConns sees it.
type fastConn struct {
	conn net.Conn
	idle atomic.Bool // waiting for a request: Shutdown may wake it to close
}

type h1Conn struct {
	fastConn
	srv    *Server
	br     *bufio.Reader
	client string
	head   []byte // the current request's head, kept for a replay
	out    []byte // the response
	w      h1ResponseWriter
	req    ZipkinRequest
}

// h1Request is what the fast path needs of a request head.
type h1Request struct {
	path          string
	contentLength int64
	enc           string // EncodingJSON or EncodingProto
	close         bool   // Connection: close
}

// serveHTTP1 runs the fast path on one HTTP/1.1 connection whose first
// bytes, already read, are head.
func (srv *Server) serveHTTP1(conn net.Conn, head []byte) {
	if srv.h1.off.Load() {
		srv.plain.deliver(&replayConn{Conn: conn, head: head})
		return
	}
	h := &h1Conn{fastConn: fastConn{conn: conn}, srv: srv, client: conn.RemoteAddr().String()}
	h.br = bufio.NewReaderSize(&replayConn{Conn: conn, head: head}, h1BufSize)
	if !srv.h1.add(&h.fastConn, srv) {
		conn.Close()
		return
	}
	defer srv.h1.remove(&h.fastConn)
	h.serve()
}

// add tracks c; false means traceport is shutting down and c is not served.
func (t *fastConns) add(c *fastConn, srv *Server) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if srv.shuttingDown.Load() {
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

func (t *fastConns) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
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
	srv := h.srv
	// route set the first request's header deadline when the connection
	// came in, as net/http starts its clock then; later requests start
	// theirs when their first byte arrives.
	first := true
	for {
		if !first && h.br.Buffered() == 0 {
			h.conn.SetReadDeadline(time.Now().Add(srv.cfg.IdleTimeout))
			h.idle.Store(true)
			if srv.shuttingDown.Load() {
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
		if !first {
			h.conn.SetReadDeadline(start.Add(srv.cfg.ReadHeaderTimeout))
		}
		first = false
		req, n, ok, err := h.readHead()
		switch {
		case err != nil && isTimeout(err): // (isTimeout allocates)
			h.conn.Close() // as net/http: a head that timed out gets no reply
			return
		case !ok:
			h.handOff(nil)
			return
		}
		h.conn.SetReadDeadline(start.Add(srv.cfg.ReadTimeout))
		if !h.serveZipkin(req, n) {
			return
		}
		if req.close || srv.shuttingDown.Load() {
			h.conn.Close()
			return
		}
	}
}

var crlf, crlfcrlf = []byte("\r\n"), []byte("\r\n\r\n")

// readHead finds the next request's head in the buffer and parses it; n is
// its length. ok is false when the request is not the fast path's: nothing
// has been consumed then. Each line is checked as it arrives, so a head
// net/http refuses at its first bad line (a bare LF, another request line,
// a malformed header) is handed over at once rather than after the header
// timeout. err is the read's failure (timeout, client gone) mid-head.
func (h *h1Conn) readHead() (req h1Request, n int, ok bool, err error) {
	scanned, parsed := 0, 0 // bytes searched for the blank line; bytes of complete lines checked
	for {
		buf, _ := h.br.Peek(h.br.Buffered())
		from := max(0, scanned-3)
		if i := bytes.Index(buf[from:], crlfcrlf); i >= 0 {
			if hasBareLF(buf[:from+i+2]) {
				return req, 0, false, nil
			}
			req, ok = parseH1Head(buf[:from+i+2], true)
			return req, from + i + 4, ok, nil
		}
		if end := bytes.LastIndex(buf, crlf) + 2; end >= 2 && end > parsed {
			if hasBareLF(buf[parsed:end]) {
				return req, 0, false, nil
			}
			if _, ok := parseH1Head(buf[:end], false); !ok {
				return req, 0, false, nil
			}
			parsed = end
		}
		if hasBareLF(buf[parsed:]) {
			return req, 0, false, nil
		}
		scanned = len(buf)
		if h.br.Buffered() == h.br.Size() {
			return req, 0, false, nil // a long head: net/http has the limits and the 431
		}
		if _, err := h.br.Peek(h.br.Buffered() + 1); err != nil {
			return req, 0, false, err
		}
	}
}

// hasBareLF reports whether b has an LF that no CR precedes (b starts at a
// line's beginning).
func hasBareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// parseH1Head accepts only heads of the fast path's shape, read as net/http
// reads them; head ends with the last header line's CRLF. With complete
// false, head is what has arrived of one, and ok means only that nothing
// in it rules the fast path out yet.
func parseH1Head(head []byte, complete bool) (req h1Request, ok bool) {
	line, rest, _ := bytes.Cut(head, crlf)
	switch {
	case bytes.Equal(line, []byte("POST /api/v2/spans HTTP/1.1")):
		req.path = "/api/v2/spans"
	case bytes.Equal(line, []byte("POST /api/v1/spans HTTP/1.1")):
		req.path = "/api/v1/spans"
	default:
		return req, false
	}
	req.contentLength = -1
	req.enc = EncodingJSON
	host, ctype := false, false
	for lines := 0; len(rest) > 0; lines++ {
		if lines == h1MaxLines {
			return req, false
		}
		line, rest, _ = bytes.Cut(rest, crlf)
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
			if req.enc, ok = zipkinEncoding(value); !ok {
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
			// net/http answers 400 "malformed Host header" to these.
			if host || !httpguts.ValidHostHeader(string(value)) {
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
	return req, !complete || host && req.contentLength >= 0
}

// zipkinEncoding is the encoding a Zipkin Content-Type value asks for, as
// the Zipkin handler reads it (mime.ParseMediaType); ok is false for any value
// that handler would refuse.
func zipkinEncoding(value []byte) (enc string, ok bool) {
	mt := value
	if bytes.IndexByte(value, ';') >= 0 || bytes.IndexByte(value, ' ') >= 0 || bytes.IndexByte(value, '\t') >= 0 {
		parsed, _, err := mime.ParseMediaType(string(value))
		if err != nil {
			return "", false
		}
		mt = []byte(parsed)
	}
	switch {
	case len(mt) == 0, equalFold(mt, "application/json"), equalFold(mt, "text/plain"):
		return EncodingJSON, true
	case equalFold(mt, "application/x-protobuf"), equalFold(mt, "application/protobuf"):
		return EncodingProto, true
	}
	return "", false
}

// serveZipkin serves one fast-path request; false when the connection was
// handed over or closed.
func (h *h1Conn) serveZipkin(req h1Request, headLen int) bool {
	srv := h.srv
	if req.contentLength > srv.cfg.MaxRequestBytes || !srv.h.Zipkin.AdmitZipkin() {
		h.handOff(nil) // net/http answers 413 or the refusal
		return false
	}
	buf, _ := h.br.Peek(headLen)
	h.head = append(h.head[:0], buf...)
	h.br.Discard(headLen)

	hold := srv.budget.NewHold()
	defer hold.Free()
	b, body, err := h.readBody(req.contentLength, &hold)
	if body != nil {
		defer putBody(body)
	}
	switch {
	case err == nil:
	case err == ErrOverBudget:
		return h.refuse(ErrOverBudget)
	case isTimeout(err):
		// Handed over, net/http would start the clock again: answer as its
		// handler does when the body read times out.
		return h.refuse(&ReadError{Err: err})
	default:
		hold.Free()
		h.handOff(b) // net/http meets the same cut, and reports it
		return false
	}
	h.w.reset()
	h.req = ZipkinRequest{Path: req.path, Encoding: req.enc, Client: h.client, Body: b}
	if !srv.h.Zipkin.ServeZipkin(&h.w, &h.req) {
		hold.Free()
		h.handOff(b) // the net/http handler decodes it again, counts and answers
		return false
	}
	h.req.Body = nil
	hold.Free() // queued or refused: the body is done with
	if h.w.code != 0 {
		h.out = h.w.appendTo(h.out[:0], req.close || srv.shuttingDown.Load())
	} else {
		h.out = appendH1Status(h.out[:0], http.StatusAccepted)
		h.out = append(h.out, "Content-Length: 0\r\n"...)
		if req.close || srv.shuttingDown.Load() {
			h.out = append(h.out, "Connection: close\r\n"...)
		}
		h.out = append(h.out, "\r\n"...)
	}
	srv.h1.served.Add(1)
	return h.write()
}

// readBody reads a body of n bytes, charging hold as they arrive. A body
// that fits the read buffer is decoded where it lies; a larger one goes to
// a pooled buffer that grows with what has arrived (about twice it at
// most), never to the declared length up front. b is what was read, also
// when err says why the rest was not.
func (h *h1Conn) readBody(n int64, hold *Hold) (b []byte, body *bytes.Buffer, err error) {
	if n <= int64(h.br.Size()) {
		b, err = h.br.Peek(int(n))
		h.br.Discard(len(b)) // the bytes stay in place until the next read
		if !hold.Grow(int64(len(b))) {
			return b, nil, ErrOverBudget
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return b, nil, err
	}
	body = getBody()
	for left := n; left > 0; {
		if body.Available() == 0 {
			body.Grow(int(min(left, max(int64(body.Len()), int64(h.br.Size())))))
		}
		p := body.AvailableBuffer()
		p = p[:min(int64(cap(p)), left)]
		m, err := h.br.Read(p)
		if !hold.Grow(int64(m)) {
			return body.Bytes(), body, ErrOverBudget
		}
		body.Write(p[:m])
		left -= int64(m)
		if err != nil && left > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return body.Bytes(), body, err
		}
	}
	return body.Bytes(), body, nil
}

// refuse answers a request the fast path cannot finish reading (its body
// is left on the wire) and closes the connection, as net/http does; false.
func (h *h1Conn) refuse(err error) bool {
	h.w.reset()
	h.srv.h.Zipkin.RejectZipkin(&h.w, err)
	h.out = h.w.appendTo(h.out[:0], true)
	h.srv.h1.served.Add(1)
	h.write()
	h.conn.Close()
	return false
}

// write sends h.out under a write deadline, so a client that stops reading
// cannot hold the connection (and its goroutine) forever; false when the
// connection is gone.
func (h *h1Conn) write() bool {
	h.conn.SetWriteDeadline(time.Now().Add(h.srv.cfg.ReadTimeout))
	if _, err := h.conn.Write(h.out); err != nil {
		h.conn.Close()
		return false
	}
	return true
}

// handOff gives the connection to net/http, replaying the current request
// (its head, and body when it was read) and whatever followed it.
func (h *h1Conn) handOff(body []byte) {
	h.srv.h1.handedOff.Add(1)
	var replay []byte
	if body != nil {
		replay = append(append(replay, h.head...), body...)
	}
	rest, _ := h.br.Peek(h.br.Buffered())
	replay = append(replay, rest...)
	h.conn.SetDeadline(time.Time{})
	h.srv.plain.deliver(&replayConn{Conn: h.conn, head: replay})
}

// bodyPool holds the buffers of bodies larger than the read buffer; the
// handler copies what it keeps, so a buffer goes back once it returns.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBody() *bytes.Buffer { return bodyPool.Get().(*bytes.Buffer) }

func putBody(b *bytes.Buffer) {
	if b.Cap() > 4<<20 { // don't let one huge request pin memory forever
		return
	}
	b.Reset()
	bodyPool.Put(b)
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

// h1ResponseWriter collects a response the handler writes. One per
// connection, reused: a request answered 202 costs no allocation.
type h1ResponseWriter struct {
	header http.Header
	code   int
	body   []byte
}

func (w *h1ResponseWriter) reset() {
	clear(w.header)
	w.code = 0
	w.body = w.body[:0]
}

func (w *h1ResponseWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

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
	w.Header().Set("Content-Length", strconv.Itoa(len(w.body)))
	if closing {
		w.Header().Set("Connection", "close")
	}
	var hb bytes.Buffer
	w.Header().Write(&hb)
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

// fastPathRequests is traceport_fastpath_requests_total, read from the fast
// paths' own counters.
type fastPathRequests struct{ srv *Server }

var fastPathRequestsDesc = prometheus.NewDesc("traceport_fastpath_requests_total",
	"Requests a fast path served itself, or handed over (with their connection) to net/http or grpc.Server.",
	[]string{"path", "outcome"}, nil)

func (c fastPathRequests) Describe(ch chan<- *prometheus.Desc) { ch <- fastPathRequestsDesc }

func (c fastPathRequests) Collect(ch chan<- prometheus.Metric) {
	for _, p := range []struct {
		name  string
		conns *fastConns
	}{{"http1", &c.srv.h1}, {"grpc", &c.srv.h2}} {
		ch <- prometheus.MustNewConstMetric(fastPathRequestsDesc, prometheus.CounterValue, float64(p.conns.served.Load()), p.name, "served")
		ch <- prometheus.MustNewConstMetric(fastPathRequestsDesc, prometheus.CounterValue, float64(p.conns.handedOff.Load()), p.name, "handed_over")
	}
}
