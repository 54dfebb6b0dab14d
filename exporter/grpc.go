package exporter

import (
	"context"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/traceport/traceport/internal/bufpool"
	"github.com/traceport/traceport/internal/grpcraw"
)

// dial prepares a lazy client connection: nothing is connected until the
// first export, so Jaeger being down at start is fine.
func dial(cfg *Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	callOpts := []grpc.CallOption{grpc.ForceCodecV2(grpcraw.Codec{})}
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
		var resp grpcraw.Message
		if err := e.conn.Invoke(outgoing(ctx, e.md), grpcraw.OTLPExport, &grpcraw.Message{Parts: p.buffers()}, &resp); err != nil {
			return 0, classifyGRPC(err)
		}
		if resp.Buf != nil {
			defer resp.Buf.Free()
		}
		return rejectedSpans(resp.Data), nil
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
