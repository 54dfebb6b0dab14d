package exporter

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// batchOf is a batch as the queue hands it over: pushes of 100 SDK-shaped
// spans concatenated, 8000 spans in all, with spansPerTrace spans of each
// trace spread over the pushes.
func batchOf(tb testing.TB, spansPerTrace int) []byte {
	tb.Helper()
	const pushes, perPush = 80, 100
	traces := pushes * perPush / spansPerTrace
	var out []byte
	for p := range pushes {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(request(tb, perPush))
		if err != nil {
			tb.Fatal(err)
		}
		spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		for i := range spans.Len() {
			t := (p*perPush + i) % traces
			spans.At(i).SetTraceID(pcommon.TraceID{0xbe, 15: byte(t), 14: byte(t >> 8)})
		}
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// unkeyedRecords is what the records cost without keying: the same wire
// walk and cut at the size limit, with the whole batch as one group, as
// Jaeger's collector (unkeyed, one record per batch) would write it.
func unkeyedRecords(data []byte, k *KafkaConfig) ([]kafkaRecord, error) {
	var w wireSpans
	if err := walkSpans(data, 8000, &w); err != nil {
		return nil, err
	}
	all := make([]int, len(w.spans))
	for i := range all {
		all[i] = i
	}
	var recs []kafkaRecord
	fitRecords(all, k.MaxMessageBytes-kafkaRecordOverhead, w.requestSize, func(spans []int, size int) bool {
		value := w.appendRequest(make([]byte, 0, size), spans)
		recs = append(recs, kafkaRecord{rec: &kgo.Record{Value: value}, spans: len(spans)})
		return true
	})
	return recs, nil
}

// BenchmarkKafkaRecords is the cost of keying by trace id: grouping a
// batch's spans by trace and writing one record per trace, against the
// same batch cut into unkeyed records of the same size limit.
func BenchmarkKafkaRecords(b *testing.B) {
	k := KafkaConfig{Brokers: []string{"x:1"}}
	k.setDefaults()
	for _, perTrace := range []int{1, 10, 80} {
		data := batchOf(b, perTrace)
		for _, keyed := range []bool{true, false} {
			name := fmt.Sprintf("%d-spans-per-trace/unkeyed", perTrace)
			if keyed {
				name = fmt.Sprintf("%d-spans-per-trace/keyed", perTrace)
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				records := 0
				cpu0 := cpuTime(b)
				for range b.N {
					var recs []kafkaRecord
					var err error
					if keyed {
						var arena *recordArena
						recs, arena, _, err = kafkaRecords([]item{{data: data, spans: 8000}}, &k)
						arena.free() // as settle does once the client is done
					} else {
						recs, err = unkeyedRecords(data, &k)
					}
					if err != nil {
						b.Fatal(err)
					}
					records = len(recs)
				}
				// CPU time, not wall time: on a shared machine only the
				// former compares runs.
				b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N)/8000, "cpu-ns/span")
				b.ReportMetric(float64(records), "records")
			})
		}
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
