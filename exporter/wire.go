package exporter

import (
	"bytes"
	"errors"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/traceport/traceport/translate"
)

// Field numbers of the OTLP trace messages the wire walker reads
// (opentelemetry/proto/trace/v1/trace.proto).
const (
	fieldRequestResourceSpans = 1    // ExportTraceServiceRequest.resource_spans
	fieldResourceScopeSpans   = 2    // ResourceSpans.scope_spans
	fieldResourceLegacySpans  = 1000 // ResourceSpans.instrumentation_library_spans (deprecated)
	fieldScopeSpans           = 2    // ScopeSpans.spans (InstrumentationLibrarySpans.spans too)
	fieldSpanTraceID          = 1    // Span.trace_id
)

var errFound = errors.New("found") // ends a walk early; never returned

// wireSpans is a serialized ExportTraceServiceRequest (or several,
// concatenated) taken apart down to its spans without decoding them: every
// span keeps a reference to the header of its ResourceSpans and ScopeSpans
// (all their fields but the repeated children), so any subset of spans can
// be written back as a valid request with the same resources and scopes.
// All slices point into the walked bytes. It is the exporter's one walk
// over the three levels above the spans: SplitRequest cuts by size with
// it, kafkaRecords groups by trace with it.
type wireSpans struct {
	resources [][]byte    // ResourceSpans fields other than scope_spans
	scopes    []wireScope // ScopeSpans fields other than spans
	spans     []wireSpan

	resIndex   map[string]int // resources by their bytes, once there are many
	scopeIndex map[wireScopeKey]int
}

type wireScope struct {
	resource int              // index in resources
	num      protowire.Number // the field it came in: scope_spans, or the legacy one
	header   []byte
}

type wireSpan struct {
	scope   int // index in scopes
	traceID [16]byte
	data    []byte // the serialized Span
}

// walkSpans takes data apart, spans a hint of how many spans it holds. It
// allocates only the index slices and the headers; unknown fields of the
// request are skipped, unknown fields of resources, scopes and spans are
// kept. Equal resources (and equal scopes of one resource) get one index:
// a batch of pushes from one service holds its resource once per push, and
// the spans of a trace then share one ResourceSpans when written back.
//
// Legacy instrumentation_library_spans (field 1000) hold the spans of a
// ResourceSpans that has no scope_spans; next to scope_spans they are left
// out, as every OTLP receiver ignores them there.
func walkSpans(data []byte, spans int, w *wireSpans) error {
	w.spans = make([]wireSpan, 0, spans)
	return w.walk(data)
}

// walk adds the spans of data, one or more serialized
// ExportTraceServiceRequests, to those already walked.
func (w *wireSpans) walk(data []byte) error {
	return translate.EachField(data, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num != fieldRequestResourceSpans || typ != protowire.BytesType {
			return nil
		}
		return w.walkResource(value)
	})
}

func (w *wireSpans) walkResource(data []byte) error {
	var header []byte
	var scopes, legacy [][]byte
	err := translate.EachField(data, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		switch {
		case typ == protowire.BytesType && num == fieldResourceScopeSpans:
			scopes = append(scopes, value)
		case typ == protowire.BytesType && num == fieldResourceLegacySpans:
			legacy = append(legacy, value)
		default:
			header = append(header, field...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res := w.resource(header)
	scopeNum := protowire.Number(fieldResourceScopeSpans)
	if len(scopes) == 0 {
		scopes, scopeNum = legacy, fieldResourceLegacySpans
	}
	for _, sc := range scopes {
		if err := w.walkScope(sc, res, scopeNum); err != nil {
			return err
		}
	}
	return nil
}

type wireScopeKey struct {
	resource int
	num      protowire.Number
	header   string
}

func (w *wireSpans) walkScope(data []byte, res int, num protowire.Number) error {
	var header []byte
	first := len(w.spans)
	err := translate.EachField(data, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num != fieldScopeSpans || typ != protowire.BytesType {
			header = append(header, field...)
			return nil
		}
		s := wireSpan{data: value}
		err := translate.EachField(value, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
			if num == fieldSpanTraceID && typ == protowire.BytesType && len(value) == 16 {
				copy(s.traceID[:], value)
				return errFound // encoders write it first: the rest need not be read
			}
			return nil
		})
		w.spans = append(w.spans, s)
		if err == errFound {
			err = nil
		}
		return err
	})
	scope := w.scope(res, num, header)
	for i := first; i < len(w.spans); i++ {
		w.spans[i].scope = scope
	}
	return err
}

// wireLinear is how many resources (and scopes) are looked up by
// comparing bytes before an index map is made: a push holds one or two,
// and a map per push would cost more than the walk.
const wireLinear = 8

// resource is the index of the resource with this header, added if new.
func (w *wireSpans) resource(header []byte) int {
	if w.resIndex == nil {
		for i, r := range w.resources {
			if bytes.Equal(r, header) {
				return i
			}
		}
		if len(w.resources) < wireLinear {
			w.resources = append(w.resources, header)
			return len(w.resources) - 1
		}
		w.resIndex = make(map[string]int, 2*wireLinear)
		for i, r := range w.resources {
			w.resIndex[string(r)] = i
		}
	}
	res, ok := w.resIndex[string(header)]
	if !ok {
		res = len(w.resources)
		w.resIndex[string(header)] = res
		w.resources = append(w.resources, header)
	}
	return res
}

// scope is the index of the scope of resource res with this header, added
// if new.
func (w *wireSpans) scope(res int, num protowire.Number, header []byte) int {
	if w.scopeIndex == nil {
		for i, sc := range w.scopes {
			if sc.resource == res && sc.num == num && bytes.Equal(sc.header, header) {
				return i
			}
		}
		if len(w.scopes) < wireLinear {
			w.scopes = append(w.scopes, wireScope{resource: res, num: num, header: header})
			return len(w.scopes) - 1
		}
		w.scopeIndex = make(map[wireScopeKey]int, 2*wireLinear)
		for i, sc := range w.scopes {
			w.scopeIndex[wireScopeKey{sc.resource, sc.num, string(sc.header)}] = i
		}
	}
	key := wireScopeKey{res, num, string(header)}
	scope, ok := w.scopeIndex[key]
	if !ok {
		scope = len(w.scopes)
		w.scopeIndex[key] = scope
		w.scopes = append(w.scopes, wireScope{resource: res, num: num, header: header})
	}
	return scope
}

// add appends the spans another walk found, as if walked here.
func (w *wireSpans) add(o *wireSpans) {
	scopes := make([]int, len(o.scopes))
	for i, sc := range o.scopes {
		scopes[i] = w.scope(w.resource(o.resources[sc.resource]), sc.num, sc.header)
	}
	for _, s := range o.spans {
		s.scope = scopes[s.scope]
		w.spans = append(w.spans, s)
	}
}

// appendRequest appends the spans picked (indexes into w.spans) to dst as
// one ExportTraceServiceRequest. Runs of spans sharing a scope share one
// ScopeSpans, runs sharing a resource one ResourceSpans.
func (w *wireSpans) appendRequest(dst []byte, picked []int) []byte {
	for i := 0; i < len(picked); {
		res := w.scopes[w.spans[picked[i]].scope].resource
		j := i
		for j < len(picked) && w.scopes[w.spans[picked[j]].scope].resource == res {
			j++
		}
		dst = protowire.AppendTag(dst, fieldRequestResourceSpans, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(w.resourceSize(picked[i:j])))
		dst = append(dst, w.resources[res]...)
		for k := i; k < j; {
			scope := w.spans[picked[k]].scope
			l := k
			for l < j && w.spans[picked[l]].scope == scope {
				l++
			}
			dst = protowire.AppendTag(dst, w.scopes[scope].num, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(w.scopeSize(picked[k:l])))
			dst = append(dst, w.scopes[scope].header...)
			for _, s := range picked[k:l] {
				dst = protowire.AppendTag(dst, fieldScopeSpans, protowire.BytesType)
				dst = protowire.AppendBytes(dst, w.spans[s].data)
			}
			k = l
		}
		i = j
	}
	return dst
}

// requestSize is len(appendRequest(nil, picked)), without writing it.
func (w *wireSpans) requestSize(picked []int) int {
	n := 0
	for i := 0; i < len(picked); {
		res := w.scopes[w.spans[picked[i]].scope].resource
		j := i
		for j < len(picked) && w.scopes[w.spans[picked[j]].scope].resource == res {
			j++
		}
		size := w.resourceSize(picked[i:j])
		n += 1 + protowire.SizeVarint(uint64(size)) + size
		i = j
	}
	return n
}

// resourceSize is the size of one ResourceSpans holding picked, which all
// belong to one resource.
func (w *wireSpans) resourceSize(picked []int) int {
	n := len(w.resources[w.scopes[w.spans[picked[0]].scope].resource])
	for k := 0; k < len(picked); {
		scope := w.spans[picked[k]].scope
		l := k
		for l < len(picked) && w.spans[picked[l]].scope == scope {
			l++
		}
		size := w.scopeSize(picked[k:l])
		n += protowire.SizeTag(w.scopes[scope].num) + protowire.SizeVarint(uint64(size)) + size
		k = l
	}
	return n
}

// scopeSize is the size of one ScopeSpans holding picked, which all belong
// to one scope.
func (w *wireSpans) scopeSize(picked []int) int {
	n := len(w.scopes[w.spans[picked[0]].scope].header)
	for _, s := range picked {
		n += 1 + protowire.SizeBytes(len(w.spans[s].data))
	}
	return n
}
