package translate

import (
	"bytes"
	"sync"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ZipkinOptions adjusts the Zipkin decoders to known sender quirks.
type ZipkinOptions struct {
	// ProtoIDsLittleEndian reads span and parent ids of Zipkin proto3 bodies in little-endian
	// byte order, as Envoy's HTTP_PROTO collector writes them (host byte order); trace ids stay big-endian.
	ProtoIDsLittleEndian bool
}

// Attribute names the Zipkin decoders write. Endpoint and peer names follow
// the current OpenTelemetry semantic conventions (the Collector's Zipkin
// receiver still writes the older net.host.ip / net.peer.ip names).
const (
	attrServiceName        = "service.name"
	attrPeerService        = "peer.service"         // remoteEndpoint.serviceName
	attrPeerAddress        = "network.peer.address" // remoteEndpoint.ipv4, else ipv6
	attrPeerPort           = "network.peer.port"    // remoteEndpoint.port (int)
	attrLocalAddress       = "network.local.address"
	attrLocalPort          = "network.local.port"
	attrStartTimeAbsent    = "otel.zipkin.absentField.startTime" // as the Collector: span had no timestamp
	tagError               = "error"
	tagStatusCode          = "otel.status_code"
	tagStatusDescription   = "otel.status_description"
	tagCanonicalService    = "istio.canonical_service"
	tagIstioNamespace      = "istio.namespace"
	tagSpanKind            = "span.kind"
	tagW3CTraceState       = "w3c.tracestate"
	v1LocalComponent       = "lc"
	v1LocalComponentRename = "component"
)

// AttrZipkinSharedSpanID holds, on a span whose id traceport rewrote by the
// shared-span rule (see ZipkinV2JSON), the span id the sender reported, in hex.
const AttrZipkinSharedSpanID = "zipkin.shared_span_id"

// SharedServerSpanID is the id traceport gives the SERVER half of a Zipkin
// span that shares its id with the CLIENT half (Envoy's shared_span_context,
// B3 "joined" spans, Zipkin v1 spans carrying both cs/cr and sr/ss): the
// first 8 bytes, big-endian, of FNV-1a 64 over traceID (16 bytes) || spanID
// (8 bytes) || "shared-server", and 1 if that is zero. It is a pure function
// of the ids, so every traceport instance that sees the span agrees.
func SharedServerSpanID(traceID pcommon.TraceID, spanID pcommon.SpanID) pcommon.SpanID {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for _, c := range traceID {
		h = (h ^ uint64(c)) * prime64
	}
	for _, c := range spanID {
		h = (h ^ uint64(c)) * prime64
	}
	for i := 0; i < len("shared-server"); i++ {
		h = (h ^ uint64("shared-server"[i])) * prime64
	}
	if h == 0 {
		h = 1
	}
	var id pcommon.SpanID
	for i := 7; i >= 0; i-- {
		id[i] = byte(h)
		h >>= 8
	}
	return id
}

// strRef is a string (unescaped, valid UTF-8) in the decoder's arena or,
// with the inBody flag in off, in the request body (a JSON string without
// escapes is already the text to write), written from there straight to
// the OTLP output: no Go string per tag, and no copy of most of them.
type strRef struct{ off, n uint32 }

// inBody marks a strRef whose off is into the body rather than the arena.
const inBody = 1 << 31

type zEndpoint struct {
	service, addr strRef // addr: ipv4 text if any, else ipv6 text
	port          int32
	hasService    bool
}

type zKV struct {
	key, val strRef
	hash     uint32 // keyHash of the key
}

type zAnno struct {
	ts  int64 // µs
	val strRef
}

// zSpan is one decoded span waiting to be written into pdata; ids are final.
type zSpan struct {
	traceID  pcommon.TraceID
	spanID   pcommon.SpanID
	parentID pcommon.SpanID
	sharedID pcommon.SpanID // original id when the shared rule rewrote spanID
	// reportedParent is the parentId a shared SERVER span was reported
	// with, which the shared rule replaced: kept as a link.
	reportedParent pcommon.SpanID
	kind           ptrace.SpanKind
	name           strRef
	ts, dur        int64 // µs
	hasTS          bool
	local          zEndpoint
	remote         zEndpoint
	hasRemote      bool
	hasLocal       bool
	shared         bool
	// tags[tagLo:tagHi] and annos[annoLo:annoHi] of the decoder
	tagLo, tagHi   int
	annoLo, annoHi int
	// indexes+1 into tags of tags with a meaning beyond an attribute (0: absent)
	errTag, statusTag, descTag, canonTag, nsTag, kindTag, stateTag int
}

// zDecoder holds one request's scratch state; pooled because a decoder that
// allocated its slices per request would spend more time in the allocator
// than in parsing.
type zDecoder struct {
	body    []byte // the request, which strRefs with inBody point into
	arena   []byte
	scratch []byte
	spans   []zSpan
	tags    []zKV
	annos   []zAnno
	groups  []zGroup
	rej     Rejected
	opts    ZipkinOptions
	v1annos []v1Anno
	v1bins  []v1Bin

	// OTLP writing (zipkin_otlp.go)
	gi       []int32 // group of each span
	order    []int32 // byGroup: span indexes, group by group
	next     []int32 // byGroup: where each group's next index goes
	attrs    []zAttr
	attrMask uint64
	extra    []zAttr
	keys     keySet
	slots    []uint32 // appendAttrsMany's index of a span's keys
	last     []int32  // appendAttrsMany: where each key's value comes from

	at int // the JSON scanner's offset at the tag being added, for growTags

	names    [8]string // recent service names (serviceName)
	nextName int       // the slot of names to fill next
}

type zGroup struct {
	service string
	n       int
}

var zDecoderPool = sync.Pool{New: func() any { return new(zDecoder) }}

func getZDecoder(opts ZipkinOptions) *zDecoder {
	d := zDecoderPool.Get().(*zDecoder)
	d.opts = opts
	return d
}

func putZDecoder(d *zDecoder) {
	if cap(d.arena) > 8<<20 || cap(d.spans) > 1<<16 || cap(d.tags) > 1<<18 || cap(d.slots) > 1<<18 {
		return // let a huge request's buffers go
	}
	d.body, d.at = nil, 0
	d.arena = d.arena[:0]
	d.scratch = d.scratch[:0]
	d.spans = d.spans[:0]
	d.tags = d.tags[:0]
	d.annos = d.annos[:0]
	clear(d.groups)
	d.groups = d.groups[:0]
	d.rej = Rejected{}
	d.v1annos = d.v1annos[:0]
	d.v1bins = d.v1bins[:0]
	d.attrs = d.attrs[:0]
	clear(d.extra[:cap(d.extra)]) // they point into the body, which the pool must not keep
	d.extra = d.extra[:0]
	zDecoderPool.Put(d)
}

// addStr appends b to the arena, replacing invalid UTF-8 with U+FFFD so the
// output always marshals.
func (d *zDecoder) addStr(b []byte) strRef {
	off := len(d.arena)
	if utf8.Valid(b) {
		d.arena = append(d.arena, b...)
	} else {
		d.arena = appendValidUTF8(d.arena, b)
	}
	return strRef{uint32(off), uint32(len(d.arena) - off)}
}

// addValid appends b, which the caller knows to be valid UTF-8 (the JSON
// scanner already checked it).
func (d *zDecoder) addValid(b []byte) strRef {
	off := len(d.arena)
	d.arena = append(d.arena, b...)
	return strRef{uint32(off), uint32(len(b))}
}

func appendValidUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}

// bodyRef refers to body[off:off+n], or copies it to the arena when the
// offset does not fit beside the inBody flag.
func (d *zDecoder) bodyRef(off, n int) strRef {
	if off >= inBody {
		return d.addValid(d.body[off : off+n])
	}
	return strRef{uint32(off) | inBody, uint32(n)}
}

// forget takes back r, the string kept last, from the arena.
func (d *zDecoder) forget(r strRef) {
	if r.off&inBody == 0 {
		d.arena = d.arena[:r.off]
	}
}

// bytesOf returns the text of r. Its capacity ends with the body's or the
// arena's length, so that copy16 reads nothing but them.
func (d *zDecoder) bytesOf(r strRef) []byte {
	if r.off&inBody != 0 {
		off := r.off &^ inBody
		return d.body[off : off+r.n : len(d.body)]
	}
	return d.arena[r.off : r.off+r.n : len(d.arena)]
}

// addTag appends a tag of span z; key is the text of kr. The key's hash is
// taken here, while the key is in the cache, for appendAttrsFast.
func (d *zDecoder) addTag(z *zSpan, key []byte, kr, vr strRef) {
	z.noteTag(key, len(d.tags))
	if len(d.tags) == cap(d.tags) {
		d.growTags()
	}
	d.tags = append(d.tags, zKV{kr, vr, keyHash(key)})
}

// growTags makes room for more tags. append grows a large slice by a
// quarter, each step a copy that leaves the old array to the collector:
// some thirty arrays, five times the final size in all, for a body of a
// million tags. Past the first thousand tags, the slice grows instead to
// the count the body read so far suggests for all of it (with an eighth to
// spare), which its remaining bytes could hold: by what has arrived, not by
// the worst case.
func (d *zDecoder) growTags() {
	n := len(d.tags)
	want := n + n/4 + 16
	if n >= 1024 && d.at > 0 && d.at < len(d.body) {
		est := int(int64(n) * int64(len(d.body)) / int64(d.at))
		room := n + (len(d.body)-d.at)/len(`"":"",`) + 1 // the shortest tag
		want = max(want, min(est+est/8, room))
	}
	grown := make([]zKV, n, want) // not slices.Grow: under -race its append copies twice
	copy(grown, d.tags)
	d.tags = grown
}

// noteTag remembers tags with a meaning beyond an attribute; i is the index in d.tags.
func (s *zSpan) noteTag(key []byte, i int) {
	if len(key) < 5 {
		return
	}
	switch string(key) {
	case tagError:
		s.errTag = i + 1
	case tagStatusCode:
		s.statusTag = i + 1
	case tagStatusDescription:
		s.descTag = i + 1
	case tagCanonicalService:
		s.canonTag = i + 1
	case tagIstioNamespace:
		s.nsTag = i + 1
	case tagSpanKind:
		s.kindTag = i + 1
	case tagW3CTraceState:
		s.stateTag = i + 1
	}
}

// applySharedRule gives a shared SERVER span its derived id and makes the
// id it shares with the CLIENT half its parent. The parent it was reported
// with is kept, as a link (see appendSpan): if the CLIENT half never
// arrives, that is where the span belongs.
func (s *zSpan) applySharedRule() {
	if !s.shared || s.kind != ptrace.SpanKindServer {
		return
	}
	if s.parentID != s.spanID {
		s.reportedParent = s.parentID
	}
	s.sharedID = s.spanID
	s.parentID = s.spanID
	s.spanID = SharedServerSpanID(s.traceID, s.spanID)
}

// serviceOf picks the span's service: localEndpoint.serviceName; else the
// Istio tags (istio.canonical_service, joined with "." and istio.namespace
// when present, which is how Istio names a sidecar's Zipkin service);
// else FallbackServiceName.
func (d *zDecoder) serviceOf(s *zSpan) []byte {
	if s.local.hasService && s.local.service.n > 0 {
		return d.bytesOf(s.local.service)
	}
	if s.canonTag > 0 {
		c := d.bytesOf(d.tags[s.canonTag-1].val)
		if len(c) > 0 {
			if s.nsTag > 0 {
				if ns := d.bytesOf(d.tags[s.nsTag-1].val); len(ns) > 0 {
					d.scratch = append(append(append(d.scratch[:0], c...), '.'), ns...)
					return d.scratch
				}
			}
			return c
		}
	}
	return []byte(FallbackServiceName)
}

// groupSpans assigns each span to its service's group, in order of first
// appearance; d.gi[i] is span i's group.
func (d *zDecoder) groupSpans() {
	d.gi = d.gi[:0]
	var index map[string]int // only for requests from many services
	for i := range d.spans {
		svc := d.serviceOf(&d.spans[i])
		g := -1
		if index != nil {
			if j, ok := index[string(svc)]; ok {
				g = j
			}
		} else {
			for j := range d.groups {
				if d.groups[j].service == string(svc) {
					g = j
					break
				}
			}
		}
		if g < 0 {
			d.groups = append(d.groups, zGroup{service: d.serviceName(svc)})
			g = len(d.groups) - 1
			if index != nil {
				index[d.groups[g].service] = g
			} else if len(d.groups) > 16 {
				index = make(map[string]int, 2*len(d.groups))
				for j := range d.groups {
					index[d.groups[j].service] = j
				}
			}
		}
		d.groups[g].n++
		d.gi = append(d.gi, int32(g))
	}
}

// serviceName returns svc as a string of its own (counters keep it long
// after the request). The decoder remembers the last few it made, so the
// name of a sidecar that sends often is not made again for every request.
func (d *zDecoder) serviceName(svc []byte) string {
	for _, s := range d.names {
		if s == string(svc) { // an empty slot can only match "", which is right too
			return s
		}
	}
	s := string(svc)
	d.names[d.nextName] = s
	d.nextName = (d.nextName + 1) % len(d.names)
	return s
}

func (d *zDecoder) statusCode(z *zSpan) ptrace.StatusCode {
	if z.statusTag == 0 {
		return ptrace.StatusCodeUnset
	}
	v := d.bytesOf(d.tags[z.statusTag-1].val)
	switch {
	case bytes.EqualFold(v, []byte("OK")) || bytes.EqualFold(v, []byte("STATUS_CODE_OK")):
		return ptrace.StatusCodeOk
	case bytes.EqualFold(v, []byte("ERROR")) || bytes.EqualFold(v, []byte("STATUS_CODE_ERROR")):
		return ptrace.StatusCodeError
	}
	return ptrace.StatusCodeUnset
}

// maxMicros keeps µs*1000 inside the int64 nanoseconds pdata round-trips through.
const maxMicros = (1<<63 - 1) / 1000

// checkTimes validates the span's timing; "" means fine.
func (s *zSpan) checkTimes() string {
	switch {
	case s.ts < 0:
		return "negative timestamp"
	case s.dur < 0:
		return "negative duration"
	case s.ts > maxMicros || s.dur > maxMicros-s.ts:
		return "timestamp out of range"
	}
	return ""
}

// parseHexID decodes up to len(dst)*2 hex digits, case-insensitive,
// right-aligned into dst (a short id is left-padded with zeros). It returns
// the offset of the first bad digit, or -1, and a problem ("" if none).
func parseHexID(dst []byte, src []byte) (bad int, problem string) {
	if len(src) == 0 {
		return -1, "empty id"
	}
	if len(src) > len(dst)*2 {
		return -1, "id longer than " + itoa(len(dst)*2) + " hex digits"
	}
	clear(dst)
	j := len(dst)*2 - len(src) // nibble position of src[0]
	if j%2 == 0 {
		// Whole bytes, the usual case: two digits at a time, checked
		// once at the end (unhex is 0xff for a non-digit).
		var all byte // every digit's value ORed
		for i := 0; i+1 < len(src); i += 2 {
			hi, lo := unhex[src[i]], unhex[src[i+1]]
			all |= hi | lo
			dst[(j+i)/2] = hi<<4 | lo
		}
		if all <= 15 {
			return -1, ""
		}
		clear(dst) // and again digit by digit, to find the bad one
	}
	for i, c := range src {
		v := unhex[c]
		if v > 15 {
			return i, "invalid hex digit"
		}
		if (j+i)&1 == 0 {
			dst[(j+i)/2] = v << 4
		} else {
			dst[(j+i)/2] |= v
		}
	}
	return -1, ""
}

var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// SniffZipkinJSON tells v1 from v2 JSON by the body (v1 has "binaryAnnotations" or annotations with
// "endpoint", or core annotation values cs/sr/ss/cr; v2 has "localEndpoint"/"kind"/"tags"), so the
// receiver picks the decoder from Content-Type and body, not from the path: some Envoy configurations
// post v2 JSON to /api/v1/spans. It stops at the first telling key, usually within the first span,
// and answers v2 when nothing tells.
func SniffZipkinJSON(body []byte) (v1 bool) {
	d := zDecoder{}
	s := jsonScanner{b: body, d: &d}
	valueKey := false // the last key was "value"
	for {
		c := s.peek()
		switch {
		case c == 0:
			return false
		case c == '"':
			str, ok := s.str()
			if !ok {
				return false
			}
			if s.peek() == ':' {
				switch string(str) {
				case "binaryAnnotations", "endpoint":
					return true
				case "localEndpoint", "remoteEndpoint", "kind", "tags", "shared":
					return false
				}
				valueKey = string(str) == "value"
				continue
			}
			if valueKey {
				switch string(str) {
				case "cs", "cr", "sr", "ss":
					return true
				}
			}
			valueKey = false
		default:
			s.p++
		}
	}
}
