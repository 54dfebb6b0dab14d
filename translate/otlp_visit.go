package translate

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// OTLPVisitor is shown what ScanOTLPVisit walks over: each ResourceSpans
// (before its spans), then each of its spans. Slices point into the
// request and are valid only as long as the request's bytes are.
type OTLPVisitor interface {
	// OTLPResource: the resource's service.name (empty: none) and its
	// namespace (k8s.namespace.name, else service.namespace; empty: none).
	OTLPResource(service, namespace []byte)
	// OTLPSpan: one span (by value: a pointer would make every walk allocate).
	OTLPSpan(s OTLPSpan)
}

// OTLPSpan is what the walk located in one Span while validating it.
type OTLPSpan struct {
	Raw          []byte // the serialized Span
	TraceID      []byte // 16 bytes, or empty
	SpanID       []byte // 8 bytes, or empty
	ParentSpanID []byte // 8 bytes, or empty: a root
	Kind         uint64 // SpanKind (2 SERVER, 3 CLIENT, ...)
	// Attributes is the part of Raw from the first attributes field to
	// the end of the last (encoders write them together): a visitor that
	// reads attributes walks only this.
	Attributes []byte
}

// SpanKind values a visitor tells apart.
const (
	SpanKindServer = 2
	SpanKindClient = 3
)

// WireField is one protobuf field as NextField reads it.
type WireField struct {
	Num    protowire.Number
	Type   protowire.Type
	Value  []byte // the payload of a length-delimited field
	Varint uint64 // the value of a varint field
}

// NextField reads the field at the start of b and returns it and its
// encoded length; n < 0 on malformed input. It is the one field reader for
// code that picks fields out of OTLP messages without validating them (the
// request was validated by ScanOTLP): hand-rolled for the one-byte tags and
// lengths that are nearly all of OTLP, where protowire's general path costs
// about twice as much.
func NextField(b []byte) (f WireField, n int) {
	if len(b) == 0 {
		return f, -1
	}
	tag := uint64(b[0])
	n = 1
	if tag >= 0x80 {
		var m int
		if tag, m = protowire.ConsumeVarint(b); m < 0 {
			return f, -1
		}
		n = m
	}
	f.Num, f.Type = protowire.Number(tag>>3), protowire.Type(tag&7)
	switch f.Type {
	case protowire.VarintType, protowire.BytesType:
		var x uint64
		if n < len(b) && b[n] < 0x80 {
			x = uint64(b[n])
			n++
		} else {
			v, m := protowire.ConsumeVarint(b[n:])
			if m < 0 {
				return f, -1
			}
			x, n = v, n+m
		}
		if f.Type == protowire.VarintType {
			f.Varint = x
			return f, n
		}
		if x > uint64(len(b)-n) {
			return f, -1
		}
		f.Value = b[n : n+int(x)]
		return f, n + int(x)
	case protowire.Fixed64Type:
		n += 8
	case protowire.Fixed32Type:
		n += 4
	default:
		return f, -1
	}
	if n > len(b) {
		return f, -1
	}
	return f, n
}

// VisitOTLP shows v the resources and spans of a request the caller
// encoded itself (Zipkin and Jaeger converted to OTLP), without ScanOTLP's
// validation, in the same order and with the same fields ScanOTLPVisit
// shows. It stops at the first malformed field with an error.
func VisitOTLP(data []byte, v OTLPVisitor) error {
	for len(data) > 0 {
		f, n := NextField(data)
		if n < 0 {
			return errVisit
		}
		data = data[n:]
		if f.Num == 1 && f.Type == protowire.BytesType {
			if err := visitResourceSpans(f.Value, v); err != nil {
				return err
			}
		}
	}
	return nil
}

var errVisit = errors.New("otlp: malformed request")

func visitResourceSpans(b []byte, v OTLPVisitor) error {
	var service, k8sNS, serviceNS []byte
	serviceFound := false
	for rest := b; len(rest) > 0; {
		f, n := NextField(rest)
		if n < 0 {
			return errVisit
		}
		rest = rest[n:]
		if f.Num != 1 || f.Type != protowire.BytesType {
			continue
		}
		for attrs := f.Value; len(attrs) > 0; {
			a, m := NextField(attrs)
			if m < 0 {
				return errVisit
			}
			attrs = attrs[m:]
			if a.Num != 1 || a.Type != protowire.BytesType {
				continue
			}
			key, str := KeyValueString(a.Value)
			switch string(key) {
			case otlpServiceNameKey:
				if !serviceFound {
					serviceFound, service = true, str
				}
			case "k8s.namespace.name":
				k8sNS = str
			case "service.namespace":
				serviceNS = str
			}
		}
	}
	if len(k8sNS) == 0 {
		k8sNS = serviceNS
	}
	v.OTLPResource(service, k8sNS)
	for len(b) > 0 {
		f, n := NextField(b)
		if n < 0 {
			return errVisit
		}
		b = b[n:]
		if f.Num != 2 || f.Type != protowire.BytesType {
			continue
		}
		for ss := f.Value; len(ss) > 0; {
			g, m := NextField(ss)
			if m < 0 {
				return errVisit
			}
			ss = ss[m:]
			if g.Num == 2 && g.Type == protowire.BytesType {
				if err := visitSpan(g.Value, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// visitSpan reads a span's fields in one loop, with no call for the
// one-byte tags and lengths encoders write (a NextField call per field made
// Observe of an Envoy request about 1.6 times as slow).
func visitSpan(b []byte, v OTLPVisitor) error {
	s := OTLPSpan{Raw: b}
	attrLo := -1
	for i := 0; i < len(b); {
		var f WireField
		n := 0
		if t := b[i]; t < 0x80 && i+1 < len(b) && b[i+1] < 0x80 && (t&7 == 0 || t&7 == 2 && int(b[i+1]) <= len(b)-i-2) {
			f.Num, f.Type = protowire.Number(t>>3), protowire.Type(t&7)
			if f.Type == protowire.BytesType {
				f.Value, n = b[i+2:i+2+int(b[i+1])], 2+int(b[i+1])
			} else {
				f.Varint, n = uint64(b[i+1]), 2
			}
		} else if f, n = NextField(b[i:]); n < 0 {
			return errVisit
		}
		switch {
		case f.Num == 9 && f.Type == protowire.BytesType:
			if attrLo < 0 {
				attrLo = i
			}
			s.Attributes = b[attrLo : i+n]
		case f.Num == 1 && f.Type == protowire.BytesType:
			s.TraceID = f.Value
		case f.Num == 2 && f.Type == protowire.BytesType:
			s.SpanID = f.Value
		case f.Num == 4 && f.Type == protowire.BytesType:
			s.ParentSpanID = f.Value
		case f.Num == 6 && f.Type == protowire.VarintType:
			s.Kind = f.Varint
		}
		i += n
	}
	v.OTLPSpan(s)
	return nil
}

// KeyValueString returns a KeyValue's key and, if its value is a string,
// the string, as ScanOTLP reads them: the last key; the value's oneof
// member is the last one set, across repeated value fields.
func KeyValueString(kv []byte) (key, str []byte) {
	for len(kv) > 0 {
		f, n := NextField(kv)
		if n < 0 {
			return nil, nil
		}
		kv = kv[n:]
		if f.Type != protowire.BytesType {
			continue
		}
		switch f.Num {
		case 1:
			key = f.Value
		case 2:
			if kind, s := anyValueString(f.Value); kind != 0 {
				str = s
				if kind != 1 {
					str = nil
				}
			}
		}
	}
	return key, str
}

// anyValueString returns the last oneof member set in an AnyValue (0:
// none) and its last string_value.
func anyValueString(val []byte) (kind protowire.Number, str []byte) {
	for len(val) > 0 {
		g, m := NextField(val)
		if m < 0 {
			break
		}
		val = val[m:]
		if g.Num >= 1 && g.Num <= 8 {
			kind = g.Num
		}
		if g.Num == 1 && g.Type == protowire.BytesType {
			str = g.Value
		}
	}
	return kind, str
}
