package translate

import (
	"slices"
	"strconv"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The Jaeger api_v2 ⇄ OTLP mapping is the OpenTelemetry Collector's own
// (contrib pkg/translator/jaeger), so that a span sent to traceport looks in
// Jaeger as it would had it been sent to Jaeger v2. The wrappers here add
// what traceport promises beyond it: a bad span is rejected alone, resources
// keep the order of the batch, times pdata cannot hold never wrap around, and
// the caller's batch is left as it was.
//
// The translator registers its feature gates (HTTP status code conventions)
// in the Collector's global featuregate registry when imported; this package
// only reads them, and cmd/traceport's main decides their values.

// JaegerBatch converts one api_v2 PostSpans batch to the normal model.
//
// A span's own Process overrides the batch's; spans of equal processes share
// one ResourceSpans, in order of first appearance. Spans with a zero trace or
// span id, or a start or end time pdata cannot hold (before 1970, after
// 2262), are left out and counted in Rejected. An absent start time, and a
// log time pdata cannot hold, become timestamp 0. The rest is the Collector's
// translator with its default feature gates (the sampled flag is kept in the
// span flags; an http.status_code tag becomes http.response.status_code); the
// batch itself is not modified.
func JaegerBatch(batch *model.Batch) (ptrace.Traces, Rejected) {
	td := ptrace.NewTraces()
	var rej Rejected
	if batch == nil {
		return td, rej
	}
	for _, g := range jaegerGroups(batch, &rej) {
		// One call per process: the translator regroups its input through a
		// map, which would shuffle the resources.
		part, _ := jaegertranslator.ProtoToTraces([]*model.Batch{g}) // its error is always nil
		part.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	return td, rej
}

// jaegerGroups splits a batch's valid spans by process (Process.Equal, in
// order of first appearance) into batches for the translator.
func jaegerGroups(batch *model.Batch, rej *Rejected) []*model.Batch {
	var groups []*model.Batch
	for i, span := range batch.Spans {
		if span == nil {
			continue
		}
		if reason := jaegerCheckSpan(span); reason != "" {
			rej.Add("jaeger: span " + strconv.Itoa(i) + ": " + reason)
			continue
		}
		proc := span.Process
		if proc == nil {
			proc = batch.Process
		}
		g := jaegerGroupFor(&groups, proc)
		g.Spans = append(g.Spans, jaegerSafe(span, g.Process))
	}
	return groups
}

func jaegerGroupFor(groups *[]*model.Batch, proc *model.Process) *model.Batch {
	for _, g := range *groups {
		if g.Process == proc || (g.Process != nil && proc != nil && g.Process.Equal(proc)) {
			return g
		}
	}
	g := &model.Batch{Process: proc}
	*groups = append(*groups, g)
	return g
}

func jaegerCheckSpan(span *model.Span) string {
	switch {
	case span.TraceID.High == 0 && span.TraceID.Low == 0:
		return "trace id is zero"
	case span.SpanID == 0:
		return "span id is zero"
	}
	start, ok := jaegerUnixNano(span.StartTime)
	if !ok {
		return "start time " + span.StartTime.UTC().Format(time.RFC3339Nano) + " out of range"
	}
	if end := start + int64(span.Duration); (span.Duration > 0 && end < start) || end < 0 {
		return "duration " + span.Duration.String() + " ends out of range"
	}
	return ""
}

// jaegerUnixNano is a time as pdata holds it (ns since 1970, as an int64 that
// is not negative); the zero time.Time (start_time absent) is 0.
func jaegerUnixNano(t time.Time) (int64, bool) {
	if t.IsZero() {
		return 0, true
	}
	sec := t.Unix()
	if sec < 0 || sec > (1<<63-1)/1_000_000_000-1 {
		return 0, false
	}
	return sec*1e9 + int64(t.Nanosecond()), true
}

// jaegerSafe is the span, or a copy of it where the translator would garble
// or edit it: it converts times with UnixNano (the zero time.Time and log
// times before 1970 wrap around), deletes the scope tags from the span's Tags
// in place, and regroups spans by a hash of their own Process, under which
// equal processes can differ (a float tag of 0 and -0). The copy leaves the
// process to the group's batch.
func jaegerSafe(span *model.Span, proc *model.Process) *model.Span {
	badLog := slices.IndexFunc(span.Logs, func(l model.Log) bool {
		ns, ok := jaegerUnixNano(l.Timestamp)
		return !ok || ns == 0
	})
	scoped := slices.ContainsFunc(span.Tags, func(t model.KeyValue) bool { return t.Key == jaegerTagScopeName })
	ownProcess := span.Process != nil && span.Process != proc
	if !span.StartTime.IsZero() && badLog < 0 && !scoped && !ownProcess {
		return span
	}
	c := *span
	c.Process = nil
	if c.StartTime.IsZero() {
		c.StartTime = time.Unix(0, 0)
	}
	if badLog >= 0 {
		c.Logs = slices.Clone(c.Logs)
		for i := badLog; i < len(c.Logs); i++ {
			ns, _ := jaegerUnixNano(c.Logs[i].Timestamp) // 0 when out of range
			c.Logs[i].Timestamp = time.Unix(0, ns)
		}
	}
	if scoped {
		c.Tags = slices.Clone(c.Tags)
	}
	return &c
}

// jaegerTagScopeName is the tag the translator takes a span's scope from.
const jaegerTagScopeName = "otel.scope.name"

// JaegerBatches converts the normal model to Jaeger batches, one per
// ResourceSpans (service and process), for Jaeger collectors that only speak
// api_v2 PostSpans: the Collector's translator, so that
// JaegerBatch(JaegerBatches(td)) gives td back for what Jaeger can carry.
// Lost on the way: scope attributes, dropped counts, schema URLs, link
// attributes (but opentracing.ref_type), link trace state and flags, span
// flags but the sampled bit; map or slice attributes become JSON strings, and
// an http.status_code attribute the tag http.response.status_code.
func JaegerBatches(td ptrace.Traces) []*model.Batch {
	return jaegertranslator.ProtoFromTraces(td)
}
