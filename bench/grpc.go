package bench

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // registers the "gzip" compressor for Config.Gzip
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/internal/grpcraw"
)

const (
	otlpExport = grpcraw.OTLPExport
	jaegerPost = grpcraw.JaegerPostSpans
)

type grpcStream struct {
	conn    *grpc.ClientConn
	method  string
	timeout time.Duration
	otlp    bool
	opts    []grpc.CallOption
	req     grpcraw.Message // pre-serialized: a request costs the generator no marshalling
	owner   bool            // the first stream of a connection closes it
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
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpcraw.Codec{}), grpc.MaxCallRecvMsgSize(64<<20)),
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
	g.req.Data = p.wire
	var reply grpcraw.Message
	err := g.conn.Invoke(ctx, g.method, &g.req, &reply, g.opts...)
	if reply.Buf != nil {
		defer reply.Buf.Free()
	}
	if err != nil {
		if s, ok := status.FromError(err); ok {
			return "grpc " + s.Code().String(), 0, err
		}
		return "", 0, err
	}
	if !g.otlp || len(reply.Data) == 0 {
		return "", 0, nil
	}
	rejected, _ := rejectedProto(reply.Data)
	return "", rejected, nil
}

func (g *grpcStream) close() {
	if g.owner {
		g.conn.Close()
	}
}
