package exporter

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/internal/bufpool"
	"github.com/traceport/traceport/translate"
)

// Kafka encodings: the names the OpenTelemetry Collector's kafka exporter
// and receiver (and so Jaeger v2's ingester) use.
const (
	KafkaOTLPProto   = "otlp_proto"   // an ExportTraceServiceRequest per record
	KafkaOTLPJSON    = "otlp_json"    // the same in OTLP/JSON
	KafkaJaegerProto = "jaeger_proto" // one Jaeger model.Span per record, Jaeger v1 ingesters' format
	KafkaJaegerJSON  = "jaeger_json"  // the same in jsonpb JSON
)

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// kafkaRecordOverhead is what a record costs beyond its value within a
// record batch: the batch header (61 bytes), the 32-byte key and the
// record's varints, rounded up. A value is kept within MaxMessageBytes
// minus this, so a record always fits a batch the broker accepts.
const kafkaRecordOverhead = 128

// KafkaConfig selects Kafka as the destination: spans go to Topic, one
// trace per record, keyed by trace id, instead of to Jaeger.
type KafkaConfig struct {
	Brokers     []string // HOST:PORT of the bootstrap brokers; empty: Kafka is off
	Topic       string   // default jaeger-spans, Jaeger's default
	Encoding    string   // default otlp_proto
	Compression string   // none (default), gzip, snappy, lz4 or zstd
	// Acks is all (default: the idempotent producer), leader or none.
	Acks string
	// MaxMessageBytes is the largest record batch the broker takes
	// (message.max.bytes, default 1000000): records are cut to fit.
	MaxMessageBytes int
	ClientID        string // default traceport
	TLS             *tls.Config
	// SASL is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty (none).
	SASL         string
	SASLUser     string
	SASLPassword string
}

// Enabled says whether Kafka is the destination.
func (k *KafkaConfig) Enabled() bool { return len(k.Brokers) > 0 }

func (k *KafkaConfig) setDefaults() {
	if k.Topic == "" {
		k.Topic = "jaeger-spans"
	}
	if k.Encoding == "" {
		k.Encoding = KafkaOTLPProto
	}
	if k.Compression == "" {
		k.Compression = "none"
	}
	if k.Acks == "" {
		k.Acks = "all"
	}
	if k.MaxMessageBytes == 0 {
		k.MaxMessageBytes = 1_000_000
	}
	if k.ClientID == "" {
		k.ClientID = "traceport"
	}
}

// minKafkaMessageBytes is the smallest --kafka-max-message-bytes taken:
// below it not even a small span fits beside the record's overhead.
const minKafkaMessageBytes = 1024

// validate returns one error per bad setting, named as the flag.
func (k *KafkaConfig) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			bad("kafka-brokers %q: want HOST:PORT: %w", b, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad("kafka-brokers %q: port %q: want 1-65535", b, port)
		} else if host == "" {
			bad("kafka-brokers %q: empty host", b)
		}
	}
	switch k.Encoding {
	case KafkaOTLPProto, KafkaOTLPJSON, KafkaJaegerProto, KafkaJaegerJSON:
	default:
		bad("kafka-encoding %q: want %s, %s, %s or %s", k.Encoding, KafkaOTLPProto, KafkaOTLPJSON, KafkaJaegerProto, KafkaJaegerJSON)
	}
	if _, err := kafkaCompression(k.Compression); err != nil {
		bad("kafka-compression %q: %v", k.Compression, err)
	}
	switch k.Acks {
	case "all", "leader", "none":
	default:
		bad("kafka-acks %q: want all, leader or none", k.Acks)
	}
	if k.MaxMessageBytes < minKafkaMessageBytes {
		bad("kafka-max-message-bytes %d: cannot hold one span, want at least %d", k.MaxMessageBytes, minKafkaMessageBytes)
	}
	if k.Topic == "" || strings.ContainsAny(k.Topic, " /\\,") || len(k.Topic) > 249 {
		bad("kafka-topic %q: not a Kafka topic name", k.Topic)
	}
	switch k.SASL {
	case "":
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if k.SASLUser == "" {
			bad("kafka-sasl-username: required with kafka-sasl-mechanism %s", k.SASL)
		}
	default:
		bad("kafka-sasl-mechanism %q: want %s, %s or %s", k.SASL, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	return errs
}

func kafkaCompression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, errors.New("want none, gzip, snappy, lz4 or zstd")
}

// newKafkaClient makes the producer. It does not wait for the brokers:
// like the gRPC paths, Kafka may be down at start.
func newKafkaClient(k *KafkaConfig, cfg *Config) (*kgo.Client, error) {
	codec, err := kafkaCompression(k.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.ClientID(k.ClientID),
		kgo.DefaultProduceTopic(k.Topic),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(int32(k.MaxMessageBytes)),
		// Records not sent yet are failed like an export attempt times out
		// (franz-go's floor is 1 s); past it the exporter's backoff
		// decides, as for the other destinations.
		kgo.RecordDeliveryTimeout(max(cfg.Timeout, time.Second)),
		// Each sender produces one batch at a time, but records abandoned
		// in an outage stay buffered until the broker answers. Bounded:
		// beyond this Produce blocks until the attempt's end. Room for a
		// few batches per sender, as Jaeger's encodings are 2-3x OTLP.
		kgo.MaxBufferedRecords(4 * (cfg.Senders + 1) * max(cfg.BatchMaxSpans, 1024)),
		kgo.MaxBufferedBytes(4 * (cfg.Senders + 1) * cfg.ExportMaxBytes),
	}
	switch k.Acks {
	case "all":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	if k.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(k.TLS.Clone()))
	}
	switch k.SASL {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha512Mechanism()))
	}
	return kgo.NewClient(opts...)
}

// kafkaRecord is a record waiting to be produced and the spans it holds.
type kafkaRecord struct {
	rec   *kgo.Record
	spans int
}

// sendKafka turns the batch into records once (kafkaRecords), hands those
// not yet accepted to the client and waits for the client's answer to each.
//
// An attempt waits at most export-timeout. Records the client still holds
// then stay with it: the next attempt waits for the same records instead
// of producing them again, so a slow broker costs waiting, not duplicates
// (which, resent, would make it slower still). Only records the client
// answered with a retryable error are produced again, as new records.
func (e *Exporter) sendKafka(ctx context.Context, b *batch) error {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var permanent *attemptError
	if !b.converted {
		b.converted = true
		if permanent = e.convertKafka(b); permanent != nil && len(b.kafka) == 0 {
			return e.failed(permanent)
		}
	}
	if b.flight == nil {
		b.flight = e.produce(ctx, b.kafka)
	}
	select {
	case <-b.flight.done:
	case <-ctx.Done():
		return e.failed(&attemptError{code: "timeout", retryable: true, err: errNoAnswer})
	}
	f := b.flight
	b.flight, b.kafka = nil, nil
	failed := f.failures()
	var transient *attemptError
	for _, r := range f.recs {
		err, ok := failed[r.rec]
		if !ok {
			b.sent += r.spans
			continue
		}
		ae := classifyKafka(err)
		if ae.retryable {
			// A new record: the client is done with the old one.
			b.kafka = append(b.kafka, kafkaRecord{rec: &kgo.Record{Key: r.rec.Key, Value: r.rec.Value}, spans: r.spans})
			transient = ae
			continue
		}
		b.rejected += r.spans
		permanent = ae
	}
	if transient != nil {
		return e.failed(transient)
	}
	if permanent != nil {
		return e.failed(permanent)
	}
	return nil
}

// convertKafka makes the batch's records. Spans that fit no record are
// counted rejected and reported as a permanent error.
func (e *Exporter) convertKafka(b *batch) *attemptError {
	recs, arena, tooLarge, err := kafkaRecords(b.items, &e.cfg.Kafka)
	if err != nil {
		b.rejected = b.spans
		return &attemptError{code: "decode", err: err}
	}
	b.kafka, b.arena = recs, arena
	n := 0
	for _, r := range recs {
		n += r.spans
	}
	b.rejected = max(b.spans-n, 0) // spans too large for a record, or left out by the translation
	if tooLarge > 0 {
		return &attemptError{code: kerr.MessageTooLarge.Message, err: fmt.Errorf("%d spans each larger than kafka-max-message-bytes %d allows: %w", tooLarge, e.cfg.Kafka.MaxMessageBytes, kerr.MessageTooLarge)}
	}
	return nil
}

// errNoAnswer ends an attempt whose records the client still holds at
// export-timeout: sent to a broker that has not answered yet.
var errNoAnswer = errors.New("kafka: no answer within export-timeout")

// kafkaFlight is the records of a batch handed to the client, and the
// client's answers. One promise serves all of them: a success only counts
// down; failures, rare, are kept by record.
type kafkaFlight struct {
	recs []kafkaRecord
	left atomic.Int64  // records not answered yet
	done chan struct{} // closed when left reaches zero

	mu     sync.Mutex
	failed map[*kgo.Record]error
}

// produce hands the records to the client. ctx bounds the wait for buffer
// space and cancels the records the client has not sent yet when the
// attempt ends (they come back as retryable failures); records already
// sent stay with the client until the broker answers or the client gives
// up on them (RecordDeliveryTimeout, where failing them is safe).
func (e *Exporter) produce(ctx context.Context, recs []kafkaRecord) *kafkaFlight {
	f := &kafkaFlight{recs: recs, done: make(chan struct{})}
	f.left.Store(int64(len(recs)))
	if len(recs) == 0 {
		close(f.done)
		return f
	}
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			f.mu.Lock()
			if f.failed == nil {
				f.failed = map[*kgo.Record]error{}
			}
			f.failed[r] = err
			f.mu.Unlock()
		}
		if f.left.Add(-1) == 0 {
			close(f.done)
		}
	}
	for _, r := range recs {
		e.kafka.Produce(ctx, r.rec, promise)
	}
	return f
}

// answered says whether the client is done with every record of the
// flight (always, for no flight).
func (f *kafkaFlight) answered() bool {
	if f == nil {
		return true
	}
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// failures is the records the client failed, once every one is answered.
func (f *kafkaFlight) failures() map[*kgo.Record]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// classifyKafka decides retryability of a produce failure. Kafka's own
// error codes say whether they are retriable (kerr), with one exception:
// an unknown topic is retried by the client (UnknownTopicRetries) before it
// fails a record, so here it means the topic is missing and auto-creation
// is off, and no retry of ours fixes that. Failures without a Kafka error
// code (dialing, timeouts, a closed connection) are transient.
func classifyKafka(err error) *attemptError {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		retryable := ke.Retriable && !errors.Is(err, kerr.UnknownTopicOrPartition)
		return &attemptError{code: ke.Message, retryable: retryable, err: err}
	}
	if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &attemptError{code: "timeout", retryable: true, err: err}
	}
	return transportError(err)
}

// kafkaRecords encodes a batch's pushes (serialized
// ExportTraceServiceRequests) as records keyed by trace id. OTLP encodings
// hold the spans of one trace per record, as many as fit in
// MaxMessageBytes; Jaeger encodings one span per record, as Jaeger's
// collector writes them. tooLarge counts spans that do not fit a record
// even alone; they are left out. The records' values are in arena, to be
// freed once the client is done with them.
func kafkaRecords(items []item, k *KafkaConfig) (recs []kafkaRecord, arena *recordArena, tooLarge int, err error) {
	limit := k.MaxMessageBytes - kafkaRecordOverhead
	switch k.Encoding {
	case KafkaJaegerProto, KafkaJaegerJSON:
		whole := itemsPart(items)
		defer whole.free() // records copy what they keep
		recs, tooLarge, err = jaegerRecords(whole.joined().ReadOnlyData(), k.Encoding, limit)
		return recs, nil, tooLarge, err
	}
	var w wireSpans
	size, spans := 0, 0
	for _, it := range items {
		size += len(it.data)
		spans += it.spans
	}
	w.spans = make([]wireSpan, 0, spans)
	for _, it := range items {
		if it.wire != nil {
			w.add(it.wire)
		} else if err := w.walk(it.data); err != nil {
			return nil, nil, 0, err
		}
	}
	if len(w.spans) == 0 {
		return nil, nil, 0, nil
	}
	traces := w.byTrace()
	// The values take about the batch's size plus the resource and scope
	// headers each record repeats: one pooled buffer, not one per record
	// (with short traces a record is a span or two).
	arena = newRecordArena(size + len(traces)*(len(w.resources[0])+len(w.scopes[0].header)+16))
	keys := make([]byte, 32*len(traces))
	records := make([]kgo.Record, 0, len(traces))
	recs = make([]kafkaRecord, 0, len(traces))
	for i, trace := range traces {
		key := keys[32*i : 32*i+32 : 32*i+32]
		id := w.spans[trace[0]].traceID
		hex.Encode(key, id[:])
		var encErr error
		tooLarge += fitRecords(trace, limit, w.requestSize, func(spans []int, size int) bool {
			var value []byte
			if k.Encoding == KafkaOTLPJSON { // JSON is larger: checked once encoded
				if value, encErr = otlpJSON(w.appendRequest(nil, spans)); encErr != nil {
					return true // stop here, reported below
				}
				if len(value) > limit {
					return false
				}
			} else {
				value = w.appendRequest(arena.take(size), spans)
			}
			records = append(records, kgo.Record{Key: key, Value: value})
			recs = append(recs, kafkaRecord{rec: &records[len(records)-1], spans: len(spans)})
			return true
		})
		if encErr != nil {
			arena.free()
			return nil, nil, 0, encErr
		}
	}
	return recs, arena, tooLarge, nil
}

// walkForKafka takes a push apart for kafkaRecords as it comes in, while
// its bytes are in the CPU's cache: a sender walking a batch of thousands
// of spans later reads each from memory, at about the cost of the rest of
// the record's making. nil when Kafka is not the destination, or the push
// is not taken apart (the sender then walks it and reports the error).
func (e *Exporter) walkForKafka(data []byte, spans int) *wireSpans {
	if e.kafka == nil || e.cfg.Kafka.Encoding != KafkaOTLPProto && e.cfg.Kafka.Encoding != KafkaOTLPJSON {
		return nil
	}
	w := &wireSpans{spans: make([]wireSpan, 0, spans)}
	if w.walk(data) != nil {
		return nil
	}
	return w
}

// recordArena holds the values of a batch's records in pooled buffers.
type recordArena struct {
	bufs []*[]byte
	cur  []byte // the unused rest of the last buffer
}

func newRecordArena(size int) *recordArena {
	a := &recordArena{}
	a.grow(size)
	return a
}

func (a *recordArena) grow(size int) {
	buf := bufpool.Shared.Get(size)
	a.bufs = append(a.bufs, buf)
	a.cur = (*buf)[:0]
}

// take returns an empty slice with room for n bytes, to append to.
func (a *recordArena) take(n int) []byte {
	if cap(a.cur)-len(a.cur) < n {
		a.grow(max(n, 1<<20))
	}
	start := len(a.cur)
	a.cur = a.cur[:start+n]
	return a.cur[start : start : start+n]
}

// free returns the buffers to the pool: no record value may be used after.
func (a *recordArena) free() {
	if a == nil {
		return
	}
	for _, b := range a.bufs {
		bufpool.Shared.Put(b)
	}
	a.bufs, a.cur = nil, nil
}

// fitRecords cuts one trace's spans into records: whole if size says they
// fit limit, else in halves, recursively, down to single spans. emit makes
// the record and may refuse it (false) to have it cut further, when only
// the encoded record tells its size. It returns the spans that fit no
// record alone.
func fitRecords(spans []int, limit int, size func([]int) int, emit func(spans []int, size int) bool) (tooLarge int) {
	if n := size(spans); n <= limit && emit(spans, n) {
		return 0
	}
	if len(spans) == 1 {
		return 1
	}
	half := len(spans) / 2
	return fitRecords(spans[:half], limit, size, emit) + fitRecords(spans[half:], limit, size, emit)
}

// byTrace groups the spans by trace id: traces in order of first
// appearance, each trace's spans in their order. The groups share one
// backing array.
func (w *wireSpans) byTrace() [][]int {
	index := make(map[[16]byte]int, len(w.spans)/2) // SDK traces: a span or two per batch
	group := make([]int, len(w.spans))
	var counts []int
	for i := range w.spans {
		g, ok := index[w.spans[i].traceID]
		if !ok {
			g = len(counts)
			index[w.spans[i].traceID] = g
			counts = append(counts, 0)
		}
		group[i] = g
		counts[g]++
	}
	groups := make([][]int, len(counts))
	all := make([]int, len(w.spans))
	off := 0
	for g, n := range counts {
		groups[g] = all[off : off : off+n]
		off += n
	}
	for i, g := range group {
		groups[g] = append(groups[g], i)
	}
	return groups
}

// traceKey is the record key: the trace id as 32 lowercase hex characters,
// what the OpenTelemetry Collector's kafka exporter writes with
// partition_traces_by_id (pcommon.TraceID.String()), so both spread traces
// over partitions alike.
func traceKey(id [16]byte) []byte {
	key := make([]byte, 32)
	hex.Encode(key, id[:])
	return key
}

func otlpJSON(request []byte) ([]byte, error) {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(request)
	if err != nil {
		return nil, err
	}
	return (&ptrace.JSONMarshaler{}).MarshalTraces(td)
}

// jaegerRecords converts the batch to Jaeger's model and makes one record
// per span, its process inlined, as Jaeger's collector and the Collector's
// kafka exporter write jaeger_proto and jaeger_json.
func jaegerRecords(data []byte, encoding string, limit int) (recs []kafkaRecord, tooLarge int, err error) {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	marshaler := jsonpb.Marshaler{}
	for _, jb := range translate.JaegerBatches(td) {
		for _, span := range jb.Spans {
			if span.Process == nil {
				span.Process = jb.Process
			}
			var value []byte
			if encoding == KafkaJaegerProto {
				value, err = span.Marshal()
			} else {
				buf.Reset()
				err = marshaler.Marshal(&buf, span)
				value = bytes.Clone(buf.Bytes())
			}
			if err != nil {
				return nil, 0, err
			}
			if len(value) > limit {
				tooLarge++
				continue
			}
			recs = append(recs, kafkaRecord{rec: &kgo.Record{Key: jaegerKey(span.TraceID), Value: value}, spans: 1})
		}
	}
	return recs, tooLarge, nil
}

func jaegerKey(id model.TraceID) []byte {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], id.High)
	binary.BigEndian.PutUint64(raw[8:], id.Low)
	return traceKey(raw)
}
