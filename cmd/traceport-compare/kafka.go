package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/traceport/traceport/bench/sink"
)

// kafkaDownstream is the "compression" value of the Kafka rows: both
// systems write otlp_proto records, uncompressed, into one in-process
// Kafka (kfake, the real wire protocol) instead of the OTLP sink;
// traceport keys them by trace id (one trace per record), Jaeger as its
// config-kafka-collector.yaml, unkeyed.
const kafkaDownstream = "kafka"

const (
	kafkaTopic      = "jaeger-spans"
	kafkaPartitions = 8
)

// kafkaSink is a Kafka broker that counts the spans written to the topic,
// by reading it back as a consumer would.
type kafkaSink struct {
	cluster *kfake.Cluster
	client  *kgo.Client
	cancel  context.CancelFunc
	spans   atomic.Int64
	records atomic.Int64
	bytes   atomic.Int64
	bad     atomic.Int64
}

// maxKafkaMessage lets Jaeger's kafka exporter write its default batches
// (8192 spans, several MB): the broker default of 1 MB would refuse them
// and the row would be invalid for a setting, not for a cost.
const maxKafkaMessage = 64 << 20

func newKafkaSink() (*kafkaSink, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(kafkaPartitions, kafkaTopic),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(maxKafkaMessage)}))
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(kafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(maxKafkaMessage), kgo.FetchMaxPartitionBytes(maxKafkaMessage))
	if err != nil {
		c.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &kafkaSink{cluster: c, client: cl, cancel: cancel}
	go k.consume(ctx)
	return k, nil
}

func (k *kafkaSink) addr() string { return k.cluster.ListenAddrs()[0] }

func (k *kafkaSink) consume(ctx context.Context) {
	for ctx.Err() == nil {
		k.client.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			n, err := sink.CountSpans(r.Value)
			if err != nil {
				k.bad.Add(1)
			}
			k.spans.Add(int64(n))
			k.records.Add(1)
			k.bytes.Add(int64(len(r.Value)))
		})
	}
}

// readBack stops (false) and restarts (true) reading the topic. The
// harness reads it back after each load, not during it: a consumer
// decoding every record beside the generator would take the generator's
// core in proportion to the records a system writes (one per trace for
// traceport, one per 8192 spans for Jaeger), and so cap the load one
// system gets, not measure that system. The broker still takes every
// produce request as it comes.
//
// Stopping also deletes what the topic holds (read back by then): kfake
// keeps every record in memory, gigabytes per flat-out window.
func (k *kafkaSink) readBack(on bool) {
	if on {
		k.client.ResumeFetchTopics(kafkaTopic)
		return
	}
	k.client.PauseFetchTopics(kafkaTopic)
	req := kmsg.NewPtrDeleteRecordsRequest()
	t := kmsg.NewDeleteRecordsRequestTopic()
	t.Topic = kafkaTopic
	for p := range int32(kafkaPartitions) {
		tp := kmsg.NewDeleteRecordsRequestTopicPartition()
		tp.Partition, tp.Offset = p, -1 // up to the high watermark
		t.Partitions = append(t.Partitions, tp)
	}
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 10_000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := k.client.Request(ctx, req); err != nil {
		fmt.Fprintln(os.Stderr, "kafka sink: delete records:", err) // memory grows, counts stay right
	}
}

// Count is the sink's counts, for the harness.
func (k *kafkaSink) Count() sink.Counts {
	return sink.Counts{Spans: k.spans.Load(), Requests: k.records.Load(), Bytes: k.bytes.Load(), Rejected: k.bad.Load()}
}

func (k *kafkaSink) close() {
	k.cancel()
	k.client.Close()
	k.cluster.Close()
}

// jaegerKafkaConfig is Jaeger v2 as its cmd/jaeger/config-kafka-collector.yaml
// (OTLP receivers, here with zipkin as the other rows, → batch → kafka
// exporter, topic jaeger-spans, otlp_proto, no compression), ports on
// loopback for this run; only the producer's message limit is raised (see
// maxKafkaMessage).
func jaegerKafkaConfig(broker string, otlpGRPC, otlpHTTP, zipkin, health, metrics int) string {
	return jaegerCollectorConfig("kafka", fmt.Sprintf(`
    brokers: [%s]
    traces:
      topic: %s
      encoding: otlp_proto
    producer:
      max_message_bytes: %d
`, broker, kafkaTopic, maxKafkaMessage), otlpGRPC, otlpHTTP, zipkin, health, metrics)
}
