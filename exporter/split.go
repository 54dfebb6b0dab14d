package exporter

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/traceport/traceport/translate"
)

// Part is one request cut from a larger one by SplitRequest.
type Part struct {
	Data  []byte // a serialized ExportTraceServiceRequest
	Spans int
}

// SplitRequest cuts a serialized ExportTraceServiceRequest into requests
// of at most maxBytes each, at span boundaries, so that a destination with
// a message size limit (gRPC's 4 MiB, an HTTP body limit, Kafka's message
// size) takes them all. Each part repeats the resource and the scope (every
// field of ResourceSpans and ScopeSpans but the spans) of the spans it
// holds; the parts together hold every span once, in order. Only the
// three levels above the spans are walked: spans are copied as they are.
//
// A span that does not fit in maxBytes even alone with its resource and
// scope is put in a part of its own, larger than maxBytes: whether to drop
// it or try is the caller's choice. Instrumentation_library_spans (field
// 1000) next to scope_spans are left out, as every OTLP receiver ignores
// them; alone they are cut like scope_spans. Unknown fields of the request
// itself are left out. The request is not validated beyond its framing: the
// receiver did that.
func SplitRequest(req []byte, maxBytes int) ([]Part, error) {
	s := splitter{max: maxBytes, lenSize: protowire.SizeVarint(uint64(max(maxBytes, 0)))}
	err := translate.EachField(req, func(num protowire.Number, typ protowire.Type, _, rs []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return s.resourceSpans(rs)
	})
	if err != nil {
		return nil, fmt.Errorf("split request: %w", err)
	}
	s.flush()
	return s.parts, nil
}

// splitter builds parts greedily. Sizes are counted with every open
// container's length prefix at its largest (the varint size of max), so a
// part never exceeds max once its real lengths are written.
type splitter struct {
	max, lenSize int
	parts        []Part

	// the part being built
	rss            []splitResource
	size, spans    int
	rsOpen, ssOpen bool // the last resource / scope in rss is the one being walked
}

type splitResource struct {
	header [][]byte // encoded fields other than the scope spans
	scopes []splitScope
}

type splitScope struct {
	num    protowire.Number // 2 (scope_spans), or 1000 (instrumentation_library_spans)
	header [][]byte         // encoded fields other than the spans
	spans  [][]byte         // encoded span fields
}

func (s *splitter) resourceSpans(rs []byte) error {
	var header [][]byte
	hasScope := false
	err := translate.EachField(rs, func(num protowire.Number, typ protowire.Type, field, _ []byte) error {
		switch {
		case typ == protowire.BytesType && num == 2:
			hasScope = true
		case typ == protowire.BytesType && num == 1000:
		default:
			header = append(header, field)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.rsOpen = false
	return translate.EachField(rs, func(num protowire.Number, typ protowire.Type, _, ss []byte) error {
		if typ != protowire.BytesType || num != 2 && (num != 1000 || hasScope) {
			return nil
		}
		return s.scopeSpans(header, num, ss)
	})
}

func (s *splitter) scopeSpans(rsHeader [][]byte, ssNum protowire.Number, ss []byte) error {
	var header [][]byte
	err := translate.EachField(ss, func(num protowire.Number, typ protowire.Type, field, _ []byte) error {
		if num != 2 || typ != protowire.BytesType {
			header = append(header, field)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.ssOpen = false
	return translate.EachField(ss, func(num protowire.Number, typ protowire.Type, field, _ []byte) error {
		if num == 2 && typ == protowire.BytesType {
			s.add(rsHeader, ssNum, header, field)
		}
		return nil
	})
}

// add puts one span in the part being built, or in a new one if it does
// not fit.
func (s *splitter) add(rsHeader [][]byte, ssNum protowire.Number, ssHeader [][]byte, span []byte) {
	cost := func() int {
		n := len(span)
		if !s.ssOpen {
			n += protowire.SizeTag(ssNum) + s.lenSize + fieldsSize(ssHeader)
		}
		if !s.rsOpen {
			n += protowire.SizeTag(1) + s.lenSize + fieldsSize(rsHeader)
		}
		return n
	}
	c := cost()
	if s.spans > 0 && s.size+c > s.max {
		s.flush()
		c = cost()
	}
	if !s.rsOpen {
		s.rss = append(s.rss, splitResource{header: rsHeader})
		s.rsOpen, s.ssOpen = true, false
	}
	rs := &s.rss[len(s.rss)-1]
	if !s.ssOpen {
		rs.scopes = append(rs.scopes, splitScope{num: ssNum, header: ssHeader})
		s.ssOpen = true
	}
	sc := &rs.scopes[len(rs.scopes)-1]
	sc.spans = append(sc.spans, span)
	s.size += c
	s.spans++
}

// flush encodes the part being built.
func (s *splitter) flush() {
	if s.spans == 0 {
		return
	}
	n := 0
	for i := range s.rss {
		l := s.rss[i].bodySize()
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(l)) + l
	}
	out := make([]byte, 0, n)
	for i := range s.rss {
		rs := &s.rss[i]
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(rs.bodySize()))
		out = appendFields(out, rs.header)
		for j := range rs.scopes {
			sc := &rs.scopes[j]
			out = protowire.AppendTag(out, sc.num, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(sc.bodySize()))
			out = appendFields(out, sc.header)
			out = appendFields(out, sc.spans)
		}
	}
	s.parts = append(s.parts, Part{Data: out, Spans: s.spans})
	s.rss, s.size, s.spans = nil, 0, 0
	s.rsOpen, s.ssOpen = false, false
}

func (rs *splitResource) bodySize() int {
	n := fieldsSize(rs.header)
	for i := range rs.scopes {
		l := rs.scopes[i].bodySize()
		n += protowire.SizeTag(rs.scopes[i].num) + protowire.SizeVarint(uint64(l)) + l
	}
	return n
}

func (sc *splitScope) bodySize() int { return fieldsSize(sc.header) + fieldsSize(sc.spans) }

func fieldsSize(fields [][]byte) int {
	n := 0
	for _, f := range fields {
		n += len(f)
	}
	return n
}

func appendFields(out []byte, fields [][]byte) []byte {
	for _, f := range fields {
		out = append(out, f...)
	}
	return out
}
