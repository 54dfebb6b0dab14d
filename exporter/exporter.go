package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

// Errors Push returns; the spans are already counted as dropped.
var (
	ErrQueueFull    = errors.New("exporter queue full")
	ErrShuttingDown = errors.New("exporter shutting down")
)

// Reasons a span is dropped: the values of traceport_dropped_spans_total's
// reason label and the keys of Stats.Dropped.
const (
	ReasonQueueFull    = "queue_full"
	ReasonExportFailed = "export_failed"
	ReasonNonRetryable = "non_retryable"
	ReasonShutdown     = "shutdown"
	// ReasonTooLarge: a single span larger than ExportMaxBytes, or than
	// what the destination accepts.
	ReasonTooLarge = "too_large"
)

type reason int

const (
	dropQueueFull reason = iota
	dropExportFailed
	dropNonRetryable
	dropShutdown
	dropTooLarge
	numReasons
)

var reasonNames = [numReasons]string{ReasonQueueFull, ReasonExportFailed, ReasonNonRetryable, ReasonShutdown, ReasonTooLarge}

// Exporter queues pushed requests, batches them and forwards them to
// Jaeger. Every span pushed is, at every instant, in exactly one of:
// exported, dropped (by reason), queued, in flight.
type Exporter struct {
	cfg  Config
	name string // exporter label: the protocol, or "none" without Endpoint
	log  *slog.Logger
	send func(ctx context.Context, b *batch) error

	conn       *grpc.ClientConn // otlp-grpc, jaeger-grpc
	md         metadata.MD
	httpClient *http.Client // otlp-http
	url        string
	header     http.Header
	kafka      *kgo.Client // kafka

	// mu guards the queue and the span accounts together, and the metrics
	// collector reads them under it: a scrape sees each span in one state.
	mu       sync.Mutex
	q        memQueue
	wal      *wal  // the persistent queue's log, with QueueDir
	reserved int   // spans of pushes being written to the log, not yet queued
	replayed int64 // spans queued from the log at start
	pushed   int64
	exported int64
	inflight int64
	dropped  [numReasons]int64
	closing  bool
	started  bool

	retries atomic.Int64

	kick      chan struct{} // capacity 1: wakes one idle sender to look at the queue
	draining  chan struct{} // closed by Shutdown: flush now, retry no more
	runCtx    context.Context
	cancelRun context.CancelFunc // when Shutdown's deadline passes: abort attempts
	senders   sync.WaitGroup

	metrics *metrics

	// retryPlanned, if set (by tests, before Start), is told every wait the
	// retry loop plans: what to assert on instead of measured intervals.
	retryPlanned func(wait time.Duration)
}

// New checks cfg and prepares an Exporter; nothing connects until the first
// export, so Jaeger may be down at start. Metrics go on reg.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{
		cfg:      cfg,
		name:     cfg.Protocol,
		log:      log.With("component", "exporter"),
		kick:     make(chan struct{}, 1),
		draining: make(chan struct{}),
	}
	e.runCtx, e.cancelRun = context.WithCancel(context.Background())
	switch {
	case cfg.Kafka.Enabled():
		e.name = "kafka"
		e.send = e.sendKafka
		var err error
		if e.kafka, err = newKafkaClient(&e.cfg.Kafka, &e.cfg); err != nil {
			return nil, fmt.Errorf("kafka-brokers %q: %w", cfg.Kafka.Brokers, err)
		}
	case cfg.Endpoint == "":
		e.name = "none"
	default:
		var err error
		switch cfg.Protocol {
		case ProtocolOTLPGRPC:
			e.send = e.sendOTLPGRPC
			e.conn, err = dial(&e.cfg)
		case ProtocolJaegerGRPC:
			e.send = e.sendJaeger
			e.conn, err = dial(&e.cfg)
		case ProtocolOTLPHTTP:
			e.send = e.sendOTLPHTTP
			e.initHTTP()
		}
		if err != nil {
			return nil, fmt.Errorf("jaeger-endpoint %q: %w", cfg.Endpoint, err)
		}
		if len(cfg.Headers) > 0 {
			e.md = metadata.New(cfg.Headers)
		}
	}
	if cfg.QueueDir != "" && e.send != nil {
		w, recs, err := openWAL(cfg.QueueDir, cfg.QueueMaxBytes, cfg.QueueFsync, cfg.QueueFsyncInterval, e.log)
		if err != nil {
			e.cancelRun()
			if e.conn != nil {
				e.conn.Close()
			}
			if e.kafka != nil {
				e.kafka.Close()
			}
			return nil, err
		}
		e.wal = w
		now := time.Now()
		for _, r := range recs {
			e.q.push(item{data: r.data, spans: r.spans, at: now, ref: r.ref})
			e.replayed += int64(r.spans)
		}
		if len(recs) > 0 {
			e.log.Info("queue replayed from disk", "dir", cfg.QueueDir, "spans", e.replayed, "requests", len(recs))
		}
	}
	m, err := newMetrics(e, reg)
	if err != nil {
		e.cancelRun()
		if e.conn != nil {
			e.conn.Close()
		}
		if e.kafka != nil {
			e.kafka.Close()
		}
		if e.wal != nil {
			e.wal.close()
		}
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	e.metrics = m
	return e, nil
}

// Start runs the senders. Pushes before Start wait in the queue.
func (e *Exporter) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closing || e.send == nil {
		return
	}
	e.started = true
	for range e.cfg.Senders {
		e.senders.Go(e.sender)
	}
}

// Admit is the door: whether a request may be read at all. Clients that
// retry a refusal (OTLP, Jaeger) are let in while the queue is under 90%:
// the last 10% is kept for Zipkin reporters, which never retry. retryAfter
// grows from 1s at the threshold to 5s at capacity. With a persistent
// queue the same holds of its disk use against QueueMaxBytes.
func (e *Exporter) Admit(retrying bool) (ok bool, retryAfter time.Duration) {
	e.mu.Lock()
	queued, closing := e.q.spans, e.closing
	e.mu.Unlock()
	if closing {
		return false, 5 * time.Second
	}
	ok, retryAfter = door(int64(queued), int64(e.cfg.QueueSpans), retrying)
	if e.wal != nil {
		used, limit := e.wal.usage()
		if dok, after := door(used, limit, retrying); !dok {
			return false, max(retryAfter, after)
		}
	}
	return ok, retryAfter
}

func door(used, capacity int64, retrying bool) (ok bool, retryAfter time.Duration) {
	limit := capacity
	if retrying {
		limit = capacity - capacity/10
	}
	if used < limit {
		return true, 0
	}
	over := 1.0
	if capacity > limit {
		over = min(float64(used-limit)/float64(capacity-limit), 1)
	}
	return false, time.Second + time.Duration(over*float64(4*time.Second))
}

// Push takes ownership of data, a serialized ExportTraceServiceRequest
// holding spans spans. It is accepted while the queue holds fewer spans than
// its capacity, so one request may overshoot the capacity by its own size.
// retrying does not move that line: once read, a request is cheaper to keep
// than to have resent; the headroom for non-retrying clients is kept at
// Admit. A refused push is counted as dropped before Push returns.
//
// Push calls accounted (when not nil) exactly once, as soon as the spans
// are in the accounts (queued, exported or dropped) and before any wait:
// the receiver holds its count of received spans still until then, so that
// a scrape sees both sides of the accounting identity, and no longer.
//
// With a persistent queue, Push returns once the push is in the log and,
// with the always fsync policy, on disk: the caller acknowledges the
// client after Push, so an acknowledged span survives a crash. While it is
// being written the push counts as queued (reserved); a failed write moves
// it to dropped.
func (e *Exporter) Push(data []byte, spans int, retrying bool, accounted func()) error {
	return e.push(data, nil, spans, accounted)
}

// PushBuffer is Push for a request held in a reference-counted buffer
// (from bufpool.Shared): the exporter takes the caller's reference and
// frees it when it is done with the bytes, so the buffer is reused.
func (e *Exporter) PushBuffer(buf mem.Buffer, spans int, retrying bool, accounted func()) error {
	return e.push(buf.ReadOnlyData(), buf, spans, accounted)
}

func (e *Exporter) push(data []byte, buf mem.Buffer, spans int, accounted func()) error {
	if accounted == nil {
		accounted = func() {}
	}
	if spans <= 0 {
		accounted()
		release(buf)
		return nil
	}
	wire := e.walkForKafka(data, spans)
	e.mu.Lock()
	e.pushed += int64(spans)
	var refused error
	switch {
	case e.closing:
		e.dropped[dropShutdown] += int64(spans)
		refused = ErrShuttingDown
	case e.send == nil: // no downstream
		e.exported += int64(spans)
	case e.q.spans+e.reserved >= e.cfg.QueueSpans:
		e.dropped[dropQueueFull] += int64(spans)
		refused = ErrQueueFull
	case e.wal == nil:
		e.enqueueLocked(item{data: data, buf: buf, spans: spans, at: time.Now(), wire: wire})
		accounted()
		return nil
	default:
		e.reserved += spans // queued while written; concurrent pushes must not all pass the check above
	}
	e.mu.Unlock()
	accounted()
	if refused != nil || e.send == nil {
		release(buf)
		return refused
	}
	return e.pushLogged(data, buf, spans, wire)
}

// pushLogged writes a reserved push to the persistent queue's log (waiting
// for its fsync), then queues it.
func (e *Exporter) pushLogged(data []byte, buf mem.Buffer, spans int, wire *wireSpans) error {
	ref, err := e.wal.append(data, spans)
	e.mu.Lock()
	e.reserved -= spans
	if err != nil {
		r, perr := dropQueueFull, ErrQueueFull
		if errors.Is(err, errWALClosed) {
			r, perr = dropShutdown, ErrShuttingDown
		}
		e.dropped[r] += int64(spans)
		e.mu.Unlock()
		release(buf)
		if r == dropQueueFull && !errors.Is(err, errWALFull) {
			e.log.Warn("push refused: queue dir", "err", err)
		}
		return perr
	}
	// Even if Shutdown began meanwhile, the push is on disk: it stays
	// queued, for this process to flush or the next to replay.
	e.enqueueLocked(item{data: data, buf: buf, spans: spans, at: time.Now(), ref: ref, wire: wire})
	return nil
}

// enqueueLocked queues an accounted push, unlocks e.mu and wakes a sender
// when a batch may be ready.
func (e *Exporter) enqueueLocked(it item) {
	wasEmpty := e.q.len() == 0
	e.q.push(it)
	full := e.q.full(e.cfg.BatchMaxSpans, e.cfg.ExportMaxBytes)
	e.mu.Unlock()
	if wasEmpty || full { // a new deadline, or a batch ready now
		e.wake()
	}
}

// release frees a pooled request buffer the queue did not keep; nil is none.
func release(buf mem.Buffer) {
	if buf != nil {
		buf.Free()
	}
}

func (e *Exporter) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Shutdown stops taking pushes and flushes the queue until ctx ends. As in
// the OpenTelemetry Collector (exporterhelper's base_exporter), retrying
// stops first, so the queue can flush: from now on each batch, including
// one waiting to be retried, gets one more attempt. When ctx ends, attempts
// are aborted, and every span not exported is counted as
// dropped{reason="shutdown"}.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil
	}
	e.closing = true
	e.mu.Unlock()
	close(e.draining)

	done := make(chan struct{})
	go func() { e.senders.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("flush queue: %w", ctx.Err())
		e.cancelRun()
		<-done
	}
	e.cancelRun()

	if e.wal != nil {
		// What is left stays queued: it is on disk for the next start.
		e.mu.Lock()
		left := e.q.spans
		e.mu.Unlock()
		if cerr := e.wal.close(); cerr != nil {
			e.log.Error("queue dir: close", "err", cerr)
		}
		if left > 0 {
			e.log.Warn("spans left in the queue dir for the next start", "spans", left, "dir", e.cfg.QueueDir)
		}
	} else {
		e.mu.Lock()
		left := e.q.drain()
		e.dropped[dropShutdown] += int64(left)
		e.mu.Unlock()
		if left > 0 {
			e.log.Warn("spans dropped at shutdown", "spans", left, "reason", ReasonShutdown)
		}
	}
	if e.conn != nil {
		e.conn.Close()
	}
	if e.httpClient != nil {
		e.httpClient.CloseIdleConnections()
	}
	if e.kafka != nil {
		e.kafka.Close()
	}
	return err
}

// Accounts is the collector of the span accounts (exported, dropped,
// queued, in flight, pushed). New does not register it: whoever counts
// spans in must collect it in the same critical section as its own count,
// or a scrape could see spans on one side and not yet on the other (the
// receiver does, see receiver.Config.Accounts).
func (e *Exporter) Accounts() prometheus.Collector { return e.metrics.accounts }

// Stats is a consistent snapshot of the span accounts.
type Stats struct {
	Pushed   int64            // every span Push was called with
	Replayed int64            // spans queued from the persistent queue's log at start
	Exported int64            // accepted by the backend (or discarded without Endpoint)
	Dropped  map[string]int64 // by reason, all reasons present
	Queued   int64            // waiting in the queue
	Inflight int64            // taken off the queue: being exported or retried
	Retries  int64            // export attempts that were retries
}

// Unaccounted is Pushed + Replayed minus every state; anything but 0 is a
// bug.
func (s Stats) Unaccounted() int64 {
	n := s.Pushed + s.Replayed - s.Exported - s.Queued - s.Inflight
	for _, d := range s.Dropped {
		n -= d
	}
	return n
}

// Stats returns a snapshot of the span accounts, taken under one lock.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{
		Pushed:   e.pushed,
		Replayed: e.replayed,
		Exported: e.exported,
		Dropped:  make(map[string]int64, numReasons),
		Queued:   int64(e.q.spans + e.reserved), // being written to the log counts as queued
		Inflight: e.inflight,
		Retries:  e.retries.Load(),
	}
	for r, n := range e.dropped {
		s.Dropped[reasonNames[r]] = n
	}
	return s
}

// batch is a set of pushes taken off the queue together and their
// progress through the attempts.
type batch struct {
	items []item
	spans int

	// OTLP: the requests not yet accepted, in order, cut by plan at the
	// first attempt so that each fits ExportMaxBytes (parts.go).
	pending []*part
	planned bool

	sent     int // spans the backend accepted
	rejected int // spans the backend refused for good (partial success)
	tooLarge int // single spans larger than the limit or the destination takes

	jaeger    []*model.Batch // jaeger-grpc: converted batches not yet sent
	kafka     []kafkaRecord  // kafka: records to produce
	flight    *kafkaFlight   // kafka: records the client holds
	arena     *recordArena   // kafka: the records' values
	converted bool
}

// sender takes batches and exports them until the queue is drained at
// shutdown, or shutdown's deadline passes.
func (e *Exporter) sender() {
	var items []item
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		b := e.next(items[:0], timer)
		if b == nil {
			return
		}
		e.export(b)
		items = b.items
		clear(items)
	}
}

// next waits until a batch is due — full, BatchTimeout old, or shutdown
// flushing — and takes it off the queue, moving its spans from queued to
// inflight under the lock. It returns nil when the sender should exit.
func (e *Exporter) next(items []item, timer *time.Timer) *batch {
	for {
		e.mu.Lock()
		if e.runCtx.Err() != nil {
			e.mu.Unlock()
			return nil
		}
		oldest, ok := e.q.oldest()
		var wait time.Duration
		if ok {
			wait = time.Until(oldest.Add(e.cfg.BatchTimeout))
			if wait <= 0 || e.closing || e.q.full(e.cfg.BatchMaxSpans, e.cfg.ExportMaxBytes) {
				items = e.q.take(items, e.cfg.BatchMaxSpans, e.cfg.ExportMaxBytes)
				spans := 0
				for _, it := range items {
					spans += it.spans
				}
				e.inflight += int64(spans)
				more := e.q.len() > 0
				e.mu.Unlock()
				if more { // let an idle sender look at the rest
					e.wake()
				}
				e.metrics.batchSpans.Observe(float64(spans))
				return &batch{items: items, spans: spans}
			}
		} else if e.closing {
			e.mu.Unlock()
			return nil
		}
		e.mu.Unlock()

		var fire <-chan time.Time
		if ok {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-e.kick:
		case <-fire:
		case <-e.draining:
		case <-e.runCtx.Done():
		}
		timer.Stop()
	}
}

// export is the retry loop around attempts (apart from them, as Prometheus'
// remote-write sendWriteRequestWithBackoff): it retries what classifies as
// retryable with exponential backoff or the server's hint, until
// RetryMaxElapsed, then settles the batch's spans.
func (e *Exporter) export(b *batch) {
	start := time.Now()
	bo := backoff{next: e.cfg.RetryInitialInterval, max: e.cfg.RetryMaxInterval}
	var timer *time.Timer
	for {
		err := e.attempt(b)
		if err == nil {
			e.settle(b, dropNonRetryable, nil)
			return
		}
		var ae *attemptError
		if !errors.As(err, &ae) {
			ae = &attemptError{code: "unknown", err: err}
		}
		if !ae.retryable {
			e.settle(b, dropNonRetryable, err)
			return
		}
		if e.isDraining() {
			e.settle(b, dropShutdown, err)
			return
		}
		d := bo.delay(ae.retryAfter)
		if e.cfg.RetryMaxElapsed > 0 && time.Since(start)+d > e.cfg.RetryMaxElapsed {
			e.settle(b, dropExportFailed, fmt.Errorf("no retry left after %v: %w", time.Since(start).Round(time.Millisecond), err))
			return
		}
		e.log.Debug("export failed, will retry", "spans", b.spans-b.sent-b.rejected-b.tooLarge, "in", d, "err", err)
		if e.retryPlanned != nil {
			e.retryPlanned(d)
		}
		e.retries.Add(1)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
		case <-e.draining: // one last attempt, then no more retries
		case <-e.runCtx.Done():
			e.settle(b, dropShutdown, err)
			return
		}
	}
}

func (e *Exporter) isDraining() bool {
	select {
	case <-e.draining:
		return true
	default:
		return false
	}
}

// attempt is one export: the batch's requests not yet accepted, each call
// bounded by Timeout (callContext). Failed calls are counted where they
// happen (failed), since an attempt may absorb some (a request cut in
// halves, a span dropped as too large) and go on.
func (e *Exporter) attempt(b *batch) error {
	start := time.Now()
	err := e.send(e.runCtx, b)
	result := "ok"
	if err != nil {
		result = "non_retryable"
		if ae, ok := err.(*attemptError); ok && ae.retryable {
			result = "retryable"
		}
	}
	e.metrics.duration.WithLabelValues(e.name, result).Observe(time.Since(start).Seconds())
	return err
}

// callContext bounds one call to the destination by Timeout.
func (e *Exporter) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, e.cfg.Timeout, errAttemptTimeout)
}

// failed counts one failed call and returns it classified.
func (e *Exporter) failed(err error) *attemptError {
	ae, ok := err.(*attemptError)
	if !ok {
		ae = &attemptError{code: "unknown", err: err}
	}
	e.metrics.failures.WithLabelValues(e.name, ae.code).Inc()
	return ae
}

// settle moves the batch's spans from inflight to their final states under
// the lock: sent ones to exported, rejected ones to non_retryable, the rest
// to rest (used only when the export did not go through).
//
// With a persistent queue, a batch cut short by shutdown before any of it
// went goes back to the queue instead: it is on disk for the next start.
// Anything else settled is acked in the log.
func (e *Exporter) settle(b *batch, rest reason, err error) {
	sent := min(max(b.sent, 0), b.spans)
	rejected := min(max(b.rejected, 0), b.spans-sent)
	tooLarge := min(max(b.tooLarge, 0), b.spans-sent-rejected)
	left := b.spans - sent - rejected - tooLarge
	keep := e.wal != nil && rest == dropShutdown && left == b.spans
	e.mu.Lock()
	e.inflight -= int64(b.spans)
	if keep {
		for _, it := range b.items {
			e.q.push(it)
		}
		left = 0
	} else {
		e.exported += int64(sent)
		e.dropped[dropNonRetryable] += int64(rejected)
		e.dropped[dropTooLarge] += int64(tooLarge)
		e.dropped[rest] += int64(left)
		e.q.ack(b.items)
	}
	e.mu.Unlock()
	if e.wal != nil && !keep && (rest != dropShutdown || left == 0) {
		e.wal.ack(b.items)
	}
	if !keep {
		for i := range b.items {
			if it := &b.items[i]; it.buf != nil {
				it.buf.Free()
				it.buf, it.data = nil, nil
			}
		}
	}
	for _, p := range b.pending {
		p.free()
	}
	b.pending, b.planned = nil, false
	if b.flight.answered() { // else the client still reads the values: the GC frees them
		b.arena.free()
	}
	b.jaeger, b.kafka, b.flight, b.arena = nil, nil, nil, nil
	switch {
	case left > 0:
		e.log.Warn("spans dropped", "spans", left, "reason", reasonNames[rest], "err", err)
	case rejected > 0:
		e.log.Warn("spans rejected by the backend", "spans", rejected, "reason", ReasonNonRetryable, "err", err)
	}
}
