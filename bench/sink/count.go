package sink

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/traceport/traceport/translate"
)

// CountSpans returns the number of spans in a serialized OTLP
// ExportTraceServiceRequest by walking its wire format down to the span
// fields: no message is decoded, nothing is allocated. It fails on input
// that is not well-formed protobuf or has a wrong wire type on the path.
func CountSpans(req []byte) (int, error) {
	n := 0
	err := each(req, 1, func(rs []byte) error { // resource_spans
		return each(rs, 2, func(ss []byte) error { // scope_spans
			return each(ss, 2, func([]byte) error { // spans
				n++
				return nil
			})
		})
	})
	return n, err
}

var errWireType = errors.New("wrong wire type")

// each calls fn with the contents of every length-delimited field want of
// msg, skipping all other fields.
func each(msg []byte, want protowire.Number, fn func([]byte) error) error {
	return translate.EachField(msg, func(num protowire.Number, typ protowire.Type, _, value []byte) error {
		if num != want {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("otlp: field %d: %w", num, errWireType)
		}
		return fn(value)
	})
}
