package translate

import (
	"errors"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ZipkinV2JSON decodes a Zipkin v2 JSON body (a list of spans, as POSTed to
// /api/v2/spans) into pdata.
//
// The error is non-nil only when the body as a whole is not Zipkin v2 JSON;
// it names the span (0-based) and the byte offset. A span that is bad on its
// own (missing, zero, non-hex or too long id; negative duration; a field of
// the wrong type) is left out and counted in Rejected; the rest are kept.
//
// Mapping, meant to agree with the OpenTelemetry Collector's Zipkin receiver
// where it is not wrong for service meshes:
//   - Spans are grouped into one ResourceSpans per service: service.name is
//     localEndpoint.serviceName; without it, tag istio.canonical_service
//     (as "<canonical_service>.<istio.namespace>" when the namespace tag is
//     present, the name Istio's sidecars report under); without that,
//     FallbackServiceName. One ScopeSpans per resource, with no scope name.
//   - Ids are hex in any case; shorter ids are left-padded with zeros (a
//     64-bit trace id lands in the low 8 bytes). All-zero trace or span ids
//     are rejected; an all-zero parentId means none.
//   - timestamp/duration are microseconds (integer, float, or a quoted
//     number); start = timestamp, end = timestamp + duration. A span
//     without timestamp starts at 0 and carries
//     otel.zipkin.absentField.startTime=true, as in the Collector.
//   - kind CLIENT/SERVER/PRODUCER/CONSUMER maps to the same SpanKind; no
//     kind is Unspecified (Internal if tag span.kind=internal).
//   - tags become string attributes. Tag error sets status Error, with the
//     value as message unless it is "true" or ""; otel.status_code
//     (OK/ERROR) and otel.status_description set the status instead when
//     present. None of these three stay attributes; w3c.tracestate becomes
//     the trace state.
//   - localEndpoint ipv4 (else ipv6) and port become network.local.address
//     and network.local.port; remoteEndpoint serviceName, ipv4 (else ipv6)
//     and port become peer.service, network.peer.address, network.peer.port.
//   - annotations become events (time, name = value). debug is ignored.
//   - Shared spans: a SERVER span with "shared": true (Envoy's
//     shared_span_context, where the CLIENT and SERVER halves carry the same
//     id) gets the id SharedServerSpanID(traceId, id), its parent becomes
//     the shared id (so it is the CLIENT half's child), and the shared id is
//     kept in attribute zipkin.shared_span_id. No two forwarded spans share
//     an id, and every traceport instance derives the same one.
func ZipkinV2JSON(body []byte, opts ZipkinOptions) (ptrace.Traces, Rejected, error) {
	return zipkinTraces(body, opts, (*zDecoder).parseV2JSON)
}

// ZipkinV2JSONToOTLP is ZipkinV2JSON writing the spans as a serialized OTLP
// ExportTraceServiceRequest appended to dst, with the spans per service
// appended to counts: the receiver's hot path, with no pdata in between.
func ZipkinV2JSONToOTLP(body []byte, opts ZipkinOptions, dst []byte, counts []ServiceCount) ([]byte, []ServiceCount, Rejected, error) {
	return zipkinOTLP(body, opts, dst, counts, (*zDecoder).parseV2JSON)
}

func (d *zDecoder) parseV2JSON(body []byte) error {
	d.body = body
	s := jsonScanner{b: body, d: d}
	span := -1
	ok := s.array(func(i int) bool {
		span = i
		return d.v2Span(&s, i)
	})
	if ok {
		s.ws()
		if s.p < len(s.b) {
			ok = s.fail("data after the list of spans")
			span = -1
		}
	}
	if !ok {
		return bodyErr("zipkin v2 json", span, s.err, s.at)
	}
	return nil
}

func bodyErr(format string, span int, msg string, at int) error {
	where := ""
	if span >= 0 {
		where = "span " + strconv.Itoa(span) + ": "
	}
	return errors.New(format + ": " + where + msg + " at offset " + strconv.Itoa(at))
}

// spanState collects what one span's fields said before it is accepted.
type spanState struct {
	z                  zSpan
	haveTrace, haveID  bool
	bad                string
	arenaLo            int
	tagsLo, annosLo    int
	format             string
	index              int
	sawParent, sawKind bool
}

func (d *zDecoder) beginSpan(st *spanState, format string, i int) {
	*st = spanState{format: format, index: i, arenaLo: len(d.arena), tagsLo: len(d.tags), annosLo: len(d.annos)}
	st.z.tagLo, st.z.tagHi = len(d.tags), len(d.tags)
	st.z.annoLo, st.z.annoHi = len(d.annos), len(d.annos)
}

func (st *spanState) reject(reason string) {
	if st.bad == "" {
		st.bad = reason
	}
}

func fieldProblem(field, problem string) string {
	return "field " + strconv.Quote(field) + ": " + problem
}

// idField decodes a hex id string (the scanner stands on its value).
func (s *jsonScanner) idField(st *spanState, field string, dst []byte, present *bool) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '"':
	default:
		st.reject(fieldProblem(field, "not a string"))
		return s.skip(1)
	}
	at := s.p + 1
	v, ok := s.str()
	if !ok {
		return false
	}
	if len(v) == 0 {
		return true // "parentId": "" means none
	}
	if bad, problem := parseHexID(dst, v); problem != "" {
		if bad >= 0 {
			problem += " " + quoteByte(v[bad]) + " at offset " + strconv.Itoa(at+bad)
		}
		st.reject(fieldProblem(field, problem))
		return true
	}
	*present = true
	return true
}

func (s *jsonScanner) microsField(st *spanState, field string, dst *int64, present *bool) bool {
	at := s.p
	v, ok1, problem, ok := s.micros()
	if !ok {
		return false
	}
	if problem != "" {
		st.reject(fieldProblem(field, problem+" at offset "+strconv.Itoa(at)))
	}
	if ok1 {
		*dst = v
		if present != nil {
			*present = true
		}
	}
	return true
}

// strField reads a string field into the arena; null leaves it empty.
func (s *jsonScanner) strField(st *spanState, field string, dst *strRef) bool {
	return s.subStrField(st, field, "", dst)
}

// subStrField is strField for field.sub, joining the name only on error.
func (s *jsonScanner) subStrField(st *spanState, field, sub string, dst *strRef) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '"':
		v, ok := s.strRef()
		if ok {
			*dst = v
		}
		return ok
	}
	if sub != "" {
		field += "." + sub
	}
	st.reject(fieldProblem(field, "not a string"))
	return s.skip(1)
}

func (s *jsonScanner) boolField(st *spanState, field string, dst *bool) bool {
	switch s.peek() {
	case 't':
		*dst = true
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	// Some senders quote booleans; they are harmless to ignore.
	return s.skip(1)
}

func (s *jsonScanner) endpoint(st *spanState, field string, ep *zEndpoint) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		st.reject(fieldProblem(field, "not an object"))
		return s.skip(1)
	}
	var ipv6 strRef
	more, ok := s.openObject()
	for ; more; more, ok = s.nextMember() {
		key, _, keyOK := s.key()
		if !keyOK {
			return false
		}
		var valOK bool
		switch string(key) {
		case "serviceName":
			ep.hasService = true
			valOK = s.subStrField(st, field, "serviceName", &ep.service)
		case "ipv4":
			valOK = s.subStrField(st, field, "ipv4", &ep.addr)
		case "ipv6":
			valOK = s.subStrField(st, field, "ipv6", &ipv6)
		case "port":
			var port int64
			var present bool
			valOK = s.microsField(st, "port", &port, &present)
			if present && port > 0 && port <= 65535 {
				ep.port = int32(port)
			}
		default:
			valOK = s.skip(1)
		}
		if !valOK {
			return false
		}
	}
	if ep.addr.n == 0 {
		ep.addr = ipv6
	}
	return ok
}

// tags stores the tags of a span; non-string scalars keep their JSON text
// (Zipkin allows only strings, but some senders write numbers and booleans).
func (s *jsonScanner) tags(st *spanState) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		st.reject(fieldProblem("tags", "not an object"))
		return s.skip(1)
	}
	d := s.d
	more, ok := s.openObject()
	for ; more; more, ok = s.nextMember() {
		d.at = s.p
		if key, kr, vr, plain := s.plainPair(); plain {
			d.addTag(&st.z, key, kr, vr)
			continue
		}
		key, at, keyOK := s.key()
		if !keyOK {
			return false
		}
		kr := s.keep(key, at)
		var vr strRef
		switch c := s.peek(); {
		case c == '"':
			var valOK bool
			if vr, valOK = s.strRef(); !valOK {
				return false
			}
		case c == 'n':
			d.forget(kr)
			if !s.literal("null") {
				return false
			}
			continue
		case c == '{' || c == '[':
			d.forget(kr)
			if !s.skip(1) {
				return false
			}
			continue
		default:
			start := s.p
			if !s.skip(1) {
				return false
			}
			vr = d.bodyRef(start, s.p-start)
		}
		d.addTag(&st.z, d.bytesOf(kr), kr, vr)
	}
	return ok
}

// plainPair reads a member that is "key":"value" without whitespace or
// anything but plain text in the strings (see plainRun), the way Envoy
// writes tags, in one go. For any other member it reads nothing and
// returns false.
func (s *jsonScanner) plainPair() (key []byte, kr, vr strRef, ok bool) {
	b, p := s.b, s.p
	if p >= len(b) || b[p] != '"' {
		return nil, kr, vr, false
	}
	k := plainRun(b, p+1) // the key's closing quote, if the key is plain
	if k+2 >= len(b) || b[k] != '"' || b[k+1] != ':' || b[k+2] != '"' {
		return nil, kr, vr, false
	}
	v := plainRun(b, k+3)
	if v >= len(b) || b[v] != '"' {
		return nil, kr, vr, false
	}
	s.p = v + 1
	return b[p+1 : k], s.d.bodyRef(p+1, k-p-1), s.d.bodyRef(k+3, v-k-3), true
}

func (s *jsonScanner) annotations(st *spanState) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '[':
	default:
		st.reject(fieldProblem("annotations", "not an array"))
		return s.skip(1)
	}
	d := s.d
	return s.array(func(i int) bool {
		if s.peek() != '{' {
			st.reject(fieldProblem("annotations", "element is not an object"))
			return s.skip(1)
		}
		var a zAnno
		ok := s.object(func(key []byte) bool {
			switch string(key) {
			case "timestamp":
				return s.microsField(st, "annotations.timestamp", &a.ts, nil)
			case "value":
				return s.strField(st, "annotations.value", &a.val)
			}
			return s.skip(1)
		})
		if a.ts < 0 || a.ts > maxMicros {
			st.reject(fieldProblem("annotations.timestamp", "out of range"))
		}
		d.annos = append(d.annos, a)
		return ok
	})
}

func (d *zDecoder) v2Span(s *jsonScanner, i int) bool {
	if s.peek() != '{' {
		if s.p >= len(s.b) {
			return s.fail("unexpected end of body")
		}
		return s.fail("span is not an object")
	}
	var st spanState
	d.beginSpan(&st, "zipkin v2 json", i)
	z := &st.z
	var haveParent bool
	more, ok := s.openObject()
	for ; more; more, ok = s.nextMember() {
		key, _, keyOK := s.key()
		if !keyOK || !d.v2Field(s, &st, key, &haveParent) {
			return false
		}
	}
	if !ok {
		return false
	}
	if !haveParent {
		z.parentID = [8]byte{}
	}
	d.finishSpan(&st)
	return true
}

// v2Field reads the value of the span's member key.
func (d *zDecoder) v2Field(s *jsonScanner, st *spanState, key []byte, haveParent *bool) bool {
	z := &st.z
	switch string(key) {
	case "traceId":
		return s.idField(st, "traceId", z.traceID[:], &st.haveTrace)
	case "id":
		return s.idField(st, "id", z.spanID[:], &st.haveID)
	case "parentId":
		return s.idField(st, "parentId", z.parentID[:], haveParent)
	case "name":
		return s.strField(st, "name", &z.name)
	case "kind":
		if s.peek() == '"' {
			v, ok := s.str()
			z.kind = zipkinKind(v)
			return ok
		}
		return s.strField(st, "kind", new(strRef))
	case "timestamp":
		return s.microsField(st, "timestamp", &z.ts, &z.hasTS)
	case "duration":
		return s.microsField(st, "duration", &z.dur, nil)
	case "localEndpoint":
		z.hasLocal = true
		return s.endpoint(st, "localEndpoint", &z.local)
	case "remoteEndpoint":
		z.hasRemote = true
		return s.endpoint(st, "remoteEndpoint", &z.remote)
	case "tags":
		return s.tags(st)
	case "annotations":
		return s.annotations(st)
	case "shared":
		return s.boolField(st, "shared", &z.shared)
	}
	return s.skip(1)
}

// finishSpan validates and keeps the span, or rolls back what it added and
// counts it as rejected.
func (d *zDecoder) finishSpan(st *spanState) {
	z := &st.z
	z.tagHi, z.annoHi = len(d.tags), len(d.annos)
	if st.bad == "" {
		switch {
		case !st.haveTrace:
			st.bad = "missing traceId"
		case z.traceID.IsEmpty():
			st.bad = "traceId is zero"
		case !st.haveID:
			st.bad = "missing id"
		case z.spanID.IsEmpty():
			st.bad = "id is zero"
		default:
			st.bad = z.checkTimes()
		}
	}
	z.hasTS = z.hasTS && z.ts != 0 // Zipkin: zero means absent
	if st.bad != "" {
		d.rej.Add(st.format + ": span " + strconv.Itoa(st.index) + ": " + st.bad)
		d.arena = d.arena[:st.arenaLo]
		d.tags = d.tags[:st.tagsLo]
		d.annos = d.annos[:st.annosLo]
		return
	}
	z.applySharedRule()
	d.spans = append(d.spans, *z)
}

func zipkinKind(v []byte) ptrace.SpanKind {
	switch string(v) {
	case "CLIENT", "client":
		return ptrace.SpanKindClient
	case "SERVER", "server":
		return ptrace.SpanKindServer
	case "PRODUCER", "producer":
		return ptrace.SpanKindProducer
	case "CONSUMER", "consumer":
		return ptrace.SpanKindConsumer
	}
	return ptrace.SpanKindUnspecified
}
