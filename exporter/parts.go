package exporter

import (
	"context"
	"errors"

	"google.golang.org/grpc/mem"

	"github.com/traceport/traceport/internal/bufpool"
)

// part is one OTLP export request of a batch: whole pushes sent as they
// are (batching never decodes), or one request cut from a push larger
// than ExportMaxBytes.
type part struct {
	items []item // whole pushes, or nil
	data  []byte // a request cut by SplitRequest
	spans int
	size  int

	payload mem.Buffer // the request in one buffer, made by joined()
	wire    mem.Buffer // otlp-http: payload compressed, kept for retries
}

// plan cuts the batch into parts of at most ExportMaxBytes: consecutive
// pushes that fit go together, a push that does not is split. A single
// span that cannot fit is dropped here as too_large, and a push that
// cannot be split (it passed the receiver's checks, so this is a bug) is
// counted as non_retryable.
func (e *Exporter) plan(b *batch) {
	b.planned = true
	limit := e.cfg.ExportMaxBytes
	var group *part
	for _, it := range b.items {
		if len(it.data) <= limit {
			if group == nil || group.size+len(it.data) > limit {
				group = &part{}
				b.pending = append(b.pending, group)
			}
			group.items = append(group.items, it)
			group.spans += it.spans
			group.size += len(it.data)
			continue
		}
		group = nil
		cut, err := SplitRequest(it.data, limit)
		if err != nil {
			b.rejected += it.spans
			e.log.Error("spans dropped: request cannot be split", "spans", it.spans, "reason", ReasonNonRetryable, "err", err)
			continue
		}
		n := 0
		for _, c := range cut {
			n += c.Spans
			if c.Spans == 1 && len(c.Data) > limit {
				b.tooLarge++
				e.log.Warn("span dropped: larger than export-max-bytes", "bytes", len(c.Data), "export_max_bytes", limit, "reason", ReasonTooLarge)
				continue
			}
			b.pending = append(b.pending, &part{data: c.Data, spans: c.Spans, size: len(c.Data)})
		}
		if n != it.spans { // the receiver counted otherwise: keep the accounts whole
			b.rejected += max(it.spans-n, 0)
		}
	}
}

// halve cuts a part the destination refused as too large in two (about
// half the bytes each), or nil if it holds a single span.
func (p *part) halve() ([]*part, error) {
	if p.spans < 2 {
		return nil, nil
	}
	if len(p.items) > 1 {
		k, size := 1, len(p.items[0].data)
		for k < len(p.items)-1 && size+len(p.items[k].data)/2 <= p.size/2 {
			size += len(p.items[k].data)
			k++
		}
		return []*part{itemsPart(p.items[:k]), itemsPart(p.items[k:])}, nil
	}
	data := p.data
	if data == nil {
		data = p.items[0].data
	}
	cut, err := SplitRequest(data, (len(data)+1)/2)
	if err != nil {
		return nil, err
	}
	out := make([]*part, len(cut))
	for i, c := range cut {
		out[i] = &part{data: c.Data, spans: c.Spans, size: len(c.Data)}
	}
	return out, nil
}

func itemsPart(items []item) *part {
	p := &part{items: items}
	for _, it := range items {
		p.spans += it.spans
		p.size += len(it.data)
	}
	return p
}

// buffers returns the part as gRPC writes it, without copying. gRPC frees
// the references it is given once it has written the bytes, which may be
// after the call returned.
func (p *part) buffers() mem.BufferSlice {
	if p.items == nil {
		return mem.BufferSlice{mem.SliceBuffer(p.data)}
	}
	out := make(mem.BufferSlice, len(p.items))
	for i, it := range p.items {
		if it.buf != nil {
			it.buf.Ref()
			out[i] = it.buf
		} else {
			out[i] = mem.SliceBuffer(it.data)
		}
	}
	return out
}

// joined returns the part as one request: concatenated serialized
// ExportTraceServiceRequests are a valid merged one (field 1 is repeated).
func (p *part) joined() mem.Buffer {
	switch {
	case p.payload != nil:
	case p.items == nil:
		p.payload = mem.SliceBuffer(p.data)
	case len(p.items) == 1:
		p.payload = mem.SliceBuffer(p.items[0].data)
	default:
		buf := bufpool.Shared.Get(p.size)
		off := 0
		for _, it := range p.items {
			off += copy((*buf)[off:], it.data)
		}
		p.payload = mem.NewBuffer(buf, bufpool.Shared)
	}
	return p.payload
}

func (p *part) free() {
	if p.payload != nil {
		p.payload.Free()
		p.payload = nil
	}
	if p.wire != nil {
		p.wire.Free()
		p.wire = nil
	}
}

// sendParts sends the batch's pending parts in order with post, which
// returns how many spans of the part the destination rejected (partial
// success). A part refused as too large is cut in halves, sent at once;
// a single span refused so is dropped as too_large. A retryable failure
// ends the attempt: the retry resends from the part that failed. A
// permanent one costs that part only.
func (e *Exporter) sendParts(ctx context.Context, b *batch, post func(context.Context, *part) (rejected int64, err error)) error {
	if !b.planned {
		e.plan(b)
	}
	var permanent error
	for len(b.pending) > 0 {
		p := b.pending[0]
		callCtx, cancel := e.callContext(ctx)
		rejected, err := post(callCtx, p)
		cancel()
		if err != nil {
			ae := e.failed(err)
			switch {
			case ae.retryable:
				return ae
			case ae.tooLarge && p.spans > 1:
				halves, herr := p.halve()
				if herr == nil {
					e.log.Info("destination refused an export as too large: sending it in parts", "bytes", p.size, "parts", len(halves), "err", err)
					p.free()
					b.pending = append(halves, b.pending[1:]...)
					continue
				}
				b.rejected += p.spans
				permanent = errors.Join(permanent, ae, herr)
			case ae.tooLarge:
				b.tooLarge += p.spans
				e.log.Warn("span dropped: the destination refuses it as too large", "bytes", p.size, "reason", ReasonTooLarge, "err", err)
			default:
				b.rejected += p.spans
				permanent = errors.Join(permanent, ae)
			}
		} else {
			r := int(min(max(rejected, 0), int64(p.spans)))
			b.rejected += r
			b.sent += p.spans - r
		}
		p.free()
		b.pending = b.pending[1:]
	}
	if permanent != nil {
		var ae *attemptError
		errors.As(permanent, &ae)
		return &attemptError{code: ae.code, err: permanent}
	}
	return nil
}
