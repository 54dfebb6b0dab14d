package translate

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Tag and attribute names the OpenTelemetry Collector's Jaeger translator
// (contrib pkg/translator/jaeger) gives a meaning, so that a span sent to
// traceport looks in Jaeger as it would had it been sent to Jaeger v2.
const (
	jaegerTagSpanKind      = "span.kind"
	jaegerTagError         = "error"
	jaegerTagStatusCode    = "otel.status_code"
	jaegerTagStatusDesc    = "otel.status_description"
	jaegerTagHTTPStatus    = "http.status_code"
	jaegerTagHTTPStatusMsg = "http.status_message"
	jaegerTagTraceState    = "w3c.tracestate"
	jaegerTagScopeName     = "otel.scope.name"
	jaegerTagScopeVersion  = "otel.scope.version"
	jaegerLogEventField    = "event"
	jaegerAttrRefType      = "opentracing.ref_type"
	jaegerRefChildOf       = "child_of"
	jaegerRefFollowsFrom   = "follows_from"
	// jaegerNoServiceName marks a resource without attributes, both ways.
	jaegerNoServiceName = "OTLPResourceNoServiceName"
)

// JaegerBatch converts one api_v2 PostSpans batch to the normal model.
//
// A span's own Process overrides the batch's; spans of equal processes share
// one ResourceSpans, in order of first appearance. Spans with a zero trace or
// span id, or a start or end time pdata cannot hold (before 1970, after
// 2262), are left out and counted in Rejected. The rest follows the
// Collector's translator: span.kind, error, otel.status_code and
// otel.status_description, w3c.tracestate and otel.scope.name/version tags
// become the span fields they name; a log's "event" field names its event;
// the first CHILD_OF reference in the same trace (else FOLLOWS_FROM) is the
// parent, and every other reference a link tagged opentracing.ref_type; the
// process tags hostname and jaeger.version become host.name and
// opencensus.exporterversion. Beyond the Collector (v0.140), the sampled flag
// is kept in the span flags.
func JaegerBatch(batch *model.Batch) (ptrace.Traces, Rejected) {
	td := ptrace.NewTraces()
	var rej Rejected
	if batch == nil {
		return td, rej
	}
	var groups []jaegerGroup
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
		g := jaegerGroupFor(&groups, td, proc)
		scopeName, scopeVersion, nameAt, versionAt := jaegerScope(span.Tags)
		jaegerSpanToPdata(span, g.scopeSpans(scopeName, scopeVersion).AppendEmpty(), nameAt, versionAt)
	}
	return td, rej
}

func jaegerCheckSpan(span *model.Span) string {
	switch {
	case span.TraceID.High == 0 && span.TraceID.Low == 0:
		return "trace id is zero"
	case span.SpanID == 0:
		return "span id is zero"
	}
	start, ok := jaegerTimestamp(span.StartTime)
	if !ok {
		return "start time " + span.StartTime.UTC().Format(time.RFC3339Nano) + " out of range"
	}
	if end := int64(start) + int64(span.Duration); (span.Duration > 0 && end < int64(start)) || end < 0 {
		return "duration " + span.Duration.String() + " ends out of range"
	}
	return ""
}

// jaegerTimestamp converts a time pdata can hold, exactly to the ns; the zero
// time.Time (start_time absent) is timestamp 0.
func jaegerTimestamp(t time.Time) (pcommon.Timestamp, bool) {
	if t.IsZero() {
		return 0, true
	}
	sec := t.Unix()
	if sec < 0 || sec > (1<<63-1)/1_000_000_000-1 {
		return 0, false
	}
	return pcommon.Timestamp(uint64(sec)*1e9 + uint64(t.Nanosecond())), true
}

// jaegerGroup is one resource of the output and its scopes.
type jaegerGroup struct {
	proc   *model.Process
	rs     ptrace.ResourceSpans
	scopes []jaegerScopeSpans
}

type jaegerScopeSpans struct {
	name, version string
	spans         ptrace.SpanSlice
}

func (g *jaegerGroup) scopeSpans(name, version string) ptrace.SpanSlice {
	for _, s := range g.scopes {
		if s.name == name && s.version == version {
			return s.spans
		}
	}
	ss := g.rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(name)
	ss.Scope().SetVersion(version)
	g.scopes = append(g.scopes, jaegerScopeSpans{name, version, ss.Spans()})
	return ss.Spans()
}

func jaegerGroupFor(groups *[]jaegerGroup, td ptrace.Traces, proc *model.Process) *jaegerGroup {
	for i := range *groups {
		g := &(*groups)[i]
		if g.proc == proc || (g.proc != nil && proc != nil && g.proc.Equal(proc)) {
			return g
		}
	}
	rs := td.ResourceSpans().AppendEmpty()
	jaegerProcessToResource(proc, rs.Resource())
	*groups = append(*groups, jaegerGroup{proc: proc, rs: rs})
	return &(*groups)[len(*groups)-1]
}

func jaegerProcessToResource(proc *model.Process, res pcommon.Resource) {
	if proc == nil || proc.ServiceName == jaegerNoServiceName || (proc.ServiceName == "" && proc.Tags == nil) {
		return
	}
	attrs := res.Attributes()
	attrs.EnsureCapacity(len(proc.Tags) + 1)
	if proc.ServiceName != "" {
		attrs.PutStr("service.name", proc.ServiceName)
	}
	jaegerTagsToAttributes(proc.Tags, attrs, -1, -1)
	if v, ok := attrs.Get("hostname"); ok {
		if _, ok := attrs.Get("host.name"); !ok {
			v.CopyTo(attrs.PutEmpty("host.name"))
			attrs.Remove("hostname")
		}
	}
	if v, ok := attrs.Get("jaeger.version"); ok {
		if _, ok := attrs.Get("opencensus.exporterversion"); !ok {
			attrs.PutStr("opencensus.exporterversion", "Jaeger-"+v.Str())
			attrs.Remove("jaeger.version")
		}
	}
}

// jaegerScope finds the scope tags of a span: otel.scope.version counts only
// with an otel.scope.name. The indexes (-1: absent) are skipped as attributes.
func jaegerScope(tags []model.KeyValue) (name, version string, nameAt, versionAt int) {
	nameAt, versionAt = -1, -1
	for i := range tags {
		if tags[i].Key == jaegerTagScopeName {
			name, nameAt = tags[i].VStr, i
			break
		}
	}
	if nameAt < 0 {
		return "", "", -1, -1
	}
	for i := range tags {
		if tags[i].Key == jaegerTagScopeVersion {
			version, versionAt = tags[i].VStr, i
			break
		}
	}
	return name, version, nameAt, versionAt
}

func jaegerTagsToAttributes(tags []model.KeyValue, attrs pcommon.Map, skip1, skip2 int) {
	for i := range tags {
		if i == skip1 || i == skip2 {
			continue
		}
		tag := &tags[i]
		switch tag.VType {
		case model.ValueType_STRING:
			attrs.PutStr(tag.Key, tag.VStr)
		case model.ValueType_BOOL:
			attrs.PutBool(tag.Key, tag.VBool)
		case model.ValueType_INT64:
			attrs.PutInt(tag.Key, tag.VInt64)
		case model.ValueType_FLOAT64:
			attrs.PutDouble(tag.Key, tag.VFloat64)
		case model.ValueType_BINARY:
			attrs.PutEmptyBytes(tag.Key).FromRaw(tag.VBinary)
		default:
			attrs.PutStr(tag.Key, fmt.Sprintf("<Unknown Jaeger TagType %q>", tag.VType))
		}
	}
}

func jaegerSpanToPdata(span *model.Span, dest ptrace.Span, scopeNameAt, scopeVersionAt int) {
	dest.SetTraceID(jaegerTraceID(span.TraceID))
	dest.SetSpanID(jaegerSpanID(span.SpanID))
	dest.SetName(span.OperationName)
	start, _ := jaegerTimestamp(span.StartTime) // checked by jaegerCheckSpan
	dest.SetStartTimestamp(start)
	dest.SetEndTimestamp(pcommon.Timestamp(int64(start) + int64(span.Duration)))
	dest.SetFlags(uint32(span.Flags & model.SampledFlag))
	parent := span.ParentSpanID()
	if parent != 0 {
		dest.SetParentSpanID(jaegerSpanID(parent))
	}

	attrs := dest.Attributes()
	attrs.EnsureCapacity(len(span.Tags))
	jaegerTagsToAttributes(span.Tags, attrs, scopeNameAt, scopeVersionAt)
	if v, ok := attrs.Get(jaegerTagSpanKind); ok {
		dest.SetKind(jaegerSpanKind(v.Str()))
		attrs.Remove(jaegerTagSpanKind)
	}
	jaegerStatus(attrs, dest)
	if v, ok := attrs.Get(jaegerTagTraceState); ok {
		dest.TraceState().FromRaw(v.Str())
		attrs.Remove(jaegerTagTraceState)
	}

	if len(span.Logs) > 0 {
		events := dest.Events()
		events.EnsureCapacity(len(span.Logs))
		for i := range span.Logs {
			log := &span.Logs[i]
			ev := events.AppendEmpty()
			ts, _ := jaegerTimestamp(log.Timestamp) // out of range: 0, as pdata cannot hold it
			ev.SetTimestamp(ts)
			ea := ev.Attributes()
			ea.EnsureCapacity(len(log.Fields))
			jaegerTagsToAttributes(log.Fields, ea, -1, -1)
			if v, ok := ea.Get(jaegerLogEventField); ok {
				ev.SetName(v.Str())
				ea.Remove(jaegerLogEventField)
			}
		}
	}

	for i := range span.References {
		ref := &span.References[i]
		if ref.SpanID == parent && ref.RefType == model.ChildOf {
			continue // the parent itself (as the Collector, whatever the trace)
		}
		link := dest.Links().AppendEmpty()
		link.SetTraceID(jaegerTraceID(ref.TraceID))
		link.SetSpanID(jaegerSpanID(ref.SpanID))
		refType := jaegerRefFollowsFrom
		if ref.RefType == model.ChildOf {
			refType = jaegerRefChildOf
		}
		link.Attributes().PutStr(jaegerAttrRefType, refType)
	}
}

func jaegerTraceID(id model.TraceID) pcommon.TraceID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], id.High)
	binary.BigEndian.PutUint64(b[8:], id.Low)
	return b
}

func jaegerSpanID(id model.SpanID) pcommon.SpanID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return b
}

func jaegerSpanKind(kind string) ptrace.SpanKind {
	switch kind {
	case "client":
		return ptrace.SpanKindClient
	case "server":
		return ptrace.SpanKindServer
	case "producer":
		return ptrace.SpanKindProducer
	case "consumer":
		return ptrace.SpanKindConsumer
	case "internal":
		return ptrace.SpanKindInternal
	}
	return ptrace.SpanKindUnspecified
}

// jaegerStatus derives the span status from its tags as the Collector does:
// error=true wins, then otel.status_code, then an HTTP status code.
func jaegerStatus(attrs pcommon.Map, span ptrace.Span) {
	code, msg, found := ptrace.StatusCodeUnset, "", false
	takeDesc := func() (string, bool) {
		v, ok := attrs.Get(jaegerTagStatusDesc)
		if !ok {
			return "", false
		}
		s := v.Str()
		attrs.Remove(jaegerTagStatusDesc)
		return s, true
	}
	if v, ok := attrs.Get(jaegerTagError); ok && v.Type() == pcommon.ValueTypeBool && v.Bool() {
		code, found = ptrace.StatusCodeError, true
		attrs.Remove(jaegerTagError)
		if d, ok := takeDesc(); ok {
			msg = d
		} else if v, ok := attrs.Get(jaegerTagHTTPStatusMsg); ok {
			msg = v.Str()
		}
	}
	if v, ok := attrs.Get(jaegerTagStatusCode); ok {
		if !found {
			found = true
			switch strings.ToUpper(v.Str()) {
			case "OK":
				code = ptrace.StatusCodeOk
			case "ERROR":
				code = ptrace.StatusCodeError
			}
			if d, ok := takeDesc(); ok {
				msg = d
			}
		}
		attrs.Remove(jaegerTagStatusCode)
	} else if v, ok := attrs.Get(jaegerTagHTTPStatus); ok && !found {
		if c, ok := jaegerHTTPStatus(v, span.Kind()); ok {
			if c != ptrace.StatusCodeUnset {
				code, found = c, true
			}
			if v, ok := attrs.Get(jaegerTagHTTPStatusMsg); ok {
				msg = v.Str()
			}
		}
	}
	if found {
		span.Status().SetCode(code)
		span.Status().SetMessage(msg)
	}
}

// jaegerHTTPStatus maps an HTTP status tag (int or decimal string) to a span
// status: 4xx is an error only for clients, 5xx and unknown codes always.
func jaegerHTTPStatus(v pcommon.Value, kind ptrace.SpanKind) (ptrace.StatusCode, bool) {
	var c int64
	switch v.Type() {
	case pcommon.ValueTypeInt:
		c = v.Int()
	case pcommon.ValueTypeStr:
		n, err := strconv.ParseInt(v.Str(), 10, 0)
		if err != nil {
			return 0, false
		}
		c = n
	default:
		return 0, false
	}
	if c >= 400 && c < 500 {
		switch kind {
		case ptrace.SpanKindClient:
			return ptrace.StatusCodeError, true
		case ptrace.SpanKindServer:
			return ptrace.StatusCodeUnset, true
		}
	}
	if c >= 100 && c < 399 {
		return ptrace.StatusCodeUnset, true
	}
	return ptrace.StatusCodeError, true
}

// JaegerBatches converts the normal model to Jaeger batches, one per
// ResourceSpans (service and process), for Jaeger collectors that only speak
// api_v2 PostSpans. It is the Collector's translator in reverse, so that
// JaegerBatch(JaegerBatches(td)) gives td back for what Jaeger can carry.
// Lost on the way: scope attributes, dropped counts, schema URLs, link
// attributes (but opentracing.ref_type), link trace state and flags, span
// flags but the sampled bit, and map or slice attributes become JSON strings.
func JaegerBatches(td ptrace.Traces) []*model.Batch {
	rss := td.ResourceSpans()
	batches := make([]*model.Batch, 0, rss.Len())
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		if rs.Resource().Attributes().Len() == 0 && rs.ScopeSpans().Len() == 0 {
			continue
		}
		batch := &model.Batch{Process: jaegerProcess(rs.Resource())}
		n := 0
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			n += rs.ScopeSpans().At(j).Spans().Len()
		}
		batch.Spans = make([]*model.Span, 0, n)
		spans := make([]model.Span, n) // one allocation for the batch's spans
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				js := &spans[len(batch.Spans)]
				jaegerSpanFromPdata(ss.Spans().At(k), ss.Scope(), js)
				batch.Spans = append(batch.Spans, js)
			}
		}
		batches = append(batches, batch)
	}
	return batches
}

func jaegerProcess(res pcommon.Resource) *model.Process {
	attrs := res.Attributes()
	if attrs.Len() == 0 {
		return &model.Process{ServiceName: jaegerNoServiceName}
	}
	p := &model.Process{}
	n := attrs.Len()
	if v, ok := attrs.Get("service.name"); ok {
		p.ServiceName = v.Str()
		n--
	}
	if n == 0 {
		return p
	}
	p.Tags = make([]model.KeyValue, 0, n)
	for k, v := range attrs.All() {
		if k != "service.name" {
			p.Tags = append(p.Tags, jaegerTag(k, v))
		}
	}
	return p
}

func jaegerTag(key string, v pcommon.Value) model.KeyValue {
	tag := model.KeyValue{Key: key}
	switch v.Type() {
	case pcommon.ValueTypeStr:
		tag.VType, tag.VStr = model.ValueType_STRING, v.Str()
	case pcommon.ValueTypeInt:
		tag.VType, tag.VInt64 = model.ValueType_INT64, v.Int()
	case pcommon.ValueTypeBool:
		tag.VType, tag.VBool = model.ValueType_BOOL, v.Bool()
	case pcommon.ValueTypeDouble:
		tag.VType, tag.VFloat64 = model.ValueType_FLOAT64, v.Double()
	case pcommon.ValueTypeBytes:
		tag.VType, tag.VBinary = model.ValueType_BINARY, v.Bytes().AsRaw()
	default: // map, slice, empty: as the Collector, their JSON text
		tag.VType, tag.VStr = model.ValueType_STRING, v.AsString()
	}
	return tag
}

func jaegerStrTag(key, value string) model.KeyValue {
	return model.KeyValue{Key: key, VType: model.ValueType_STRING, VStr: value}
}

func jaegerSpanFromPdata(span ptrace.Span, scope pcommon.InstrumentationScope, js *model.Span) {
	tid, sid := span.TraceID(), span.SpanID()
	js.TraceID = model.NewTraceID(binary.BigEndian.Uint64(tid[:8]), binary.BigEndian.Uint64(tid[8:]))
	js.SpanID = model.SpanID(binary.BigEndian.Uint64(sid[:]))
	js.OperationName = span.Name()
	js.Flags = model.Flags(span.Flags()) & model.SampledFlag
	start := span.StartTimestamp()
	js.StartTime = time.Unix(0, int64(start)).UTC()
	js.Duration = time.Duration(int64(span.EndTimestamp()) - int64(start))

	// References: the parent first (backends look for the first CHILD_OF),
	// then links; a link to the parent only sets the parent's type.
	pid := span.ParentSpanID()
	parent := model.SpanID(binary.BigEndian.Uint64(pid[:]))
	links := span.Links()
	if n := links.Len(); n > 0 || parent != 0 {
		js.References = make([]model.SpanRef, 0, n+1)
	}
	if parent != 0 {
		js.References = append(js.References, model.SpanRef{TraceID: js.TraceID, SpanID: parent, RefType: model.ChildOf})
	}
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		ltid, lsid := l.TraceID(), l.SpanID()
		ref := model.SpanRef{
			TraceID: model.NewTraceID(binary.BigEndian.Uint64(ltid[:8]), binary.BigEndian.Uint64(ltid[8:])),
			SpanID:  model.SpanID(binary.BigEndian.Uint64(lsid[:])),
			RefType: model.FollowsFrom,
		}
		if v, ok := l.Attributes().Get(jaegerAttrRefType); ok && v.Str() == jaegerRefChildOf {
			ref.RefType = model.ChildOf
		}
		if parent != 0 && ref.TraceID == js.TraceID && ref.SpanID == parent {
			js.References[0].RefType = ref.RefType
			continue
		}
		js.References = append(js.References, ref)
	}

	// Tags: scope, attributes, then the span fields Jaeger has no place for.
	attrs := span.Attributes()
	tags := make([]model.KeyValue, 0, attrs.Len()+6)
	if name := scope.Name(); name != "" {
		tags = append(tags, jaegerStrTag(jaegerTagScopeName, name))
	}
	if version := scope.Version(); version != "" {
		tags = append(tags, jaegerStrTag(jaegerTagScopeVersion, version))
	}
	for k, v := range attrs.All() {
		tags = append(tags, jaegerTag(k, v))
	}
	if kind := jaegerKindTag(span.Kind()); kind != "" {
		tags = append(tags, jaegerStrTag(jaegerTagSpanKind, kind))
	}
	switch span.Status().Code() {
	case ptrace.StatusCodeError:
		tags = append(tags, jaegerStrTag(jaegerTagStatusCode, "ERROR"),
			model.KeyValue{Key: jaegerTagError, VType: model.ValueType_BOOL, VBool: true})
	case ptrace.StatusCodeOk:
		tags = append(tags, jaegerStrTag(jaegerTagStatusCode, "OK"))
	}
	if msg := span.Status().Message(); msg != "" {
		tags = append(tags, jaegerStrTag(jaegerTagStatusDesc, msg))
	}
	if ts := span.TraceState().AsRaw(); ts != "" {
		tags = append(tags, jaegerStrTag(jaegerTagTraceState, ts))
	}
	if len(tags) > 0 {
		js.Tags = tags
	}

	events := span.Events()
	if events.Len() > 0 {
		js.Logs = make([]model.Log, 0, events.Len())
	}
	for i := 0; i < events.Len(); i++ {
		ev := events.At(i)
		ea := ev.Attributes()
		fields := make([]model.KeyValue, 0, ea.Len()+1)
		if _, has := ea.Get(jaegerLogEventField); ev.Name() != "" && !has {
			fields = append(fields, jaegerStrTag(jaegerLogEventField, ev.Name()))
		}
		for k, v := range ea.All() {
			fields = append(fields, jaegerTag(k, v))
		}
		js.Logs = append(js.Logs, model.Log{Timestamp: time.Unix(0, int64(ev.Timestamp())).UTC(), Fields: fields})
	}
}

func jaegerKindTag(kind ptrace.SpanKind) string {
	switch kind {
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return ""
}
