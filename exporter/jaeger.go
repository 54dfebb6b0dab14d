package exporter

import (
	"context"
	"errors"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/translate"
)

const postSpansMethod = "/jaeger.api_v2.CollectorService/PostSpans"

// sendJaeger converts the batch to Jaeger's model once, then posts one
// PostSpans per process (resource). Progress is kept across attempts, so a
// retry resends only the batches not yet accepted.
func (e *Exporter) sendJaeger(ctx context.Context, b *batch) error {
	if !b.converted {
		b.converted = true
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b.joined().ReadOnlyData())
		if err != nil {
			b.rejected = b.spans
			return &attemptError{code: "decode", err: err}
		}
		b.jaeger = splitLarge(mergeByProcess(translate.JaegerBatches(td)), e.cfg.BatchMaxBytes)
		n := 0
		for _, jb := range b.jaeger {
			n += len(jb.Spans)
		}
		b.rejected = max(b.spans-n, 0) // left out by the translation
	}
	var permanent error
	for len(b.jaeger) > 0 {
		jb := b.jaeger[0]
		var resp api_v2.PostSpansResponse
		err := e.conn.Invoke(outgoing(ctx, e.md), postSpansMethod, &api_v2.PostSpansRequest{Batch: *jb}, &resp)
		if err != nil {
			ae := classifyGRPC(err)
			if ae.retryable {
				return ae
			}
			b.rejected += len(jb.Spans)
			permanent = errors.Join(permanent, ae)
		} else {
			b.sent += len(jb.Spans)
		}
		b.jaeger = b.jaeger[1:]
	}
	if permanent != nil {
		var ae *attemptError
		errors.As(permanent, &ae)
		return &attemptError{code: ae.code, err: permanent}
	}
	return nil
}

// mergeByProcess joins batches of equal processes: a batch of pushes from
// one service holds the same resource many times, and each Jaeger batch
// costs a round trip.
func mergeByProcess(batches []*model.Batch) []*model.Batch {
	if len(batches) < 2 {
		return batches
	}
	seen := make(map[string]*model.Batch, 4)
	out := batches[:0]
	for _, jb := range batches {
		if jb.Process == nil {
			out = append(out, jb)
			continue
		}
		key, err := jb.Process.Marshal()
		if err != nil {
			out = append(out, jb)
			continue
		}
		if first, ok := seen[string(key)]; ok {
			first.Spans = append(first.Spans, jb.Spans...)
			continue
		}
		seen[string(key)] = jb
		out = append(out, jb)
	}
	return out
}

// splitLarge cuts batches larger than maxBytes (serialized) into even
// parts: Jaeger's collector refuses gRPC messages over 4 MiB by default,
// and Jaeger's model is larger than OTLP for the same spans.
func splitLarge(batches []*model.Batch, maxBytes int) []*model.Batch {
	var out []*model.Batch
	for i, jb := range batches {
		size := jb.Size()
		if size <= maxBytes || len(jb.Spans) < 2 {
			if out != nil {
				out = append(out, jb)
			}
			continue
		}
		if out == nil {
			out = append(make([]*model.Batch, 0, len(batches)+1), batches[:i]...)
		}
		parts := min(size/maxBytes+1, len(jb.Spans))
		per := (len(jb.Spans) + parts - 1) / parts
		for spans := jb.Spans; len(spans) > 0; {
			n := min(per, len(spans))
			out = append(out, &model.Batch{Spans: spans[:n:n], Process: jb.Process})
			spans = spans[n:]
		}
	}
	if out == nil {
		return batches
	}
	return out
}
