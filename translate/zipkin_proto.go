package translate

import (
	"errors"
	"net/netip"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// ZipkinProto decodes a Zipkin proto3 body (zipkin.proto3.ListOfSpans, as
// POSTed to /api/v2/spans with Content-Type application/x-protobuf).
// Errors, rejections and the mapping are as for ZipkinV2JSON. Ids are bytes:
// a trace id of 8 bytes is the low half of the 16; span and parent ids are
// 8 bytes, big-endian unless opts.ProtoIDsLittleEndian (Envoy's HTTP_PROTO).
// It walks the wire format straight into pdata rather than through
// generated structs, for the same reason as the JSON decoders.
func ZipkinProto(body []byte, opts ZipkinOptions) (ptrace.Traces, Rejected, error) {
	return zipkinTraces(body, opts, (*zDecoder).parseProto)
}

// ZipkinProtoToOTLP is ZipkinProto writing a serialized OTLP request; see
// ZipkinV2JSONToOTLP.
func ZipkinProtoToOTLP(body []byte, opts ZipkinOptions, dst []byte, counts []ServiceCount) ([]byte, []ServiceCount, Rejected, error) {
	return zipkinOTLP(body, opts, dst, counts, (*zDecoder).parseProto)
}

func (d *zDecoder) parseProto(body []byte) error {
	for i, b := 0, body; len(b) > 0; {
		at := len(body) - len(b)
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protoErr(-1, at, protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protoErr(i, at, protowire.ParseError(n))
			}
			if err := d.protoSpan(v, i); err != nil {
				return protoErr(i, at, err)
			}
			i++
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protoErr(-1, at, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

func protoErr(span, at int, err error) error {
	return bodyErr("zipkin proto", span, err.Error(), at)
}

var errWireType = errors.New("wrong wire type")

// field reads one field of a message; it returns the raw value for bytes
// fields and the number for varint and fixed64 ones.
func protoField(b []byte) (num protowire.Number, typ protowire.Type, v []byte, x uint64, n int, err error) {
	num, typ, n = protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, 0, 0, protowire.ParseError(n)
	}
	m := 0
	switch typ {
	case protowire.BytesType:
		v, m = protowire.ConsumeBytes(b[n:])
	case protowire.VarintType:
		x, m = protowire.ConsumeVarint(b[n:])
	case protowire.Fixed64Type:
		x, m = protowire.ConsumeFixed64(b[n:])
	default:
		m = protowire.ConsumeFieldValue(num, typ, b[n:])
	}
	if m < 0 {
		return 0, 0, nil, 0, 0, protowire.ParseError(m)
	}
	return num, typ, v, x, n + m, nil
}

// protoSpan reads one zipkin2 proto Span into the decoder: one switch over
// the fields as they come, in one piece like appendSpan (per-span hot path).
func (d *zDecoder) protoSpan(b []byte, i int) error {
	var st spanState
	d.beginSpan(&st, "zipkin proto", i)
	z := &st.z
	for len(b) > 0 {
		num, typ, v, x, n, err := protoField(b)
		if err != nil {
			return err
		}
		b = b[n:]
		want := protowire.BytesType
		switch num {
		case 4, 7, 12, 13:
			want = protowire.VarintType
		case 6:
			want = protowire.Fixed64Type
		}
		if num >= 1 && num <= 13 && typ != want {
			return errors.New("field " + strconv.Itoa(int(num)) + ": " + errWireType.Error())
		}
		switch num {
		case 1:
			switch len(v) {
			case 16:
				copy(z.traceID[:], v)
				st.haveTrace = true
			case 8:
				z.traceID = [16]byte{}
				copy(z.traceID[8:], v)
				st.haveTrace = true
			case 0:
			default:
				st.reject(fieldProblem("trace_id", strconv.Itoa(len(v))+" bytes, want 8 or 16"))
			}
		case 2, 3:
			name, dst := "parent_id", &z.parentID
			if num == 3 {
				name, dst = "id", &z.spanID
			}
			switch len(v) {
			case 8:
				copy(dst[:], v)
				if d.opts.ProtoIDsLittleEndian {
					for l, r := 0, 7; l < r; l, r = l+1, r-1 {
						dst[l], dst[r] = dst[r], dst[l]
					}
				}
				if num == 3 {
					st.haveID = true
				}
			case 0:
			default:
				st.reject(fieldProblem(name, strconv.Itoa(len(v))+" bytes, want 8"))
			}
		case 4:
			if x <= 4 {
				z.kind = [5]ptrace.SpanKind{ptrace.SpanKindUnspecified, ptrace.SpanKindClient,
					ptrace.SpanKindServer, ptrace.SpanKindProducer, ptrace.SpanKindConsumer}[x]
			}
		case 5:
			z.name = d.addStr(v)
		case 6:
			z.ts, z.hasTS = int64(x), x != 0
			if x > maxMicros {
				st.reject(fieldProblem("timestamp", "out of range"))
			}
		case 7:
			z.dur = int64(x)
			if x > maxMicros {
				st.reject(fieldProblem("duration", "out of range"))
			}
		case 8:
			z.hasLocal = true
			if err := d.protoEndpoint(v, &z.local); err != nil {
				return errors.New("local_endpoint: " + err.Error())
			}
		case 9:
			z.hasRemote = true
			if err := d.protoEndpoint(v, &z.remote); err != nil {
				return errors.New("remote_endpoint: " + err.Error())
			}
		case 10:
			if err := d.protoAnnotation(v, &st); err != nil {
				return errors.New("annotations: " + err.Error())
			}
		case 11:
			if err := d.protoTag(v, z); err != nil {
				return errors.New("tags: " + err.Error())
			}
		case 13:
			z.shared = x != 0
		}
	}
	d.finishSpan(&st)
	return nil
}

func (d *zDecoder) protoEndpoint(b []byte, ep *zEndpoint) error {
	var v4, v6 []byte
	for len(b) > 0 {
		num, typ, v, x, n, err := protoField(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num >= 1 && num <= 4 && (typ == protowire.VarintType) != (num == 4) {
			return errWireType
		}
		switch num {
		case 1:
			ep.service, ep.hasService = d.addStr(v), true
		case 2:
			v4 = v
		case 3:
			v6 = v
		case 4:
			if p := int32(x); p > 0 && p <= 65535 {
				ep.port = p
			}
		}
	}
	// An address of the wrong size is dropped, not the span: it is context
	// only. zipkin-go writes ipv4 as 16 bytes (IPv4-mapped), so unmap it.
	a, ok := netip.AddrFromSlice(v4)
	if ok {
		a = a.Unmap()
	} else {
		a, ok = netip.AddrFromSlice(v6)
	}
	if ok {
		off := len(d.arena)
		d.arena = a.AppendTo(d.arena)
		ep.addr = strRef{uint32(off), uint32(len(d.arena) - off)}
	}
	return nil
}

func (d *zDecoder) protoAnnotation(b []byte, st *spanState) error {
	var a zAnno
	for len(b) > 0 {
		num, typ, v, x, n, err := protoField(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			a.ts = int64(x)
			if x > maxMicros {
				st.reject(fieldProblem("annotations.timestamp", "out of range"))
			}
		case num == 2 && typ == protowire.BytesType:
			a.val = d.addStr(v)
		case num == 1 || num == 2:
			return errWireType
		}
	}
	d.annos = append(d.annos, a)
	return nil
}

func (d *zDecoder) protoTag(b []byte, z *zSpan) error {
	var kv zKV
	for len(b) > 0 {
		num, typ, v, _, n, err := protoField(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num == 1 || num == 2 {
			if typ != protowire.BytesType {
				return errWireType
			}
			if num == 1 {
				kv.key = d.addStr(v)
			} else {
				kv.val = d.addStr(v)
			}
		}
	}
	d.addTag(z, d.bytesOf(kv.key), kv.key, kv.val)
	return nil
}
