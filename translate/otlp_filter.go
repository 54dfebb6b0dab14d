package translate

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// FilterOTLP drops the spans that make ScanOTLP refuse a request (an id of
// the wrong length, a malformed attribute inside one span) and keeps the
// rest, re-encoding only the enclosing messages: one bad span costs the
// client that span (reported as OTLP partial success), not the whole batch,
// where the Collector would refuse all of it. A request whose damage is
// outside any span (a broken resource, truncated framing) is refused whole.
//
// It is the slow path: the receiver calls it only after ScanOTLP failed.
func FilterOTLP(data []byte) ([]byte, Rejected, error) {
	var rej Rejected
	out := make([]byte, 0, len(data))
	rsIdx := 0
	err := EachField(data, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num != 1 || typ != protowire.BytesType {
			out = append(out, field...)
			return nil
		}
		rs, err := otlpFilterResourceSpans(value, rsIdx, &rej)
		rsIdx++
		if err != nil {
			return err
		}
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, rs)
		return nil
	})
	if err != nil {
		return nil, Rejected{}, err
	}
	if _, err := ScanOTLP(out, nil); err != nil {
		return nil, Rejected{}, err // damage outside the spans it can drop
	}
	return out, rej, nil
}

func otlpFilterResourceSpans(b []byte, rsIdx int, rej *Rejected) ([]byte, error) {
	out := make([]byte, 0, len(b))
	ssIdx, legacyIdx := 0, 0
	err := EachField(b, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		// scope_spans, or the deprecated instrumentation_library_spans
		// (field 1000, the same layout) that ScanOTLP checks too.
		if num != 2 && num != 1000 || typ != protowire.BytesType {
			out = append(out, field...)
			return nil
		}
		group, idx := "scope_spans", &ssIdx
		if num == 1000 {
			group, idx = "instrumentation_library_spans", &legacyIdx
		}
		ss := make([]byte, 0, len(value))
		spanIdx := 0
		err := EachField(value, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
			if num == 2 && typ == protowire.BytesType {
				var span OTLPSpan
				if serr := otlpScanSpan(value, 0, &span); serr != nil {
					rej.Add(fmt.Sprintf("resource_spans[%d].%s[%d].spans[%d]: %s", rsIdx, group, *idx, spanIdx, serr.msgPath()))
					spanIdx++
					return nil
				}
				spanIdx++
			}
			ss = append(ss, field...)
			return nil
		})
		*idx++
		if err != nil {
			return err
		}
		out = protowire.AppendTag(out, num, protowire.BytesType)
		out = protowire.AppendBytes(out, ss)
		return nil
	})
	return out, err
}

// EachField calls fn with every field of a serialized protobuf message: its
// number, wire type, the whole encoded field and, for length-delimited
// fields, the value. It is the walker for code that cuts or copies OTLP
// messages field by field (FilterOTLP, the exporter's splitter and Kafka
// grouping) without decoding them; it reads fields with NextField.
func EachField(b []byte, fn func(num protowire.Number, typ protowire.Type, field, value []byte) error) error {
	for pos := 0; pos < len(b); {
		f, n := NextField(b[pos:])
		if n < 0 || f.Num < protowire.MinValidNumber || f.Num > protowire.MaxValidNumber {
			// Groups, and every error: protowire's general rules.
			num, typ, tn := protowire.ConsumeTag(b[pos:])
			if tn < 0 {
				return fmt.Errorf("otlp: bad field tag at offset %d: %w", pos, protowire.ParseError(tn))
			}
			m := protowire.ConsumeFieldValue(num, typ, b[pos+tn:])
			if m < 0 {
				return fmt.Errorf("otlp: bad field %d at offset %d: %w", num, pos, protowire.ParseError(m))
			}
			f, n = WireField{Num: num, Type: typ}, tn+m
		}
		if err := fn(f.Num, f.Type, b[pos:pos+n], f.Value); err != nil {
			return err
		}
		pos += n
	}
	return nil
}

// msgPath is the error without the "otlp: " prefix and offset, for a
// message that already names the span.
func (e *otlpError) msgPath() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}
