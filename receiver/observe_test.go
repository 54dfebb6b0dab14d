package receiver

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/mem"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/translate"
)

// walkCounter is an Observer that counts the walks it is part of: a walk it
// watches (Begin … End) and a request handed to it whole (Observe), which
// it would have to walk again.
type walkCounter struct {
	watched, accepted, refused, whole int
	acceptedSpans                     int // spans shown by the walks of accepted requests
}

type walkVisit struct {
	c     *walkCounter
	spans int
}

func (v *walkVisit) OTLPResource(service, namespace []byte) {}
func (v *walkVisit) OTLPSpan(translate.OTLPSpan)            { v.spans++ }

func (c *walkCounter) Observe(string, []byte) { c.whole++ }

func (c *walkCounter) Begin(string) translate.OTLPVisitor {
	c.watched++
	return &walkVisit{c: c}
}

func (c *walkCounter) End(v translate.OTLPVisitor, accepted bool) {
	if !accepted {
		c.refused++
		return
	}
	c.accepted++
	c.acceptedSpans += v.(*walkVisit).spans
}

// TestOTLPRequestIsWalkedOnce: the observer (trace health) watches the
// receiver's validation walk of an OTLP request instead of walking it
// again, and is told which walks ended in an accepted request; requests the
// receiver converted itself are handed over whole.
func TestOTLPRequestIsWalkedOnce(t *testing.T) {
	newReceiver := func(obs Observer) *Receiver {
		reg := prometheus.NewRegistry()
		return New(Config{MaxRequestBytes: 1 << 20, MaxServices: 100, Observer: obs}, discardSink{}, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	postHTTP := func(rc *Receiver, path, contentType string, body []byte) int {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		return rec.Code
	}
	sdk := bench.SDKOTLP(100, 1)
	for _, c := range []struct {
		name string
		send func(rc *Receiver)
		want walkCounter
	}{
		{"otlp/http", func(rc *Receiver) { postHTTP(rc, "/v1/traces", "application/x-protobuf", sdk) },
			walkCounter{watched: 1, accepted: 1, acceptedSpans: 100}},
		{"otlp/grpc", func(rc *Receiver) {
			if _, err := rc.exportOTLP("test", sdk, mem.SliceBuffer(sdk)); err != nil {
				t.Fatal(err)
			}
		}, walkCounter{watched: 1, accepted: 1, acceptedSpans: 100}},
		// The first walk finds the bad span and is refused; the walk of
		// the filtered copy is the one accepted.
		{"otlp/grpc partial", func(rc *Receiver) {
			body := partialBody(t)
			if _, err := rc.exportOTLP("test", body, mem.SliceBuffer(body)); err != nil {
				t.Fatal(err)
			}
		}, walkCounter{watched: 2, refused: 1, accepted: 1, acceptedSpans: 2}},
		{"otlp/http malformed", func(rc *Receiver) {
			if code := postHTTP(rc, "/v1/traces", "application/x-protobuf", sdk[:len(sdk)-3]); code != http.StatusBadRequest {
				t.Fatalf("truncated request: status %d", code)
			}
		}, walkCounter{watched: 1, refused: 1}},
		{"zipkin", func(rc *Receiver) { postHTTP(rc, "/api/v2/spans", "application/json", bench.EnvoyZipkinJSON(10, 1)) },
			walkCounter{whole: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got walkCounter
			c.send(newReceiver(&got))
			if got != c.want {
				t.Fatalf("observer saw %+v, want %+v", got, c.want)
			}
		})
	}
}
