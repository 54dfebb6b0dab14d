package translate

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The Zipkin decoders write OTLP's wire format straight from their decoded
// spans: building pdata objects and marshalling them cost more than parsing
// the JSON (a string allocation per tag, a linear duplicate check per
// attribute, a second pass to marshal). The normal model (ptrace.Traces) of
// ZipkinV2JSON and friends is these same bytes read back by pdata, so there
// is one mapping, and the golden tests check the bytes the receiver forwards.

// OTLP field numbers (opentelemetry/proto/trace/v1/trace.proto, common.proto).
const (
	fRequestResourceSpans = 1
	fResourceSpansRes     = 1
	fResourceSpansScope   = 2
	fResourceAttrs        = 1
	fScopeSpansSpans      = 2
	fSpanTraceID          = 1
	fSpanSpanID           = 2
	fSpanTraceState       = 3
	fSpanParentID         = 4
	fSpanName             = 5
	fSpanKind             = 6
	fSpanStart            = 7
	fSpanEnd              = 8
	fSpanAttrs            = 9
	fSpanEvents           = 11
	fSpanLinks            = 13
	fLinkTraceID          = 1
	fLinkSpanID           = 2
	fSpanStatus           = 15
	fEventTime            = 1
	fEventName            = 2
	fStatusMessage        = 2
	fStatusCode           = 3
	fKVKey                = 1
	fKVValue              = 2
	fAnyString            = 1
	fAnyBool              = 2
	fAnyInt               = 3
)

func zipkinTraces(body []byte, opts ZipkinOptions, parse func(*zDecoder, []byte) error) (ptrace.Traces, Rejected, error) {
	data, _, rej, err := zipkinOTLP(body, opts, nil, nil, parse)
	if err != nil {
		return ptrace.NewTraces(), Rejected{}, err
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
	if err != nil {
		return ptrace.NewTraces(), Rejected{}, fmt.Errorf("zipkin: traceport wrote OTLP that pdata refuses (a bug): %w", err)
	}
	return td, rej, nil
}

func zipkinOTLP(body []byte, opts ZipkinOptions, dst []byte, counts []ServiceCount, parse func(*zDecoder, []byte) error) ([]byte, []ServiceCount, Rejected, error) {
	d := getZDecoder(opts)
	defer putZDecoder(d)
	if err := parse(d, body); err != nil {
		return dst, counts, Rejected{}, err
	}
	dst, counts = d.buildOTLP(dst, counts, len(body))
	return dst, counts, d.rej, nil
}

// buildOTLP appends the decoded spans as an ExportTraceServiceRequest: one
// ResourceSpans per service, in order of first appearance, each with one
// ScopeSpans without a scope (as the Collector's Zipkin receiver does).
//
// Every service's spans are written straight into dst, after room for the
// ResourceSpans head sized for a guess of their length from the body's
// size, bodySize; the spans are moved only when the guess was wrong. No
// service's spans wait in a buffer of their own, which would grow (and be
// copied) as they come: dst is the only output.
func (d *zDecoder) buildOTLP(dst []byte, counts []ServiceCount, bodySize int) ([]byte, []ServiceCount) {
	if len(d.spans) == 0 {
		return dst, counts
	}
	d.groupSpans()
	order := d.byGroup()
	for j := range d.groups {
		svc, n := d.groups[j].service, d.groups[j].n
		head := sizeResourceSpansHead(svc, bodySize/len(d.spans)*n)
		at := len(dst)
		dst = append(dst, make([]byte, head)...)
		if order == nil { // one service: the spans in the order they came
			for i := range d.spans {
				dst = d.appendSpanField(dst, &d.spans[i])
			}
		} else {
			for _, i := range order[:n] {
				dst = d.appendSpanField(dst, &d.spans[i])
			}
			order = order[n:]
		}
		size := len(dst) - at - head
		if h := sizeResourceSpansHead(svc, size); h != head {
			dst = shift(dst, at+head, h-head)
		}
		appendResourceSpansHead(dst[:at], svc, size) // fills the room exactly
		counts = append(counts, ServiceCount{Service: svc, Spans: n})
	}
	return dst, counts
}

// byGroup lists the spans' indexes group by group, each group's in the
// order they came (a counting sort by d.gi); nil when there is one group.
func (d *zDecoder) byGroup() []int32 {
	if len(d.groups) == 1 {
		return nil
	}
	next := sized(d.next, len(d.groups))
	at := int32(0)
	for j := range d.groups {
		next[j], at = at, at+int32(d.groups[j].n)
	}
	order := sized(d.order, len(d.spans))
	for i, g := range d.gi {
		order[next[g]] = int32(i)
		next[g]++
	}
	d.next, d.order = next, order
	return order
}

// sized returns s with length n, its contents left as they were: its own
// array when that is large enough, else a new one of exactly n.
func sized[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// appendResourceSpansHead writes a ResourceSpans field for service svc up
// to the content of its ScopeSpans, which is to be spans bytes of span
// fields.
func appendResourceSpansHead(dst []byte, svc string, spans int) []byte {
	anyLen := sizeBytesField(len(svc))
	kvLen := sizeBytesField(len(attrServiceName)) + sizeBytesField(anyLen)
	resLen := sizeBytesField(kvLen)
	dst = protowire.AppendTag(dst, fRequestResourceSpans, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(sizeBytesField(resLen)+sizeBytesField(spans)))
	dst = protowire.AppendTag(dst, fResourceSpansRes, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(resLen))
	dst = protowire.AppendTag(dst, fResourceAttrs, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(kvLen))
	dst = appendStringField(dst, fKVKey, attrServiceName)
	dst = protowire.AppendTag(dst, fKVValue, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(anyLen))
	dst = appendStringField(dst, fAnyString, svc)
	dst = protowire.AppendTag(dst, fResourceSpansScope, protowire.BytesType)
	return protowire.AppendVarint(dst, uint64(spans))
}

// sizeResourceSpansHead is the length of what appendResourceSpansHead writes.
func sizeResourceSpansHead(svc string, spans int) int {
	anyLen := sizeBytesField(len(svc))
	kvLen := sizeBytesField(len(attrServiceName)) + sizeBytesField(anyLen)
	resLen := sizeBytesField(kvLen)
	rsLen := sizeBytesField(resLen) + sizeBytesField(spans)
	return 1 + protowire.SizeVarint(uint64(rsLen)) + sizeBytesField(resLen) + 1 + protowire.SizeVarint(uint64(spans))
}

// appendSpanField writes the span as a ScopeSpans.spans field. The span
// goes right after a 2-byte guess for the varint of its length (right from
// 128 bytes to 16 KiB, for nearly every span) and is moved when that was
// wrong: cheaper than writing it elsewhere and copying it every time.
func (d *zDecoder) appendSpanField(b []byte, z *zSpan) []byte {
	b = protowire.AppendTag(b, fScopeSpansSpans, protowire.BytesType)
	at := len(b)
	b = append(b, 0, 0)
	b = d.appendSpan(b, z)
	n := len(b) - at - 2
	if w := protowire.SizeVarint(uint64(n)); w != 2 {
		b = shift(b, at+2, w-2)
	}
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}

// shift moves b[from:] by n bytes (n may be negative), growing or
// shrinking b.
func shift(b []byte, from, n int) []byte {
	if n < 0 {
		copy(b[from+n:], b[from:])
		return b[:len(b)+n]
	}
	b = append(b, make([]byte, n)...)
	copy(b[from+n:], b[from:len(b)-n])
	return b
}

// appendSpan writes one span message (without its tag and length). It is
// kept in one piece, its steps marked by comments, because it is the
// per-span loop of the Zipkin hot path (BenchmarkZipkinV2JSONToOTLP): the
// span's state stays in registers instead of being passed between calls.
func (d *zDecoder) appendSpan(b []byte, z *zSpan) []byte {
	b = appendBytesField(b, fSpanTraceID, z.traceID[:])
	b = appendBytesField(b, fSpanSpanID, z.spanID[:])
	if z.stateTag > 0 {
		if v := d.bytesOf(d.tags[z.stateTag-1].val); len(v) > 0 {
			b = appendBytesField(b, fSpanTraceState, v)
		}
	}
	if z.parentID != z.spanID && z.parentID != (pcommon.SpanID{}) {
		b = appendBytesField(b, fSpanParentID, z.parentID[:])
	}
	if z.name.n > 0 {
		b = appendBytesField(b, fSpanName, d.bytesOf(z.name))
	}
	kind := z.kind
	if kind == ptrace.SpanKindUnspecified && z.kindTag > 0 && bytes.EqualFold(d.bytesOf(d.tags[z.kindTag-1].val), []byte("internal")) {
		kind = ptrace.SpanKindInternal
	}
	if kind != 0 {
		b = protowire.AppendTag(b, fSpanKind, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(kind))
	}
	if start := uint64(z.ts) * 1000; start != 0 {
		b = protowire.AppendTag(b, fSpanStart, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, start)
	}
	if end := uint64(z.ts)*1000 + uint64(z.dur)*1000; end != 0 {
		b = protowire.AppendTag(b, fSpanEnd, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, end)
	}

	// Status: otel.status_code (OK/ERROR) wins; else the Zipkin error tag,
	// whose value is the message unless it is just "true" or "". With
	// both, an ERROR's message is otel.status_description, else the error
	// tag's (the Node Zipkin exporter sends both, the message in error).
	// The tags that made the status are not also kept as attributes; an
	// error message that differs from otel.status_description stays one.
	drop := [3]int{z.statusTag, z.descTag, 0}
	if z.kindTag > 0 && kind == ptrace.SpanKindInternal {
		drop[2] = z.kindTag
	}
	dropErr := 0
	var (
		code ptrace.StatusCode
		msg  []byte
	)
	switch c := d.statusCode(z); c {
	case ptrace.StatusCodeOk, ptrace.StatusCodeError:
		code = c
		if z.descTag > 0 {
			msg = d.bytesOf(d.tags[z.descTag-1].val)
		}
		if z.errTag > 0 && c == ptrace.StatusCodeError {
			v := d.bytesOf(d.tags[z.errTag-1].val)
			switch {
			case len(v) == 0 || bytes.EqualFold(v, []byte("true")) || bytes.Equal(v, msg):
				dropErr = z.errTag
			case len(msg) == 0:
				msg, dropErr = v, z.errTag
			}
		}
	default:
		drop[0], drop[1] = 0, 0 // unknown otel.status_code values stay attributes
		if z.errTag > 0 {
			v := d.bytesOf(d.tags[z.errTag-1].val)
			if !bytes.EqualFold(v, []byte("false")) {
				code = ptrace.StatusCodeError
				if len(v) > 0 && !bytes.EqualFold(v, []byte("true")) {
					msg = v
				}
				dropErr = z.errTag
			}
		}
	}

	// Attributes: tags (but those that made the status or trace state),
	// then endpoints; a repeated key keeps its first place and its last
	// value, as pcommon.Map.Put does.
	skip := [5]int{drop[0], drop[1], drop[2], dropErr, z.stateTag}
	extra := d.extraAttrs(z)
	at := len(b)
	var unique bool
	if b, unique = d.appendAttrsFast(b, z, &skip, extra); !unique {
		b = d.appendAttrsMerged(b[:at], z, &skip, extra)
	}

	for i := z.annoLo; i < z.annoHi; i++ {
		a := &d.annos[i]
		ts := uint64(a.ts) * 1000
		size := 0
		if ts != 0 {
			size += 9
		}
		if a.val.n > 0 {
			size += sizeBytesField(int(a.val.n))
		}
		b = protowire.AppendTag(b, fSpanEvents, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		if ts != 0 {
			b = protowire.AppendTag(b, fEventTime, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, ts)
		}
		if a.val.n > 0 {
			b = appendBytesField(b, fEventName, d.bytesOf(a.val))
		}
	}

	if z.reportedParent != (pcommon.SpanID{}) {
		size := sizeBytesField(len(z.traceID)) + sizeBytesField(len(z.reportedParent))
		b = protowire.AppendTag(b, fSpanLinks, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = appendBytesField(b, fLinkTraceID, z.traceID[:])
		b = appendBytesField(b, fLinkSpanID, z.reportedParent[:])
	}

	if code != 0 || len(msg) > 0 {
		size := 0
		if len(msg) > 0 {
			size += sizeBytesField(len(msg))
		}
		if code != 0 {
			size += 1 + protowire.SizeVarint(uint64(code))
		}
		b = protowire.AppendTag(b, fSpanStatus, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		if len(msg) > 0 {
			b = appendBytesField(b, fStatusMessage, msg)
		}
		if code != 0 {
			b = protowire.AppendTag(b, fStatusCode, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(code))
		}
	}
	return b
}

// skipped tells whether tag i is one of skip (indexes+1 into the tags, 0
// for none).
func skipped(skip *[5]int, i int) bool {
	n := i + 1
	return n == skip[0] || n == skip[1] || n == skip[2] || n == skip[3] || n == skip[4]
}

// The keys of extraAttrs as byte slices, made once: a []byte(constant) that
// ends up in d.extra would be allocated for every span.
var (
	keyLocalAddress    = []byte(attrLocalAddress)
	keyLocalPort       = []byte(attrLocalPort)
	keyPeerService     = []byte(attrPeerService)
	keyPeerAddress     = []byte(attrPeerAddress)
	keyPeerPort        = []byte(attrPeerPort)
	keySharedSpanID    = []byte(AttrZipkinSharedSpanID)
	keyStartTimeAbsent = []byte(attrStartTimeAbsent)
)

// extraAttrs lists the attributes a span has beyond its tags, in the
// order they follow the tags.
func (d *zDecoder) extraAttrs(z *zSpan) []zAttr {
	x := d.extra[:0]
	if z.local.addr.n > 0 {
		x = append(x, zAttr{key: keyLocalAddress, str: d.bytesOf(z.local.addr)})
	}
	if z.local.port > 0 {
		x = append(x, zAttr{key: keyLocalPort, kind: attrInt, i: int64(z.local.port)})
	}
	if z.hasRemote {
		if z.remote.service.n > 0 {
			x = append(x, zAttr{key: keyPeerService, str: d.bytesOf(z.remote.service)})
		}
		if z.remote.addr.n > 0 {
			x = append(x, zAttr{key: keyPeerAddress, str: d.bytesOf(z.remote.addr)})
		}
		if z.remote.port > 0 {
			x = append(x, zAttr{key: keyPeerPort, kind: attrInt, i: int64(z.remote.port)})
		}
	}
	if z.sharedID != (pcommon.SpanID{}) {
		d.scratch = hex.AppendEncode(d.scratch[:0], z.sharedID[:])
		x = append(x, zAttr{key: keySharedSpanID, str: d.scratch})
	}
	if !z.hasTS {
		x = append(x, zAttr{key: keyStartTimeAbsent, kind: attrBool, i: 1})
	}
	d.extra = x
	return x
}

// appendAttrsFast writes the span's attributes (its tags but skip, then
// extra) as they come, which is right when their keys all differ, as they
// nearly always do. It reports false, and what it wrote is to be dropped,
// when two keys may be the same (their hashes are).
func (d *zDecoder) appendAttrsFast(b []byte, z *zSpan, skip *[5]int, extra []zAttr) ([]byte, bool) {
	if z.tagHi-z.tagLo+len(extra) > manyTags {
		return b, false
	}
	set := &d.keys
	set.reset()
	for i := z.tagLo; i < z.tagHi; i++ {
		if skipped(skip, i) {
			continue
		}
		t := &d.tags[i]
		if set.add(t.hash) {
			return b, false
		}
		b = appendStrAttr(b, fSpanAttrs, d.bytesOf(t.key), d.bytesOf(t.val))
	}
	for i := range extra {
		if set.add(keyHash(extra[i].key)) {
			return b, false
		}
		b = extra[i].appendTo(b, fSpanAttrs)
	}
	return b, true
}

// appendAttrsMerged writes the attributes as appendAttrsFast does, but
// merging those with the same key with putAttr.
func (d *zDecoder) appendAttrsMerged(b []byte, z *zSpan, skip *[5]int, extra []zAttr) []byte {
	if z.tagHi-z.tagLo+len(extra) > manyTags {
		return d.appendAttrsMany(b, z, skip, extra)
	}
	d.attrs, d.attrMask = d.attrs[:0], 0
	for i := z.tagLo; i < z.tagHi; i++ {
		if !skipped(skip, i) {
			d.putAttr(zAttr{key: d.bytesOf(d.tags[i].key), str: d.bytesOf(d.tags[i].val)})
		}
	}
	for i := range extra {
		d.putAttr(extra[i])
	}
	for i := range d.attrs {
		b = d.attrs[i].appendTo(b, fSpanAttrs)
	}
	clear(d.attrs) // they point into the body, which the pool must not keep
	return b
}

// appendAttrsMany is appendAttrsMerged for a span with more attributes
// than manyTags: repeated keys are found with an open-addressing index of
// the span's tags (about ten bytes a tag in all), not a map of their keys
// and a copy of every attribute, which cost some eighty bytes a tag. The
// extra attributes' keys differ from each other; a tag with one of them
// takes the extra's value, as putAttr would.
func (d *zDecoder) appendAttrsMany(b []byte, z *zSpan, skip *[5]int, extra []zAttr) []byte {
	const (
		unwritten = -1 // skipped, or a repeat of an earlier key
		fromExtra = -2 // last[j] = fromExtra-k: extra k's value
	)
	n := z.tagHi - z.tagLo
	size := n + n/2 + 1
	d.slots = sized(d.slots, size)
	clear(d.slots)
	d.last = sized(d.last, n)
	// find returns key's slot, and the first tag j with it (-1: none yet).
	find := func(h uint32, key []byte) (slot, j int) {
		for slot = int(uint64(h) * uint64(size) >> 32); ; slot = (slot + 1) % size {
			v := d.slots[slot]
			if v == 0 {
				return slot, -1
			}
			t := &d.tags[z.tagLo+int(v-1)]
			if t.hash == h && bytes.Equal(d.bytesOf(t.key), key) {
				return slot, int(v - 1)
			}
		}
	}
	for j := range n {
		t := &d.tags[z.tagLo+j]
		d.last[j] = unwritten
		if skipped(skip, z.tagLo+j) {
			continue
		}
		slot, first := find(t.hash, d.bytesOf(t.key))
		if first < 0 {
			d.slots[slot], d.last[j] = uint32(j+1), int32(j)
		} else {
			d.last[first] = int32(j)
		}
	}
	var taken uint64 // extras written in a tag's place
	for k := range extra {
		if _, first := find(keyHash(extra[k].key), extra[k].key); first >= 0 && k < 64 {
			d.last[first], taken = int32(fromExtra-k), taken|1<<k
		}
	}
	for j, src := range d.last {
		switch {
		case src >= 0:
			b = appendStrAttr(b, fSpanAttrs, d.bytesOf(d.tags[z.tagLo+j].key), d.bytesOf(d.tags[z.tagLo+int(src)].val))
		case src <= fromExtra:
			b = extra[fromExtra-src].appendTo(b, fSpanAttrs)
		}
	}
	for k := range extra {
		if k >= 64 || taken&(1<<k) == 0 {
			b = extra[k].appendTo(b, fSpanAttrs)
		}
	}
	return b
}

// keyHash is a cheap hash of an attribute key: its length and its first
// and last 8 bytes (all of a shorter key).
func keyHash(k []byte) uint32 {
	var x uint64
	if n := len(k); n >= 8 {
		x = binary.LittleEndian.Uint64(k) + 31*binary.LittleEndian.Uint64(k[n-8:])
	} else {
		for _, c := range k {
			x = x<<8 | uint64(c)
		}
	}
	x = (x ^ uint64(len(k))) * 0x9e3779b97f4a7c15 // Fibonacci hashing: the top bits mix all of x
	return uint32(x >> 32)
}

// keySet is a set of key hashes, for appendAttrsFast: open addressing in a
// table twice the largest set, whose slots are stamped with a generation so
// that emptying it is just a new generation.
type keySet struct {
	gen   uint32
	slots [2 * manyTags]struct{ gen, h uint32 }
}

func (k *keySet) reset() {
	k.gen++
	if k.gen == 0 { // wrapped: old stamps could look current
		clear(k.slots[:])
		k.gen = 1
	}
}

// add puts h in the set and reports whether it was there already.
func (k *keySet) add(h uint32) bool {
	const mask = len(k.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := &k.slots[i]
		if s.gen != k.gen {
			s.gen, s.h = k.gen, h
			return false
		}
		if s.h == h {
			return true
		}
	}
}

// manyTags is where duplicate detection switches from putAttr's key-hash
// mask to appendAttrsMany's index, and the most attributes appendAttrsFast
// takes.
const manyTags = 64

const (
	attrString = iota
	attrInt
	attrBool
)

// zAttr is one attribute on its way to the wire; key and str point into the
// decoder's arena.
type zAttr struct {
	key, str []byte
	kind     uint8
	i        int64
}

// putAttr adds an attribute, replacing the value of an earlier one with the
// same key. A 64-bit mask of key hashes makes the usual no-duplicate case
// cost no comparisons; past manyTags, appendAttrsMany takes over.
func (d *zDecoder) putAttr(a zAttr) {
	var h uint64
	if n := len(a.key); n > 0 {
		h = 1 << ((uint(n)*31 + uint(a.key[0]) + uint(a.key[n-1])*7) & 63)
	} else {
		h = 1
	}
	if d.attrMask&h != 0 {
		for i := range d.attrs {
			if bytes.Equal(d.attrs[i].key, a.key) {
				d.attrs[i].str, d.attrs[i].kind, d.attrs[i].i = a.str, a.kind, a.i
				return
			}
		}
	}
	d.attrMask |= h
	d.attrs = append(d.attrs, a)
}

// appendStrAttr writes a string attribute as a KeyValue field.
func appendStrAttr(b []byte, field protowire.Number, key, val []byte) []byte {
	if len(key) < 128 && len(val) < 124 && len(key)+len(val) < 122 {
		// Every length fits one byte: the common tag, written without
		// the general path's calls.
		n := len(b)
		size := 8 + len(key) + len(val)
		b = slices.Grow(b, size+16)[:n+size] // 16 spare bytes for copy16
		b[n], b[n+1], b[n+2], b[n+3] = byte(field)<<3|2, byte(len(key)+len(val)+6), fKVKey<<3|2, byte(len(key))
		n += 4
		copy16(b[n:], key)
		n += len(key)
		b[n], b[n+1], b[n+2], b[n+3] = fKVValue<<3|2, byte(len(val)+2), fAnyString<<3|2, byte(len(val))
		copy16(b[n+4:], val)
		return b
	}
	anyLen := sizeBytesField(len(val)) // written even when empty: the oneof is set
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeBytesField(len(key))+sizeBytesField(anyLen)))
	b = appendBytesField(b, fKVKey, key)
	b = protowire.AppendTag(b, fKVValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anyLen))
	return appendBytesField(b, fAnyString, val)
}

// copy16 copies src to dst, which has room for at least 16 bytes. Keys and
// values are mostly short, and a slice of the body nearly always has 16
// bytes of capacity: then one 16-byte move (the bytes past len(src) land
// in dst's spare room, to be overwritten or left beyond its length) beats
// a call to memmove.
func copy16(dst, src []byte) {
	if len(src) <= 16 && cap(src) >= 16 {
		*(*[16]byte)(dst[:16]) = [16]byte(src[:16])
		return
	}
	copy(dst, src)
}

// appendTo writes the attribute as a KeyValue field.
func (a *zAttr) appendTo(b []byte, field protowire.Number) []byte {
	if a.kind == attrString {
		return appendStrAttr(b, field, a.key, a.str)
	}
	anyLen := 1 + protowire.SizeVarint(uint64(a.i))
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeBytesField(len(a.key))+sizeBytesField(anyLen)))
	b = appendBytesField(b, fKVKey, a.key)
	b = protowire.AppendTag(b, fKVValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anyLen))
	if a.kind == attrInt {
		b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
	} else {
		b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
	}
	return protowire.AppendVarint(b, uint64(a.i))
}

func sizeBytesField(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendStringField(b []byte, num protowire.Number, v string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}
