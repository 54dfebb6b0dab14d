// Package grpcraw is how traceport's gRPC server and clients carry messages
// as their wire bytes, and the names of the methods they serve and call:
// OTLP requests are validated and forwarded without ever being decoded into
// structs, so one codec serves the receiver and the exporter alike.
package grpcraw

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/internal/bufpool"
)

// The unary methods traceport serves (receiver) and calls (exporter).
const (
	OTLPExport      = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	JaegerPostSpans = "/jaeger.api_v2.CollectorService/PostSpans"
)

// Message is a gRPC message kept as its wire bytes.
type Message struct {
	// Parts, when set, is what Marshal writes, in order and uncopied: a
	// batch's pushes. gRPC may still be writing them after a cancelled
	// call returned, so they must stay valid (plain slices, or references
	// gRPC frees).
	Parts mem.BufferSlice
	// Data is the message: what Marshal writes when Parts is nil, and
	// what Unmarshal read.
	Data []byte
	// Buf holds Data after Unmarshal: a buffer of bufpool.Shared, since
	// gRPC reuses its own buffers once Unmarshal returns (a fresh slice per
	// request cost a zeroed large allocation). Whoever keeps Data frees it.
	Buf mem.Buffer
}

// Codec passes *Message through untouched and marshals everything else
// (Jaeger's gogo-generated types, google.rpc types) with the message's own
// methods: grpc's default codec only knows protobuf-go v2 messages. It is
// named "proto" so the content type stays application/grpc+proto.
type Codec struct{}

func (Codec) Name() string { return "proto" }

func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *Message:
		if m.Parts != nil {
			return m.Parts, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(m.Data)}, nil
	case interface{ Marshal() ([]byte, error) }: // gogo-generated (Jaeger)
		b, err := m.Marshal()
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	case proto.Message:
		b, err := proto.Marshal(m)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
}

func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *Message:
		p := bufpool.Shared.Get(data.Len())
		data.CopyTo(*p)
		m.Data, m.Buf = *p, mem.NewBuffer(p, bufpool.Shared)
		return nil
	case interface{ Unmarshal([]byte) error }:
		return m.Unmarshal(data.Materialize())
	case proto.Message:
		return proto.Unmarshal(data.Materialize(), m)
	}
	return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
}
