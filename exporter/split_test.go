package exporter

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// mixedRequest has two resources, the first with two scopes, spans of
// uneven sizes and one span with a big attribute (bigAttr bytes).
func mixedRequest(tb testing.TB, bigAttr int) []byte {
	tb.Helper()
	td := ptrace.NewTraces()
	n := 0
	addSpans := func(ss ptrace.ScopeSpans, count int) {
		for range count {
			s := ss.Spans().AppendEmpty()
			s.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, byte(n)})
			s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, byte(n >> 8), byte(n)})
			s.SetName("op-" + strconv.Itoa(n))
			s.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + n))
			s.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_001_000_000 + n))
			s.Attributes().PutStr("pad", strings.Repeat("x", 10*(n%7)))
			if n == 5 && bigAttr > 0 {
				s.Attributes().PutStr("big", strings.Repeat("b", bigAttr))
			}
			n++
		}
	}
	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	rs.Resource().Attributes().PutStr("service.name", "cart")
	rs.Resource().Attributes().PutStr("host.name", "node-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("otelhttp")
	ss.Scope().SetVersion("0.61.0")
	addSpans(ss, 12)
	ss = rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("otelsql")
	ss.SetSchemaUrl("https://opentelemetry.io/schemas/1.24.0")
	addSpans(ss, 7)
	rs = td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "pay")
	addSpans(rs.ScopeSpans().AppendEmpty(), 9)
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// flatSpans decodes requests and returns each span with its resource and
// scope, as one serialized single-span request per span, in order: two
// lists are equal when the same spans sit under the same resources and
// scopes.
func flatSpans(tb testing.TB, reqs ...[]byte) []string {
	tb.Helper()
	var out []string
	for _, req := range reqs {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(req)
		if err != nil {
			tb.Fatalf("part does not decode: %v", err)
		}
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j)
				for k := 0; k < ss.Spans().Len(); k++ {
					one := ptrace.NewTraces()
					ors := one.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(ors.Resource())
					ors.SetSchemaUrl(rs.SchemaUrl())
					oss := ors.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(oss.Scope())
					oss.SetSchemaUrl(ss.SchemaUrl())
					ss.Spans().At(k).CopyTo(oss.Spans().AppendEmpty())
					b, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(one)
					out = append(out, string(b))
				}
			}
		}
	}
	return out
}

// Every part fits, and the parts re-assemble to the original spans under
// their original resources and scopes, byte for byte, in order.
func TestSplitRequest(t *testing.T) {
	req := mixedRequest(t, 3000)
	want := flatSpans(t, req)
	for _, limit := range []int{1 << 20, len(req), len(req) - 1, 2000, 700, 300, 50} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			parts, err := SplitRequest(req, limit)
			if err != nil {
				t.Fatal(err)
			}
			var datas [][]byte
			spans := 0
			for i, p := range parts {
				if len(p.Data) > limit && p.Spans != 1 {
					t.Errorf("part %d: %d bytes, %d spans: over the limit %d", i, len(p.Data), p.Spans, limit)
				}
				if got := flatSpans(t, p.Data); len(got) != p.Spans {
					t.Errorf("part %d: says %d spans, holds %d", i, p.Spans, len(got))
				}
				datas = append(datas, p.Data)
				spans += p.Spans
			}
			if spans != len(want) {
				t.Fatalf("%d spans in the parts, want %d", spans, len(want))
			}
			got := flatSpans(t, datas...)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("span %d differs after the split", i)
				}
			}
			if limit >= len(req) && len(parts) != 1 {
				t.Errorf("%d parts for a request that fits, want 1", len(parts))
			}
			if limit < len(req) && len(parts) < 2 {
				t.Errorf("%d parts for a request over the limit", len(parts))
			}
		})
	}
}

// The parts of a small request, as pdata's JSON: what a destination sees.
func TestSplitRequestGolden(t *testing.T) {
	parts, err := SplitRequest(mixedRequest(t, 0), 900)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, p := range parts {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
		out.WriteString(strconv.Itoa(len(p.Data)) + " bytes, " + strconv.Itoa(p.Spans) + " spans: ")
		out.Write(j)
		out.WriteByte('\n')
	}
	path := filepath.Join("testdata", "split", "parts.golden")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, out.Bytes(), 0o644)
		return
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(out.Bytes(), golden) {
		t.Errorf("parts differ from %s; got:\n%s", path, out.Bytes())
	}
}

// Legacy instrumentation_library_spans (field 1000): alone they are the
// spans and are cut; next to scope_spans they are ignored by receivers and
// left out.
func TestSplitRequestLegacyScopes(t *testing.T) {
	span := func(id byte) []byte {
		var s []byte
		s = append(s, 0x0a, 16) // trace_id
		s = append(s, bytes.Repeat([]byte{id}, 16)...)
		s = append(s, 0x12, 8) // span_id
		s = append(s, bytes.Repeat([]byte{id}, 8)...)
		return append([]byte{0x12, byte(len(s))}, s...) // ScopeSpans.spans
	}
	legacy := append(append([]byte{}, span(1)...), span(2)...)
	wrap := func(num byte, body []byte) []byte {
		if num == 2 {
			return append([]byte{0x12, byte(len(body))}, body...)
		}
		return append([]byte{0xc2, 0x3e, byte(len(body))}, body...) // field 1000
	}
	req := func(rs []byte) []byte { return append([]byte{0x0a, byte(len(rs))}, rs...) }

	parts, err := SplitRequest(req(wrap(232, legacy)), 60)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].Spans != 1 || parts[1].Spans != 1 || !bytes.Contains(parts[0].Data, []byte{0xc2, 0x3e}) {
		t.Errorf("legacy alone: %d parts %v", len(parts), parts)
	}
	parts, err = SplitRequest(req(append(wrap(2, span(3)), wrap(232, legacy)...)), 60)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].Spans != 1 || bytes.Contains(parts[0].Data, []byte{0xc2, 0x3e}) {
		t.Errorf("legacy next to scope_spans: %d parts %v", len(parts), parts)
	}
}

func TestSplitRequestMalformed(t *testing.T) {
	req := mixedRequest(t, 0)
	if _, err := SplitRequest(req[:len(req)-3], 500); err == nil {
		t.Error("truncated request split without error")
	}
}

// A push over ExportMaxBytes arrives whole at a backend that refuses
// anything larger, in parts; only a span that cannot fit alone is dropped,
// as too_large.
func TestExportFitsTheLimit(t *testing.T) {
	const limit = 64 << 10
	for _, proto := range protocols {
		for _, tc := range []struct {
			name       string
			exportMax  int // what traceport is told
			backendMax int // what the backend enforces
		}{
			{"cut to export-max-bytes", limit, limit},
			{"backend smaller: halved on refusal", 4 << 20, limit},
		} {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				be := newLimitedBackend(t, proto, tc.backendMax)
				cfg := testConfig(be.addr, proto)
				cfg.ExportMaxBytes = tc.exportMax
				cfg.Compression = "none" // the limit is on the uncompressed size; gzip only costs time here
				e, reg := start(t, cfg)
				big := request(t, 1000) // ~430 KB
				huge := mixedRequest(t, limit+1000)
				if err := e.Push(big, 1000, false, nil); err != nil {
					t.Fatal(err)
				}
				if err := e.Push(huge, 28, false, nil); err != nil {
					t.Fatal(err)
				}
				eventually(t, 20*time.Second, "settled", settled(e))
				s := checkIdentity(t, e, reg)
				if be.received() != 1000+27 || s.Exported != 1027 {
					t.Errorf("backend got %d spans, exported %d; want 1027", be.received(), s.Exported)
				}
				for _, r := range reasonNames {
					want := int64(0)
					if r == ReasonTooLarge {
						want = 1
					}
					if s.Dropped[r] != want {
						t.Errorf("dropped{%s} = %d, want %d", r, s.Dropped[r], want)
					}
				}
				if m := scrape(t, reg); m["traceport_dropped_spans_total{reason=too_large}"] != 1 {
					t.Errorf("traceport_dropped_spans_total{reason=too_large} = %v, want 1", m["traceport_dropped_spans_total{reason=too_large}"])
				}
				be.mu.Lock()
				defer be.mu.Unlock()
				for i, n := range be.sizes {
					if n > tc.backendMax {
						t.Errorf("call %d: backend accepted %d bytes over its limit", i, n)
					}
				}
			})
		}
	}
}

// jaeger-grpc: a batch the collector refuses as too large is halved until
// it passes; a single span it refuses is dropped as too_large.
func TestJaegerGRPCTooLarge(t *testing.T) {
	const limit = 64 << 10
	fc, addr := newLimitedCollector(t, limit)
	cfg := testConfig(addr, ProtocolJaegerGRPC)
	cfg.ExportMaxBytes = 4 << 20
	e, reg := start(t, cfg)
	if err := e.Push(request(t, 1000), 1000, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Push(mixedRequest(t, limit+1000), 28, false, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "settled", settled(e))
	s := checkIdentity(t, e, reg)
	got := fc.accepted()
	if got["checkout"] != 1000 || got["cart"]+got["pay"] != 27 || s.Exported != 1027 {
		t.Errorf("collector accepted %v, exported %d; want checkout 1000, cart+pay 27", got, s.Exported)
	}
	if s.Dropped[ReasonTooLarge] != 1 || s.Dropped[ReasonNonRetryable] != 0 {
		t.Errorf("dropped %v, want too_large 1 only", s.Dropped)
	}
}

// FuzzSplitRequest: any bytes are cut without a panic; a request the
// receiver accepts is cut into parts it accepts too, holding the same
// spans, each part within the limit unless it is a single span.
func FuzzSplitRequest(f *testing.F) {
	f.Add(mixedRequest(f, 0), 300)
	f.Add(mixedRequest(f, 2000), 1000)
	f.Add(request(f, 3), 100)
	f.Fuzz(func(t *testing.T, req []byte, limit int) {
		limit = 1 + abs(limit)%(1<<20)
		parts, err := SplitRequest(req, limit)
		counts, scanErr := translate.ScanOTLP(req, nil)
		if scanErr != nil {
			return
		}
		if err != nil {
			t.Fatalf("a request ScanOTLP accepts does not split: %v", err)
		}
		want := 0
		for _, c := range counts {
			want += c.Spans
		}
		got := 0
		for i, p := range parts {
			pc, err := translate.ScanOTLP(p.Data, nil)
			if err != nil {
				t.Fatalf("part %d refused: %v", i, err)
			}
			n := 0
			for _, c := range pc {
				n += c.Spans
			}
			if n != p.Spans {
				t.Fatalf("part %d says %d spans, holds %d", i, p.Spans, n)
			}
			if len(p.Data) > limit && p.Spans != 1 {
				t.Fatalf("part %d: %d bytes, %d spans, over %d", i, len(p.Data), p.Spans, limit)
			}
			got += p.Spans
		}
		if got != want {
			t.Fatalf("parts hold %d spans, the request %d", got, want)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
