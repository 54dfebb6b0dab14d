package translate

import (
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

type v1Anno struct {
	ts    int64
	val   strRef
	ep    zEndpoint
	hasEp bool
	core  byte // 'c' cs, 'C' cr, 's' sr, 'S' ss, 'm' ms, 'M' mr, 0 other
}

type v1Bin struct {
	key, val strRef
	ep       zEndpoint
	hasEp    bool
	addr     byte // 'c' ca, 's' sa, 'm' ma with value true, else 0
}

// ZipkinV1JSON decodes a Zipkin v1 JSON body (as POSTed to /api/v1/spans).
// Errors and rejections are as for ZipkinV2JSON, and so is the mapping of
// ids, times, status and attributes, with the v1 specifics:
//   - Core annotations give kind and timing and are not events: cs/cr make
//     a CLIENT span, sr/ss a SERVER span, ms PRODUCER, mr CONSUMER; their
//     endpoint gives the service (then a binary annotation's endpoint, then
//     the "lc" value, then the Istio tags, then FallbackServiceName).
//   - A v1 span holding both client and server annotations (one id shared
//     by both hosts) becomes two spans: the CLIENT with the reported id and
//     the SERVER with SharedServerSpanID as its id and the reported id as
//     its parent, exactly as for a shared v2 span. Such an input span
//     counts as two output spans.
//   - Other annotations become events of the side whose service logged them.
//   - Binary annotations become attributes ("lc" as component); "sa", "ca"
//     and "ma" address annotations become the remote endpoint (peer.service,
//     network.peer.address, network.peer.port) of the client, server and
//     messaging span respectively.
func ZipkinV1JSON(body []byte, opts ZipkinOptions) (ptrace.Traces, Rejected, error) {
	return zipkinTraces(body, opts, (*zDecoder).parseV1JSON)
}

// ZipkinV1JSONToOTLP is ZipkinV1JSON writing a serialized OTLP request; see
// ZipkinV2JSONToOTLP.
func ZipkinV1JSONToOTLP(body []byte, opts ZipkinOptions, dst []byte, counts []ServiceCount) ([]byte, []ServiceCount, Rejected, error) {
	return zipkinOTLP(body, opts, dst, counts, (*zDecoder).parseV1JSON)
}

func (d *zDecoder) parseV1JSON(body []byte) error {
	d.body = body
	s := jsonScanner{b: body, d: d}
	span := -1
	ok := s.array(func(i int) bool {
		span = i
		return d.v1Span(&s, i)
	})
	if ok {
		s.ws()
		if s.p < len(s.b) {
			ok = s.fail("data after the list of spans")
			span = -1
		}
	}
	if !ok {
		return bodyErr("zipkin v1 json", span, s.err, s.at)
	}
	return nil
}

func (s *jsonScanner) v1Endpoint(st *spanState, field string, ep *zEndpoint, has *bool) bool {
	if s.peek() == '{' {
		*has = true
	}
	return s.endpoint(st, field, ep)
}

func (d *zDecoder) v1Span(s *jsonScanner, i int) bool {
	if s.peek() != '{' {
		if s.p >= len(s.b) {
			return s.fail("unexpected end of body")
		}
		return s.fail("span is not an object")
	}
	var st spanState
	d.beginSpan(&st, "zipkin v1 json", i)
	d.v1annos, d.v1bins = d.v1annos[:0], d.v1bins[:0]
	z := &st.z
	var haveParent, haveDur bool
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "traceId":
			return s.idField(&st, "traceId", z.traceID[:], &st.haveTrace)
		case "id":
			return s.idField(&st, "id", z.spanID[:], &st.haveID)
		case "parentId":
			return s.idField(&st, "parentId", z.parentID[:], &haveParent)
		case "name":
			return s.strField(&st, "name", &z.name)
		case "timestamp":
			return s.microsField(&st, "timestamp", &z.ts, &z.hasTS)
		case "duration":
			return s.microsField(&st, "duration", &z.dur, &haveDur)
		case "annotations":
			return s.v1Annotations(&st)
		case "binaryAnnotations":
			return s.v1BinaryAnnotations(&st)
		}
		return s.skip(1)
	})
	if !ok {
		return false
	}
	if !haveParent {
		z.parentID = [8]byte{}
	}
	d.v1Emit(&st, haveDur)
	return true
}

func (s *jsonScanner) v1Annotations(st *spanState) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '[':
	default:
		st.reject(fieldProblem("annotations", "not an array"))
		return s.skip(1)
	}
	d := s.d
	return s.array(func(int) bool {
		if s.peek() != '{' {
			st.reject(fieldProblem("annotations", "element is not an object"))
			return s.skip(1)
		}
		var a v1Anno
		ok := s.object(func(key []byte) bool {
			switch string(key) {
			case "timestamp":
				return s.microsField(st, "annotations.timestamp", &a.ts, nil)
			case "value":
				return s.strField(st, "annotations.value", &a.val)
			case "endpoint":
				return s.v1Endpoint(st, "annotations.endpoint", &a.ep, &a.hasEp)
			}
			return s.skip(1)
		})
		if a.ts < 0 || a.ts > maxMicros {
			st.reject(fieldProblem("annotations.timestamp", "out of range"))
		}
		if v := d.bytesOf(a.val); len(v) == 2 {
			switch string(v) {
			case "cs":
				a.core = 'c'
			case "cr":
				a.core = 'C'
			case "sr":
				a.core = 's'
			case "ss":
				a.core = 'S'
			case "ms":
				a.core = 'm'
			case "mr":
				a.core = 'M'
			}
		}
		d.v1annos = append(d.v1annos, a)
		return ok
	})
}

func (s *jsonScanner) v1BinaryAnnotations(st *spanState) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '[':
	default:
		st.reject(fieldProblem("binaryAnnotations", "not an array"))
		return s.skip(1)
	}
	d := s.d
	return s.array(func(int) bool {
		if s.peek() != '{' {
			st.reject(fieldProblem("binaryAnnotations", "element is not an object"))
			return s.skip(1)
		}
		var b v1Bin
		var isTrue, haveVal bool
		ok := s.object(func(key []byte) bool {
			switch string(key) {
			case "key":
				return s.strField(st, "binaryAnnotations.key", &b.key)
			case "value":
				switch c := s.peek(); {
				case c == '"':
					v, ok := s.str()
					if ok {
						b.val, haveVal = d.addValid(v), true
					}
					return ok
				case c == 'n':
					return s.literal("null")
				case c == '{' || c == '[':
					return s.skip(1)
				default:
					start := s.p
					if !s.skip(1) {
						return false
					}
					isTrue = string(s.b[start:s.p]) == "true"
					b.val, haveVal = d.addValid(s.b[start:s.p]), true
					return true
				}
			case "endpoint":
				return s.v1Endpoint(st, "binaryAnnotations.endpoint", &b.ep, &b.hasEp)
			}
			return s.skip(1)
		})
		if !ok {
			return false
		}
		if k := d.bytesOf(b.key); len(k) == 2 && isTrue && b.hasEp {
			switch string(k) {
			case "ca":
				b.addr = 'c'
			case "sa":
				b.addr = 's'
			case "ma":
				b.addr = 'm'
			}
		}
		if haveVal || b.addr != 0 {
			d.v1bins = append(d.v1bins, b)
		}
		return true
	})
}

// v1Side is one output span of a v1 span: its kind and the core
// annotations that start and end it.
type v1Side struct {
	kind       ptrace.SpanKind
	start, end *v1Anno
}

// v1Emit turns one parsed v1 span into one or two zSpans (see ZipkinV1JSON).
func (d *zDecoder) v1Emit(st *spanState, haveDur bool) {
	if bad := st.v1MissingID(); bad != "" || st.bad != "" {
		if st.bad == "" {
			st.bad = bad
		}
		d.rej.Add(st.format + ": span " + strconv.Itoa(st.index) + ": " + st.bad)
		d.arena = d.arena[:st.arenaLo]
		return
	}
	sides, n := d.v1Sides()
	var out [2]zSpan
	for k := 0; k < n; k++ {
		out[k] = d.v1Timed(&st.z, sides[k], k, haveDur)
	}
	// Without core annotations, time comes from the other annotations.
	if n == 1 && !out[0].hasTS && len(d.v1annos) > 0 {
		lo, hi := d.v1annos[0].ts, d.v1annos[0].ts
		for _, a := range d.v1annos[1:] {
			lo, hi = min(lo, a.ts), max(hi, a.ts)
		}
		out[0].hasTS, out[0].ts = true, lo
		if !haveDur {
			out[0].dur = hi - lo
		}
	}
	for k := 0; k < n; k++ {
		z := &out[k]
		d.v1Attach(z, out[:n], k)
		if bad := z.checkTimes(); bad != "" {
			d.rej.Add(st.format + ": span " + strconv.Itoa(st.index) + ": " + bad)
			continue
		}
		d.spans = append(d.spans, *z)
	}
}

// v1MissingID says what makes the span's ids unusable, or "".
func (st *spanState) v1MissingID() string {
	switch {
	case !st.haveTrace:
		return "missing traceId"
	case st.z.traceID.IsEmpty():
		return "traceId is zero"
	case !st.haveID:
		return "missing id"
	case st.z.spanID.IsEmpty():
		return "id is zero"
	}
	return ""
}

// v1Sides reads the kind of each output span off the first core annotation
// of each kind: client and server annotations together make two spans.
func (d *zDecoder) v1Sides() (sides [2]v1Side, n int) {
	var core [6]*v1Anno // cs cr sr ss ms mr
	for i := range d.v1annos {
		a := &d.v1annos[i]
		if k := strings.IndexByte("cCsSmM", a.core); a.core != 0 && k >= 0 && core[k] == nil {
			core[k] = a
		}
	}
	client := core[0] != nil || core[1] != nil
	server := core[2] != nil || core[3] != nil
	n = 1
	switch {
	case client && server:
		sides[0] = v1Side{ptrace.SpanKindClient, core[0], core[1]}
		sides[1] = v1Side{ptrace.SpanKindServer, core[2], core[3]}
		n = 2
	case client:
		sides[0] = v1Side{ptrace.SpanKindClient, core[0], core[1]}
	case server:
		sides[0] = v1Side{ptrace.SpanKindServer, core[2], core[3]}
	case core[4] != nil:
		sides[0] = v1Side{kind: ptrace.SpanKindProducer, start: core[4]}
	case core[5] != nil:
		sides[0] = v1Side{kind: ptrace.SpanKindConsumer, start: core[5]}
	}
	// Address annotations can also tell the kind of a span without core annotations.
	if sides[0].kind == ptrace.SpanKindUnspecified {
		for i := range d.v1bins {
			switch d.v1bins[i].addr {
			case 's':
				sides[0].kind = ptrace.SpanKindClient
			case 'c':
				sides[0].kind = ptrace.SpanKindServer
			}
		}
	}
	return sides, n
}

// v1Timed is side k of base: its kind, local endpoint and timing. The span's
// own timestamp/duration belong to the side that started it (the client
// when both are present); otherwise the core annotations say.
func (d *zDecoder) v1Timed(base *zSpan, sd v1Side, k int, haveDur bool) zSpan {
	z := *base
	z.kind = sd.kind
	z.hasLocal = false
	z.local = zEndpoint{}
	if a := sd.start; a != nil && a.hasEp {
		z.local, z.hasLocal = a.ep, true
	} else if a := sd.end; a != nil && a.hasEp {
		z.local, z.hasLocal = a.ep, true
	}
	if k == 1 || !z.hasTS {
		z.hasTS, z.ts, z.dur = false, 0, 0
		if a := sd.start; a != nil {
			z.hasTS, z.ts = true, a.ts
		}
	}
	if (k == 1 || !haveDur) && z.hasTS {
		z.dur = 0
		if a := sd.end; a != nil && a.ts >= z.ts {
			z.dur = a.ts - z.ts
		}
	}
	if k == 1 {
		z.shared = true
		z.parentID = base.spanID
		z.applySharedRule()
	}
	return z
}

// v1SideOf says which output span an endpoint-carrying annotation belongs
// to: the server side when its service is the server's, else the first.
func (d *zDecoder) v1SideOf(out []zSpan, ep *zEndpoint, has bool) int {
	if len(out) == 2 && has && ep.hasService && out[1].hasLocal &&
		string(d.bytesOf(ep.service)) == string(d.bytesOf(out[1].local.service)) {
		return 1
	}
	return 0
}

// v1Attach gives output span k its annotations, tags and remote endpoint,
// and a service from the binary annotations when no core annotation named
// one.
func (d *zDecoder) v1Attach(z *zSpan, out []zSpan, k int) {
	z.tagLo, z.annoLo = len(d.tags), len(d.annos)
	for i := range d.v1annos {
		a := &d.v1annos[i]
		if a.core == 0 && d.v1SideOf(out, &a.ep, a.hasEp) == k {
			d.annos = append(d.annos, zAnno{a.ts, a.val})
		}
	}
	var fallback, lc strRef
	for i := range d.v1bins {
		b := &d.v1bins[i]
		if b.addr != 0 {
			if remoteOf(b.addr) == z.kind || (b.addr == 'm' && z.kind == ptrace.SpanKindConsumer) {
				z.remote, z.hasRemote = b.ep, true
			}
			continue
		}
		if d.v1SideOf(out, &b.ep, b.hasEp) != k {
			continue
		}
		if b.hasEp && b.ep.hasService && b.ep.service.n > 0 && fallback.n == 0 {
			fallback = b.ep.service
		}
		key := b.key
		if string(d.bytesOf(key)) == v1LocalComponent {
			lc = b.val
			key = d.addValid([]byte(v1LocalComponentRename))
		}
		d.addTag(z, d.bytesOf(key), key, b.val)
	}
	if !z.local.hasService || z.local.service.n == 0 {
		if fallback.n == 0 {
			fallback = lc
		}
		if fallback.n > 0 {
			z.local.service, z.local.hasService = fallback, true
		}
	}
	z.tagHi, z.annoHi = len(d.tags), len(d.annos)
}

// remoteOf is the span kind whose remote endpoint an address annotation
// gives: "sa" (server address) a CLIENT's, "ca" a SERVER's, "ma" a
// PRODUCER's (or a CONSUMER's).
func remoteOf(addr byte) ptrace.SpanKind {
	switch addr {
	case 's':
		return ptrace.SpanKindClient
	case 'c':
		return ptrace.SpanKindServer
	}
	return ptrace.SpanKindProducer
}
