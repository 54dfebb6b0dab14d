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

	"github.com/gogo/protobuf/jsonpb"
	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.opentelemetry.io/collector/pdata/ptrace"

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
		// An attempt is bounded like every export attempt; past it the
		// exporter's backoff decides, as for the other destinations.
		kgo.RecordDeliveryTimeout(cfg.Timeout),
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

// sendKafka turns the batch into records once (kafkaRecords), then
// produces those not yet accepted. Progress is kept across attempts, so a
// retry resends only the records a retryable error sent back.
func (e *Exporter) sendKafka(ctx context.Context, b *batch) error {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var transient, permanent *attemptError
	if !b.converted {
		b.converted = true
		whole := itemsPart(b.items) // records copy what they keep: freed at once
		recs, tooLarge, err := kafkaRecords(whole.joined().ReadOnlyData(), b.spans, &e.cfg.Kafka)
		whole.free()
		if err != nil {
			b.rejected = b.spans
			return e.failed(&attemptError{code: "decode", err: err})
		}
		b.kafka = recs
		n := 0
		for _, r := range recs {
			n += r.spans
		}
		b.rejected = max(b.spans-n, 0) // spans too large for a record, or left out by the translation
		if tooLarge > 0 {
			permanent = &attemptError{code: kerr.MessageTooLarge.Message, err: fmt.Errorf("%d spans each larger than kafka-max-message-bytes %d allows: %w", tooLarge, e.cfg.Kafka.MaxMessageBytes, kerr.MessageTooLarge)}
		}
	}
	results := e.produce(ctx, b.kafka)
	var retry []kafkaRecord
	for i, err := range results {
		r := b.kafka[i]
		if err == nil {
			b.sent += r.spans
			continue
		}
		ae := classifyKafka(err)
		if ae.retryable {
			// A fresh record: an abandoned one may still be the client's.
			retry = append(retry, kafkaRecord{rec: &kgo.Record{Key: r.rec.Key, Value: r.rec.Value}, spans: r.spans})
			transient = ae
			continue
		}
		b.rejected += r.spans
		permanent = ae
	}
	b.kafka = retry
	if transient != nil {
		return e.failed(transient)
	}
	if permanent != nil {
		return e.failed(permanent)
	}
	return nil
}

// errAbandoned is the result of a record the client still holds when the
// attempt's time is up.
var errAbandoned = errors.New("kafka: no answer within export-timeout")

// produce hands the records to the client and waits for each one's result
// until ctx ends. The client may keep a record it already sent to a broker
// that went away (the idempotent producer never fails those on a timeout,
// so as not to reorder); such a record is abandoned here as errAbandoned
// and sent again as a new record on retry, so a sender never waits for a
// broker longer than export-timeout. If the abandoned one is delivered
// later too, the trace's spans are in the topic twice: at least once.
func (e *Exporter) produce(ctx context.Context, recs []kafkaRecord) []error {
	type result struct {
		i   int
		err error
	}
	done := make(chan result, len(recs)) // never blocks the client's callbacks
	for i, r := range recs {
		e.kafka.Produce(ctx, r.rec, func(_ *kgo.Record, err error) { done <- result{i, err} })
	}
	results := make([]error, len(recs))
	for i := range results {
		results[i] = errAbandoned
	}
	for range recs {
		select {
		case r := <-done:
			results[r.i] = r.err
		case <-ctx.Done():
			return results
		}
	}
	return results
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
	if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errAbandoned) {
		return &attemptError{code: "timeout", retryable: true, err: err}
	}
	return transportError(err)
}

// kafkaRecords encodes a batch (concatenated ExportTraceServiceRequests)
// as records keyed by trace id. OTLP encodings hold the spans of one trace
// per record, as many as fit in MaxMessageBytes; Jaeger encodings one span
// per record, as Jaeger's collector writes them. tooLarge counts spans
// that do not fit a record even alone; they are left out.
func kafkaRecords(data []byte, spans int, k *KafkaConfig) (recs []kafkaRecord, tooLarge int, err error) {
	limit := k.MaxMessageBytes - kafkaRecordOverhead
	switch k.Encoding {
	case KafkaJaegerProto, KafkaJaegerJSON:
		return jaegerRecords(data, k.Encoding, limit)
	}
	var w wireSpans
	if err := walkSpans(data, spans, &w); err != nil {
		return nil, 0, err
	}
	if len(w.spans) == 0 {
		return nil, 0, nil
	}
	traces := w.byTrace()
	// One allocation each for the values, keys and records of the batch,
	// not three per record: with short traces a record is a span or two.
	// Values are about the batch's size plus the resource and scope
	// headers each record repeats; the arena grows if that was short
	// (slices already cut keep the old array).
	arena := make([]byte, 0, len(data)+len(traces)*(len(w.resources[0])+len(w.scopes[0].header)+16))
	keys := make([]byte, 32*len(traces))
	records := make([]kgo.Record, 0, len(traces))
	recs = make([]kafkaRecord, 0, len(traces))
	for i, trace := range traces {
		key := keys[32*i : 32*i+32 : 32*i+32]
		id := w.spans[trace[0]].traceID
		hex.Encode(key, id[:])
		var encErr error
		size := func(spans []int) int { return w.requestSize(spans) } // JSON is larger: checked once encoded
		tooLarge += fitRecords(trace, limit, size, func(spans []int) bool {
			start := len(arena)
			arena = w.appendRequest(arena, spans)
			value := arena[start:len(arena):len(arena)]
			if k.Encoding == KafkaOTLPJSON {
				arena = arena[:start]
				if value, encErr = otlpJSON(value); encErr != nil {
					return true // stop here, reported below
				}
				if len(value) > limit {
					return false
				}
			}
			records = append(records, kgo.Record{Key: key, Value: value})
			recs = append(recs, kafkaRecord{rec: &records[len(records)-1], spans: len(spans)})
			return true
		})
		if encErr != nil {
			return nil, 0, encErr
		}
	}
	return recs, tooLarge, nil
}

// fitRecords cuts one trace's spans into records: whole if size says they
// fit limit, else in halves, recursively, down to single spans. emit makes
// the record and may refuse it (false) to have it cut further, when only
// the encoded record tells its size. It returns the spans that fit no
// record alone.
func fitRecords(spans []int, limit int, size func([]int) int, emit func([]int) bool) (tooLarge int) {
	if size(spans) <= limit && emit(spans) {
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
	index := make(map[[16]byte]int, 16)
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
