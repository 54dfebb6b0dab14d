package receiver

import (
	"time"

	"google.golang.org/grpc/mem"

	"github.com/traceport/traceport/translate"
)

// ingest is where every protocol's handler ends, after decoding: the spans
// are counted per source (traceport_received_spans_total), then handed to the
// sink. A span is counted as received here exactly once; from then on the
// sink accounts for it as exported, dropped, queued or in flight. data is a
// serialized OTLP ExportTraceServiceRequest that the sink now owns.
func (rc *Receiver) ingest(protocol, encoding, client string, data []byte, counts []translate.ServiceCount, retrying bool) error {
	return rc.ingestOwned(protocol, encoding, client, data, nil, counts, retrying)
}

// ingestOwned is ingest for data held in owned (a buffer of bufpool.Shared,
// or nil): owned goes to a BufferSink, or is left to the garbage collector
// with a sink that keeps plain slices.
func (rc *Receiver) ingestOwned(protocol, encoding, client string, data []byte, owned mem.Buffer, counts []translate.ServiceCount, retrying bool) error {
	spans := 0
	for _, c := range counts {
		spans += c.Spans
	}
	if spans == 0 {
		release(owned)
		return nil
	}
	if rc.cfg.Observer != nil {
		rc.cfg.Observer.Observe(protocol, data)
	}
	// Counted as received and in the sink's accounts in one step as far
	// as a scrape can tell (sources.books), but no wait of the sink's is
	// inside that step: it ends when the sink calls accounted.
	rc.sources.books.RLock()
	rc.sources.add(protocol, encoding, counts)
	var err error
	if bs, ok := rc.sink.(BufferSink); ok && owned != nil {
		err = bs.PushBuffer(owned, spans, retrying, rc.sources.accounted)
	} else {
		err = rc.sink.Push(data, spans, retrying, rc.sources.accounted)
	}
	rc.sources.noteClient(protocol, encoding, counts, client)
	if err != nil {
		// The sink has counted these spans as dropped; tell the client to back off.
		rsn := reasonQueueFull
		if rc.shuttingDown.Load() {
			rsn = reasonShuttingDown
		}
		return &refusal{reason: rsn, msg: "traceport cannot take these spans now: " + err.Error(), retryAfter: rc.retryAfter()}
	}
	return nil
}

// release frees a pooled request buffer that no sink took; nil is none.
func release(owned mem.Buffer) {
	if owned != nil {
		owned.Free()
	}
}

// admit is the door: it runs before a body is read, so a full queue costs a
// refused client nothing but a round trip.
func (rc *Receiver) admit(retrying bool) *refusal {
	if rc.shuttingDown.Load() {
		return refuse(reasonShuttingDown, "traceport is shutting down; send to another instance")
	}
	if rc.budget.Spent() {
		return overBudget()
	}
	if rc.memory.overLimit() { // the backstop: memory the budget does not see
		return &refusal{reason: reasonMemoryLimit, msg: "traceport is near its memory limit (--memory-limit); retry later", retryAfter: time.Second}
	}
	if ok, after := rc.sink.Admit(retrying); !ok {
		return &refusal{reason: reasonQueueFull, msg: "traceport's export queue is full; retry later", retryAfter: after}
	}
	return nil
}

func (rc *Receiver) retryAfter() (d time.Duration) {
	_, d = rc.sink.Admit(true)
	if d <= 0 {
		d = defaultRetryAfter
	}
	return d
}

// scanOTLP validates and counts an OTLP request. Spans that alone make it
// invalid are left out and reported (OTLP partial success) instead of
// refusing the whole request. The returned data aliases the input when
// nothing was left out.
func scanOTLP(data []byte) ([]byte, []translate.ServiceCount, translate.Rejected, error) {
	counts, err := translate.ScanOTLP(data, nil)
	if err == nil {
		return data, counts, translate.Rejected{}, nil
	}
	filtered, rejected, ferr := translate.FilterOTLP(data)
	if ferr != nil || rejected.Spans == 0 {
		return nil, nil, translate.Rejected{}, err
	}
	if counts, err = translate.ScanOTLP(filtered, nil); err != nil {
		return nil, nil, translate.Rejected{}, err
	}
	return filtered, counts, rejected, nil
}
