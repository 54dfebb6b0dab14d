package exporter

import (
	"context"
	"errors"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/internal/grpcraw"
	"github.com/traceport/traceport/translate"
)

// sendJaeger converts the batch to Jaeger's model once, then posts one
// PostSpans per process (resource), each at most ExportMaxBytes. Progress
// is kept across attempts, so a retry resends only the batches not yet
// accepted. A batch refused as too large is halved and sent again; a
// single span refused so is dropped as too_large.
func (e *Exporter) sendJaeger(ctx context.Context, b *batch) error {
	if !b.converted {
		b.converted = true
		var batches []*model.Batch
		for _, it := range b.items {
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(it.data)
			if err != nil {
				b.rejected += it.spans
				e.log.Error("spans dropped: request cannot be decoded", "spans", it.spans, "reason", ReasonNonRetryable, "err", err)
				continue
			}
			batches = append(batches, translate.JaegerBatches(td)...)
		}
		b.jaeger = splitLarge(mergeByProcess(batches), e.cfg.ExportMaxBytes)
		n := 0
		for _, jb := range b.jaeger {
			n += len(jb.Spans)
		}
		b.rejected += max(b.spans-b.rejected-n, 0) // left out by the translation
	}
	var permanent error
	for len(b.jaeger) > 0 {
		jb := b.jaeger[0]
		var resp api_v2.PostSpansResponse
		callCtx, cancel := e.callContext(ctx)
		err := e.conn.Invoke(outgoing(callCtx, e.md), grpcraw.JaegerPostSpans, &api_v2.PostSpansRequest{Batch: *jb}, &resp)
		cancel()
		if err != nil {
			ae := e.failed(classifyGRPC(err))
			switch {
			case ae.retryable:
				return ae
			case ae.tooLarge && len(jb.Spans) > 1:
				half := len(jb.Spans) / 2
				e.log.Info("destination refused an export as too large: sending it in halves", "spans", len(jb.Spans), "err", err)
				b.jaeger = append([]*model.Batch{
					{Spans: jb.Spans[:half:half], Process: jb.Process},
					{Spans: jb.Spans[half:], Process: jb.Process},
				}, b.jaeger[1:]...)
				continue
			case ae.tooLarge:
				b.tooLarge += len(jb.Spans)
				e.log.Warn("span dropped: the destination refuses it as too large", "bytes", jb.Size(), "reason", ReasonTooLarge, "err", err)
			default:
				b.rejected += len(jb.Spans)
				permanent = errors.Join(permanent, ae)
			}
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
// and Jaeger's model is larger than OTLP for the same spans. A single span
// over maxBytes is not dropped here: Jaeger may take it (its limit is its
// own); if it does not, sendJaeger drops it as too_large.
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
