package bench

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // registers the "gzip" compressor for Config.Gzip
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/internal/grpcraw"
)

const (
	otlpExport = grpcraw.OTLPExport
	jaegerPost = grpcraw.JaegerPostSpans
)

// rawCodec passes pre-serialized messages through untouched, so a gRPC
// request costs the generator no marshalling. It is named "proto" so the
// content type is the ordinary application/grpc+proto.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = (*b)[:0]
	for _, buf := range data {
		*b = append(*b, buf.ReadOnlyData()...)
	}
	return nil
}

type grpcStream struct {
	conn    *grpc.ClientConn
	method  string
	timeout time.Duration
	otlp    bool
	opts    []grpc.CallOption
	reply   []byte
	owner   bool // the first stream of a connection closes it
}

func dialGRPC(ctx context.Context, cfg Config) ([]sender, error) {
	method := otlpExport
	if cfg.Protocol == JaegerGRPC {
		method = jaegerPost
	}
	var opts []grpc.CallOption
	if cfg.Gzip {
		opts = append(opts, grpc.UseCompressor("gzip"))
	}
	var senders []sender
	fail := func(err error) ([]sender, error) {
		for _, s := range senders {
			s.close()
		}
		return nil, err
	}
	for range cfg.Connections {
		// One ClientConn per connection: each has its own TCP connection.
		conn, err := grpc.NewClient(cfg.Target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallRecvMsgSize(64<<20)),
		)
		if err != nil {
			return fail(fmt.Errorf("grpc client %s: %w", cfg.Target, err))
		}
		if err := waitReady(ctx, conn, cfg.Timeout); err != nil {
			conn.Close()
			return fail(fmt.Errorf("connect %s: %w", cfg.Target, err))
		}
		for s := range cfg.Streams {
			senders = append(senders, &grpcStream{
				conn: conn, method: method, timeout: cfg.Timeout, otlp: cfg.Protocol == OTLPGRPC,
				opts: opts, owner: s == 0,
			})
		}
	}
	return senders, nil
}

func waitReady(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return fmt.Errorf("connection %s", s)
		}
		if !conn.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

func (g *grpcStream) send(ctx context.Context, p *payload) (string, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err := g.conn.Invoke(ctx, g.method, &p.wire, &g.reply, g.opts...)
	if err != nil {
		if s, ok := status.FromError(err); ok {
			return "grpc " + s.Code().String(), 0, err
		}
		return "", 0, err
	}
	if !g.otlp || len(g.reply) == 0 {
		return "", 0, nil
	}
	rejected, _ := rejectedProto(g.reply)
	return "", rejected, nil
}

func (g *grpcStream) close() {
	if g.owner {
		g.conn.Close()
	}
}
