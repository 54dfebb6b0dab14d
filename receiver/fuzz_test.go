package receiver

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	fuzzPaths     = []string{"/api/v2/spans", "/api/v1/spans", "/v1/traces", "/other"}
	fuzzTypes     = []string{"application/json", "application/x-protobuf", "", "text/plain; charset=utf-8"}
	fuzzEncodings = []string{"", "gzip", "deflate", "zstd"}
)

// FuzzHTTPHandler throws arbitrary bodies at every route of the one port.
// Whatever comes in: no panic, a status from the documented set, and the
// request is either accepted (and its spans pushed) or counted as refused.
func FuzzHTTPHandler(f *testing.F) {
	files, _ := filepath.Glob("../translate/testdata/zipkin/*.json")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(uint8(0), uint8(0), uint8(0), b)
		f.Add(uint8(1), uint8(2), uint8(0), b)
	}
	f.Add(uint8(2), uint8(1), uint8(0), []byte{0x0a, 0x02, 0x12, 0x00})
	f.Add(uint8(2), uint8(0), uint8(0), []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x"}]}]}]}`))
	f.Add(uint8(0), uint8(0), uint8(1), gzipped([]byte(`[{"traceId":"1","id":"2"}]`)))

	reg := prometheus.NewRegistry()
	sink := &recordingSink{}
	rc := New(Config{MaxRequestBytes: 1 << 20, MaxServices: 50}, sink, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	allowed := map[int]bool{200: true, 202: true, 400: true, 404: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, path, ct, enc uint8, body []byte) {
		req := httptest.NewRequest(http.MethodPost, fuzzPaths[int(path)%len(fuzzPaths)], bytes.NewReader(body))
		req.Header.Set("Content-Type", fuzzTypes[int(ct)%len(fuzzTypes)])
		if e := fuzzEncodings[int(enc)%len(fuzzEncodings)]; e != "" {
			req.Header.Set("Content-Encoding", e)
		}
		rejectedBefore := sumCounter(t, reg, "traceport_rejected_requests_total")
		sink.mu.Lock()
		pushesBefore := len(sink.pushes)
		sink.mu.Unlock()

		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)

		if !allowed[rec.Code] {
			t.Fatalf("status %d (%s) is not one the one port documents", rec.Code, rec.Body.String())
		}
		refused := sumCounter(t, reg, "traceport_rejected_requests_total") - rejectedBefore
		sink.mu.Lock()
		pushed := len(sink.pushes) - pushesBefore
		sink.mu.Unlock()
		switch {
		case rec.Code >= 400 && refused != 1:
			t.Fatalf("status %d but rejected_requests_total grew by %v", rec.Code, refused)
		case rec.Code < 400 && refused != 0:
			t.Fatalf("status %d but counted as refused", rec.Code)
		case rec.Code >= 400 && pushed != 0:
			t.Fatalf("status %d but spans were pushed", rec.Code)
		}
	})
}

func sumCounter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
