package exporter

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
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
// three levels above the spans are walked (walkSpans): spans are copied as
// they are.
//
// A span that does not fit in maxBytes even alone with its resource and
// scope is put in a part of its own, larger than maxBytes: whether to drop
// it or try is the caller's choice. Unknown fields of the request itself
// are left out. The request is not validated beyond its framing: the
// receiver did that.
func SplitRequest(req []byte, maxBytes int) ([]Part, error) {
	var w wireSpans
	if err := walkSpans(req, len(req)/128, &w); err != nil {
		return nil, fmt.Errorf("split request: %w", err)
	}
	// Greedy, in order. A part's size is counted with every container's
	// length prefix at its largest (the varint size of maxBytes), so a
	// part never exceeds maxBytes once its real lengths are written.
	lenSize := protowire.SizeVarint(uint64(max(maxBytes, 0)))
	cost := func(i, start int) int { // of span i in the part that starts at span start
		s := w.spans[i]
		n := 1 + protowire.SizeBytes(len(s.data))
		if i == start || s.scope != w.spans[i-1].scope {
			sc := &w.scopes[s.scope]
			n += protowire.SizeTag(sc.num) + lenSize + len(sc.header)
			if i == start || sc.resource != w.scopes[w.spans[i-1].scope].resource {
				n += 1 + lenSize + len(w.resources[sc.resource])
			}
		}
		return n
	}
	picked := make([]int, len(w.spans))
	for i := range picked {
		picked[i] = i
	}
	var parts []Part
	start, size := 0, 0
	for i := range w.spans {
		c := cost(i, start)
		if i > start && size+c > maxBytes {
			parts = append(parts, w.part(picked[start:i]))
			start = i
			c = cost(i, start)
			size = 0
		}
		size += c
	}
	if start < len(w.spans) {
		parts = append(parts, w.part(picked[start:]))
	}
	return parts, nil
}

func (w *wireSpans) part(picked []int) Part {
	return Part{Data: w.appendRequest(make([]byte, 0, w.requestSize(picked)), picked), Spans: len(picked)}
}
