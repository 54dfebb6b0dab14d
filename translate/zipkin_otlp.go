package translate

import (
	"bytes"
	"encoding/hex"
	"fmt"

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
	dst, counts = d.buildOTLP(dst, counts)
	return dst, counts, d.rej, nil
}

// buildOTLP appends the decoded spans as an ExportTraceServiceRequest: one
// ResourceSpans per service, in order of first appearance, each with one
// ScopeSpans without a scope (as the Collector's Zipkin receiver does).
func (d *zDecoder) buildOTLP(dst []byte, counts []ServiceCount) ([]byte, []ServiceCount) {
	if len(d.spans) == 0 {
		return dst, counts
	}
	d.groupSpans()
	for len(d.groupBufs) < len(d.groups) {
		d.groupBufs = append(d.groupBufs, nil)
	}
	for i := range d.spans {
		d.spanBuf = d.appendSpan(d.spanBuf[:0], &d.spans[i])
		g := d.gi[i]
		d.groupBufs[g] = appendBytesField(d.groupBufs[g], fScopeSpansSpans, d.spanBuf)
	}
	for j := range d.groups {
		svc := d.groups[j].service
		anyLen := sizeBytesField(len(svc))
		kvLen := sizeBytesField(len(attrServiceName)) + sizeBytesField(anyLen)
		resLen := sizeBytesField(kvLen)
		ssLen := len(d.groupBufs[j])
		dst = protowire.AppendTag(dst, fRequestResourceSpans, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(sizeBytesField(resLen)+sizeBytesField(ssLen)))
		dst = protowire.AppendTag(dst, fResourceSpansRes, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(resLen))
		dst = protowire.AppendTag(dst, fResourceAttrs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(kvLen))
		dst = appendStringField(dst, fKVKey, attrServiceName)
		dst = protowire.AppendTag(dst, fKVValue, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(anyLen))
		dst = appendStringField(dst, fAnyString, svc)
		dst = appendBytesField(dst, fResourceSpansScope, d.groupBufs[j])
		counts = append(counts, ServiceCount{Service: svc, Spans: d.groups[j].n})
	}
	return dst, counts
}

// appendSpan writes one span message (without its tag and length).
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
	// whose value is the message unless it is just "true" or "". The tags
	// that made the status are not also kept as attributes.
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
			dropErr = z.errTag
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

	// Attributes: tags, then endpoints; a repeated key keeps its first
	// place and its last value, as pcommon.Map.Put does.
	d.attrs, d.attrMask = d.attrs[:0], 0
	clear(d.attrIndex)
	for i := z.tagLo; i < z.tagHi; i++ {
		if n := i + 1; n == drop[0] || n == drop[1] || n == drop[2] || n == dropErr || n == z.stateTag {
			continue
		}
		d.putAttr(zAttr{key: d.bytesOf(d.tags[i].key), str: d.bytesOf(d.tags[i].val)})
	}
	if z.local.addr.n > 0 {
		d.putAttr(zAttr{key: []byte(attrLocalAddress), str: d.bytesOf(z.local.addr)})
	}
	if z.local.port > 0 {
		d.putAttr(zAttr{key: []byte(attrLocalPort), kind: attrInt, i: int64(z.local.port)})
	}
	if z.hasRemote {
		if z.remote.service.n > 0 {
			d.putAttr(zAttr{key: []byte(attrPeerService), str: d.bytesOf(z.remote.service)})
		}
		if z.remote.addr.n > 0 {
			d.putAttr(zAttr{key: []byte(attrPeerAddress), str: d.bytesOf(z.remote.addr)})
		}
		if z.remote.port > 0 {
			d.putAttr(zAttr{key: []byte(attrPeerPort), kind: attrInt, i: int64(z.remote.port)})
		}
	}
	if z.sharedID != (pcommon.SpanID{}) {
		d.scratch = hex.AppendEncode(d.scratch[:0], z.sharedID[:])
		d.putAttr(zAttr{key: []byte(AttrZipkinSharedSpanID), str: d.scratch})
	}
	if !z.hasTS {
		d.putAttr(zAttr{key: []byte(attrStartTimeAbsent), kind: attrBool, i: 1})
	}
	for i := range d.attrs {
		b = d.attrs[i].appendTo(b, fSpanAttrs)
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

// manyTags is where duplicate detection switches from a key-hash mask to a
// map.
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
// cost no comparisons; past manyTags a map takes over so 100k tags stay
// linear.
func (d *zDecoder) putAttr(a zAttr) {
	if len(d.attrs) >= manyTags {
		if d.attrIndex == nil {
			d.attrIndex = make(map[string]int)
		}
		if len(d.attrIndex) == 0 {
			for i := range d.attrs {
				d.attrIndex[string(d.attrs[i].key)] = i
			}
		}
		if i, ok := d.attrIndex[string(a.key)]; ok {
			d.attrs[i].str, d.attrs[i].kind, d.attrs[i].i = a.str, a.kind, a.i
			return
		}
		d.attrIndex[string(a.key)] = len(d.attrs)
		d.attrs = append(d.attrs, a)
		return
	}
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

// appendTo writes the attribute as a KeyValue field.
func (a *zAttr) appendTo(b []byte, field protowire.Number) []byte {
	if a.kind == attrString && len(a.key) < 128 && len(a.str) < 124 && len(a.key)+len(a.str) < 122 {
		// Every length fits one byte: the common tag, written without
		// the general path's calls.
		b = append(b, byte(field)<<3|2, byte(len(a.key)+len(a.str)+6), fKVKey<<3|2, byte(len(a.key)))
		b = append(b, a.key...)
		b = append(b, fKVValue<<3|2, byte(len(a.str)+2), fAnyString<<3|2, byte(len(a.str)))
		return append(b, a.str...)
	}
	var anyLen int
	switch a.kind {
	case attrString:
		anyLen = sizeBytesField(len(a.str)) // written even when empty: the oneof is set
	default:
		anyLen = 1 + protowire.SizeVarint(uint64(a.i))
	}
	kvLen := sizeBytesField(len(a.key)) + sizeBytesField(anyLen)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(kvLen))
	b = appendBytesField(b, fKVKey, a.key)
	b = protowire.AppendTag(b, fKVValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anyLen))
	switch a.kind {
	case attrString:
		b = appendBytesField(b, fAnyString, a.str)
	case attrInt:
		b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.i))
	case attrBool:
		b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.i))
	}
	return b
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
