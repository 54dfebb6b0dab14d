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

// wire returns the request body, compressed once per part and kept for
// its retries.
func (e *Exporter) wire(p *part) (mem.Buffer, error) {
	raw := p.joined().ReadOnlyData()
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
	body := p.joined()
	body.Ref() // the caller frees its reference like for a compressed body
	return body, nil
}

// sendOTLPHTTP POSTs each part to /v1/traces.
func (e *Exporter) sendOTLPHTTP(ctx context.Context, b *batch) error {
	return e.sendParts(ctx, b, e.postHTTP)
}

// postHTTP POSTs one part and classifies the answer.
func (e *Exporter) postHTTP(ctx context.Context, p *part) (rejected int64, err error) {
	if p.wire == nil {
		w, err := e.wire(p)
		if err != nil {
			return 0, &attemptError{code: "compress", err: fmt.Errorf("compress: %w", err)}
		}
		p.wire = w
	}
	p.wire.Ref()
	body := &bufferBody{buf: p.wire, Reader: bytes.NewReader(p.wire.ReadOnlyData())}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, body)
	if err != nil {
		body.Close()
		return 0, &attemptError{code: "request", err: err}
	}
	req.ContentLength = int64(p.wire.Len())
	req.Header = e.header.Clone()
	resp, err := e.httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, transportError(context.Cause(ctx))
		}
		return 0, transportError(err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil && resp.StatusCode/100 != 2 {
		return 0, transportError(fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode/100 == 2 {
		return rejectedSpans(msg), nil
	}
	return 0, classifyHTTP(resp.StatusCode, resp.Header.Get("Retry-After"), time.Now(),
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
