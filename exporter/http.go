package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/traceport/traceport/internal/grpccompress"
)

// maxResponse bounds how much of a response body is read: an OTLP
// response is a few bytes of partial success or a google.rpc.Status.
const maxResponse = 64 << 10

func (e *Exporter) initHTTP() {
	scheme := "http"
	if e.cfg.TLS != nil {
		scheme = "https"
	}
	e.url = scheme + "://" + e.cfg.Endpoint + "/v1/traces"
	e.header = http.Header{}
	for k, v := range e.cfg.Headers {
		e.header.Set(k, v)
	}
	e.header.Set("Content-Type", "application/x-protobuf")
	if e.cfg.Compression != "none" {
		e.header.Set("Content-Encoding", e.cfg.Compression)
	}
	e.httpClient = &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     e.cfg.TLS,
			ForceAttemptHTTP2:   e.cfg.TLS != nil,
			MaxIdleConnsPerHost: e.cfg.Senders,
			IdleConnTimeout:     90 * time.Second,
		},
		// A redirect on an export endpoint is a misconfiguration: report
		// the 3xx (as non-retryable) rather than resend the body elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var gzipWriters = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression); return w }}

// wire returns the request body, compressed once per batch and kept for
// its retries.
func (e *Exporter) wire(b *batch) (mem.Buffer, error) {
	raw := b.joined().ReadOnlyData()
	switch e.cfg.Compression {
	case "gzip":
		var out bytes.Buffer
		out.Grow(len(raw)/4 + 64)
		w := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(w)
		w.Reset(&out)
		if _, err := w.Write(raw); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return mem.SliceBuffer(out.Bytes()), nil
	case "zstd":
		return mem.SliceBuffer(grpccompress.ZstdEncoder.EncodeAll(raw, make([]byte, 0, len(raw)/4+64))), nil
	}
	p := b.joined()
	p.Ref() // the caller frees its reference like for a compressed body
	return p, nil
}

// sendOTLPHTTP POSTs the batch to /v1/traces and classifies the answer.
func (e *Exporter) sendOTLPHTTP(ctx context.Context, b *batch) error {
	if b.wire == nil {
		w, err := e.wire(b)
		if err != nil {
			return &attemptError{code: "compress", err: fmt.Errorf("compress: %w", err)}
		}
		b.wire = w
	}
	b.wire.Ref()
	body := &bufferBody{buf: b.wire, Reader: bytes.NewReader(b.wire.ReadOnlyData())}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, body)
	if err != nil {
		body.Close()
		return &attemptError{code: "request", err: err}
	}
	req.ContentLength = int64(b.wire.Len())
	req.Header = e.header.Clone()
	resp, err := e.httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return transportError(context.Cause(ctx))
		}
		return transportError(err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil && resp.StatusCode/100 != 2 {
		return transportError(fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode/100 == 2 {
		b.rejected = int(rejectedSpans(msg))
		b.sent = b.spans - b.rejected
		return nil
	}
	return classifyHTTP(resp.StatusCode, resp.Header.Get("Retry-After"), time.Now(),
		fmt.Errorf("%s %s: %s", e.url, resp.Status, statusMessage(msg)))
}

// bufferBody is a request body holding a reference on a pooled buffer until
// the transport closes it, which may be after Do returns.
type bufferBody struct {
	*bytes.Reader
	buf  mem.Buffer
	once sync.Once
}

func (b *bufferBody) Close() error {
	b.once.Do(func() { b.buf.Free() })
	return nil
}

// statusMessage reads google.rpc.Status.message (field 2), which OTLP/HTTP
// servers answer failures with; anything else is shown as short text.
func statusMessage(body []byte) string {
	for rest := body; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			break
		}
		rest = rest[n:]
		if num == 2 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(rest)
			if n >= 0 {
				return string(v)
			}
			break
		}
		n = protowire.ConsumeFieldValue(num, typ, rest)
		if n < 0 {
			break
		}
		rest = rest[n:]
	}
	s := strings.ToValidUTF8(string(body[:min(len(body), 256)]), "?")
	return strings.TrimSpace(s)
}
