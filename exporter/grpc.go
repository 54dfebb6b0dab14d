package exporter

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/traceport/traceport/internal/bufpool"
)

const otlpExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// rawMessage carries bytes that already are a serialized protobuf message,
// so the gRPC path never decodes or re-encodes.
type rawMessage struct {
	parts mem.BufferSlice // request: the batch's pushes, in order
	b     []byte          // response: a copy
}

// gogoMessage is what jaeger-idl's gogo-generated types implement.
type gogoMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// codec passes rawMessage through and (un)marshals Jaeger's gogo types with
// their own methods: grpc's default codec only knows protobuf-go v2 messages.
// It keeps the name "proto" so the content-type stays application/grpc+proto.
type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *rawMessage:
		// The parts are plain slices, not pooled: gRPC may still be
		// writing them after Invoke returns on a cancelled call.
		return m.parts, nil
	case gogoMessage:
		b, err := m.Marshal()
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return nil, fmt.Errorf("codec: cannot marshal %T", v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *rawMessage:
		m.b = data.Materialize()
		return nil
	case gogoMessage:
		return m.Unmarshal(data.Materialize())
	}
	return fmt.Errorf("codec: cannot unmarshal into %T", v)
}

// dial prepares a lazy client connection: nothing is connected until the
// first export, so Jaeger being down at start is fine.
func dial(cfg *Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	callOpts := []grpc.CallOption{grpc.ForceCodecV2(codec{})}
	if cfg.Compression != "none" {
		callOpts = append(callOpts, grpc.UseCompressor(cfg.Compression))
	}
	return grpc.NewClient(cfg.Endpoint,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(callOpts...),
		experimental.WithBufferPool(bufpool.Shared),
		// Batches are megabytes: written 32 KiB at a time (the default)
		// they cost a syscall each, ~9% of traceport's CPU on OTLP/gRPC.
		grpc.WithWriteBufferSize(1<<20),
		// Reconnect on the export retry schedule: grpc's default backoff
		// grows to 120s, which would keep spans queued for up to two
		// minutes after Jaeger is back.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  cfg.RetryInitialInterval,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   cfg.RetryMaxInterval,
			},
			MinConnectTimeout: cfg.Timeout,
		}),
	)
}

// outgoing attaches the configured headers as gRPC metadata.
func outgoing(ctx context.Context, md metadata.MD) context.Context {
	if len(md) == 0 {
		return ctx
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// sendOTLPGRPC makes one Export call per part with the bytes as they are.
func (e *Exporter) sendOTLPGRPC(ctx context.Context, b *batch) error {
	return e.sendParts(ctx, b, func(ctx context.Context, p *part) (int64, error) {
		var resp rawMessage
		if err := e.conn.Invoke(outgoing(ctx, e.md), otlpExportMethod, &rawMessage{parts: p.buffers()}, &resp); err != nil {
			return 0, classifyGRPC(err)
		}
		return rejectedSpans(resp.b), nil
	})
}

// rejectedSpans reads partial_success.rejected_spans from a serialized
// ExportTraceServiceResponse (field 1, its field 1); 0 when absent or
// malformed, as the spec says a client must then assume full success.
func rejectedSpans(resp []byte) int64 {
	var rejected int64
	for len(resp) > 0 {
		num, typ, n := protowire.ConsumeTag(resp)
		if n < 0 {
			return rejected
		}
		resp = resp[n:]
		if num == 1 && typ == protowire.BytesType {
			ps, n := protowire.ConsumeBytes(resp)
			if n < 0 {
				return rejected
			}
			resp = resp[n:]
			for len(ps) > 0 {
				num, typ, n := protowire.ConsumeTag(ps)
				if n < 0 {
					return rejected
				}
				ps = ps[n:]
				if num == 1 && typ == protowire.VarintType {
					v, n := protowire.ConsumeVarint(ps)
					if n < 0 {
						return rejected
					}
					rejected = int64(v)
					ps = ps[n:]
					continue
				}
				n = protowire.ConsumeFieldValue(num, typ, ps)
				if n < 0 {
					return rejected
				}
				ps = ps[n:]
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, resp)
		if n < 0 {
			return rejected
		}
		resp = resp[n:]
	}
	return rejected
}
