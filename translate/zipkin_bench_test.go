//go:build unix

package translate

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// envoyBody builds n Envoy/Istio-shaped v2 JSON spans (~1 KB each, the
// measured workload of MEASUREMENTS.md) from the field sample.
func envoyBody(tb testing.TB, n int) []byte {
	tb.Helper()
	raw, err := os.ReadFile("testdata/zipkin/envoy-istio-v2.json")
	if err != nil {
		tb.Fatal(err)
	}
	var two []map[string]any
	if err := json.Unmarshal(raw, &two); err != nil {
		tb.Fatal(err)
	}
	spans := make([]map[string]any, n)
	for i := range spans {
		s := map[string]any{}
		for k, v := range two[i%2] {
			s[k] = v
		}
		s["traceId"] = fmt.Sprintf("%032x", uint64(0x80f198ee56343ba8)+uint64(i/2))
		s["id"] = fmt.Sprintf("%016x", uint64(0xe457b5a2e4d86bd1)+uint64(i))
		if i%2 == 1 {
			s["parentId"] = fmt.Sprintf("%016x", uint64(0xe457b5a2e4d86bd1)+uint64(i-1))
		}
		spans[i] = s
	}
	body, err := json.Marshal(spans)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

func benchDecode(b *testing.B, body []byte, n int, decode func([]byte) (ptrace.Traces, error)) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for range b.N {
		td, err := decode(body)
		if err != nil || td.SpanCount() != n {
			b.Fatalf("%v, %d spans", err, td.SpanCount())
		}
	}
	// CPU time of the whole process (GC workers included), as
	// MEASUREMENTS.md counts it: wall time lies on a busy machine.
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N*n), "cpu-ns/span")
}

func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkZipkinV2JSON(b *testing.B) {
	body := envoyBody(b, 100)
	benchDecode(b, body, 100, func(body []byte) (ptrace.Traces, error) {
		td, _, err := ZipkinV2JSON(body, ZipkinOptions{})
		return td, err
	})
}

// BenchmarkZipkinV2JSONViaZipkinGo is the road not taken (and roughly the
// Collector's): encoding/json into zipkin-go's model, then a plain conversion.
func BenchmarkZipkinV2JSONViaZipkinGo(b *testing.B) {
	body := envoyBody(b, 100)
	benchDecode(b, body, 100, func(body []byte) (ptrace.Traces, error) {
		var spans []*zipkinmodel.SpanModel
		if err := json.Unmarshal(body, &spans); err != nil {
			return ptrace.Traces{}, err
		}
		return zipkinModelToTraces(spans), nil
	})
}

func zipkinModelToTraces(spans []*zipkinmodel.SpanModel) ptrace.Traces {
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for _, z := range spans {
		svc := FallbackServiceName
		if z.LocalEndpoint != nil && z.LocalEndpoint.ServiceName != "" {
			svc = z.LocalEndpoint.ServiceName
		}
		ss, ok := bySvc[svc]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", svc)
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			bySvc[svc] = ss
		}
		sp := ss.AppendEmpty()
		var tid [16]byte
		for i := 0; i < 8; i++ {
			tid[i] = byte(z.TraceID.High >> (56 - 8*i))
			tid[8+i] = byte(z.TraceID.Low >> (56 - 8*i))
		}
		sp.SetTraceID(tid)
		var sid [8]byte
		for i := 0; i < 8; i++ {
			sid[i] = byte(uint64(z.ID) >> (56 - 8*i))
		}
		sp.SetSpanID(sid)
		if z.ParentID != nil {
			var pid [8]byte
			for i := 0; i < 8; i++ {
				pid[i] = byte(uint64(*z.ParentID) >> (56 - 8*i))
			}
			sp.SetParentSpanID(pid)
		}
		sp.SetName(z.Name)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(z.Timestamp))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(z.Timestamp.Add(z.Duration)))
		attrs := sp.Attributes()
		attrs.EnsureCapacity(len(z.Tags) + 1)
		for k, v := range z.Tags {
			attrs.PutStr(k, v)
		}
		if z.LocalEndpoint != nil && z.LocalEndpoint.IPv4 != nil {
			attrs.PutStr("network.local.address", z.LocalEndpoint.IPv4.String())
		}
		for _, a := range z.Annotations {
			ev := sp.Events().AppendEmpty()
			ev.SetTimestamp(pcommon.NewTimestampFromTime(a.Timestamp))
			ev.SetName(a.Value)
		}
	}
	return td
}

func BenchmarkZipkinProto(b *testing.B) {
	body := protoBodyFromJSON(b, envoyBody(b, 100), false)
	benchDecode(b, body, 100, func(body []byte) (ptrace.Traces, error) {
		td, _, err := ZipkinProto(body, ZipkinOptions{})
		return td, err
	})
}

func BenchmarkZipkinV1JSON(b *testing.B) {
	one, err := os.ReadFile("testdata/zipkin/zipkin-v1.json")
	if err != nil {
		b.Fatal(err)
	}
	// 50 shared v1 spans -> 100 output spans
	inner := strings.TrimSpace(string(one))
	inner = inner[1 : len(inner)-1]
	body := []byte("[" + strings.TrimSuffix(strings.Repeat(inner+",", 50), ",") + "]")
	benchDecode(b, body, 100, func(body []byte) (ptrace.Traces, error) {
		td, _, err := ZipkinV1JSON(body, ZipkinOptions{})
		return td, err
	})
}

func BenchmarkSniffZipkinJSON(b *testing.B) {
	body := envoyBody(b, 100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for range b.N {
		if SniffZipkinJSON(body) {
			b.Fatal("v1?")
		}
	}
}

// BenchmarkZipkinV2JSONScanOnly is the JSON scan without building pdata:
// the difference to BenchmarkZipkinV2JSON is pdata's own cost (about one
// allocation per attribute), which no decoder writing pdata can avoid.
func BenchmarkZipkinV2JSONScanOnly(b *testing.B) {
	body := envoyBody(b, 100)
	benchDecode(b, body, 100, func(body []byte) (ptrace.Traces, error) {
		d := getZDecoder(ZipkinOptions{})
		defer putZDecoder(d)
		s := jsonScanner{b: body, d: d}
		if !s.array(func(i int) bool { return d.v2Span(&s, i) }) {
			return ptrace.Traces{}, bodyErr("scan", -1, s.err, s.at)
		}
		td := ptrace.NewTraces()
		td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().EnsureCapacity(len(d.spans))
		for range d.spans {
			td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
		}
		return td, nil
	})
}

// BenchmarkZipkinV2JSONToOTLP is the receiver's hot path: Envoy JSON to the
// OTLP bytes it forwards, at Envoy's small flushes and at a full batch.
func BenchmarkZipkinV2JSONToOTLP(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			body := envoyBody(b, n)
			var dst []byte
			var counts []ServiceCount
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			for range b.N {
				var err error
				dst, counts, _, err = ZipkinV2JSONToOTLP(body, ZipkinOptions{}, dst[:0], counts[:0])
				if err != nil || len(dst) == 0 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N*n), "cpu-ns/span")
		})
	}
}

// manyTagsBody is one v2 JSON span with n tags of the shape "k<i>":"v",
// about 14 bytes each: the body that sizes the decoder's scratch memory.
func manyTagsBody(n int) []byte {
	b := []byte(`[{"traceId":"80f198ee56343ba864fe8b2a57d3eff7","id":"e457b5a2e4d86bd1","name":"many","timestamp":1700000000000000,"duration":5,"localEndpoint":{"serviceName":"many-tags"},"tags":{`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `"k`...)
		var digits [6]byte // %06d, without fmt's cost under -race
		for j, k := 5, i; j >= 0; j, k = j-1, k/10 {
			digits[j] = byte('0' + k%10)
		}
		b = append(b, digits[:]...)
		b = append(b, `":"v"`...)
	}
	return append(b, `}}]`...)
}

// BenchmarkZipkinV2JSONManyTags decodes one span with a million tags
// (13.9 MB) into an output buffer sized as the receiver sizes it.
func BenchmarkZipkinV2JSONManyTags(b *testing.B) {
	body := manyTagsBody(1_000_000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _, _, err := ZipkinV2JSONToOTLP(body, ZipkinOptions{}, make([]byte, 0, len(body)+512), nil)
		if err != nil || len(dst) == 0 {
			b.Fatal(err)
		}
	}
}
