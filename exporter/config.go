package exporter

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Protocols the exporter speaks to Jaeger.
const (
	ProtocolOTLPGRPC   = "otlp-grpc"
	ProtocolOTLPHTTP   = "otlp-http"
	ProtocolJaegerGRPC = "jaeger-grpc"
)

// Config says where and how spans leave. The zero value plus an Endpoint is
// a working configuration: SetDefaults fills the rest.
type Config struct {
	// Endpoint is Jaeger's HOST:PORT. Empty means no downstream: spans are
	// counted as exported{exporter="none"} and discarded.
	Endpoint string
	// Protocol is otlp-grpc (default), otlp-http (POST
	// http(s)://Endpoint/v1/traces) or jaeger-grpc (api_v2 PostSpans).
	Protocol string
	// Compression is gzip (default, as the OpenTelemetry Collector), zstd or
	// none.
	Compression string
	// TLS, when set, encrypts the connection; nil is plaintext.
	TLS *tls.Config
	// Headers go with every export: gRPC metadata or HTTP headers.
	Headers map[string]string
	// Kafka, with brokers, is the destination instead of Endpoint.
	Kafka KafkaConfig

	// BatchMaxSpans caps a batch (default 8192); a single push with more
	// spans goes alone.
	BatchMaxSpans int
	// ExportMaxBytes bounds every export's encoded (uncompressed) size: a
	// batch is filled up to it, and a push larger than it is cut at span
	// boundaries (SplitRequest). The default is what the destination takes
	// at its own defaults: just under 4 MiB for otlp-grpc and jaeger-grpc
	// (gRPC servers, Jaeger's and the Collector's OTLP receivers included,
	// refuse messages over 4 MiB), 20 MiB for otlp-http (the Collector's
	// confighttp max_request_body_size, which Jaeger v2 uses too).
	ExportMaxBytes int
	// BatchTimeout is how long the oldest queued push may wait for a batch
	// to fill (default 200ms).
	BatchTimeout time.Duration
	// QueueSpans is the queue's capacity in spans (default 100000).
	QueueSpans int
	// QueueDir, when set, makes the queue persistent: every push is written
	// to a write-ahead log there before Push returns, replayed on start
	// and deleted once settled. The queue stays in memory too, so
	// QueueSpans still bounds it; the log makes it survive a crash.
	QueueDir string
	// QueueMaxBytes bounds the log's disk use (default 1 GiB); beyond it
	// pushes are refused as queue_full, as at QueueSpans.
	QueueMaxBytes int64
	// QueueFsync is when the log is fsynced: always (default: before Push
	// returns, group-committed across concurrent pushes), interval (every
	// QueueFsyncInterval; a machine crash loses up to that much of what
	// was acknowledged) or never (the kernel decides; a process crash
	// loses nothing, a machine crash may).
	QueueFsync         string
	QueueFsyncInterval time.Duration
	// Senders is the number of concurrent exports (default 4).
	Senders int
	// Timeout bounds one export attempt (default 5s).
	Timeout time.Duration

	// Exponential backoff between attempts of one batch: first wait
	// (default 1s), longest wait (default 30s), and the total time after
	// which the batch is dropped as export_failed (5m in Defaults; 0 means
	// retry until shutdown, so SetDefaults leaves it alone).
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	RetryMaxElapsed      time.Duration
}

// Default export size limits; see Config.ExportMaxBytes.
const (
	// GRPCExportMaxBytes is 4 MiB, gRPC's default receive limit, less room
	// for the request's own framing.
	GRPCExportMaxBytes = 4<<20 - 64<<10
	// HTTPExportMaxBytes is the OpenTelemetry Collector's default
	// max_request_body_size (config/confighttp), applied both to the body
	// and to the body decompressed.
	HTTPExportMaxBytes = 20 << 20
	minExportMaxBytes  = 1024
)

// DefaultExportMaxBytes is the export size limit a destination speaking
// protocol takes at its defaults.
func DefaultExportMaxBytes(protocol string) int {
	if protocol == ProtocolOTLPHTTP {
		return HTTPExportMaxBytes
	}
	return GRPCExportMaxBytes
}

// Defaults returns the default configuration (no Endpoint): what flags
// should start from.
func Defaults() Config {
	c := Config{RetryMaxElapsed: 5 * time.Minute}
	c.SetDefaults()
	return c
}

// SetDefaults fills every zero field with its default, except
// RetryMaxElapsed, whose zero means "retry until shutdown".
func (c *Config) SetDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolOTLPGRPC
	}
	if c.Compression == "" {
		c.Compression = "gzip"
	}
	c.Kafka.setDefaults()
	def(&c.BatchMaxSpans, 8192)
	def(&c.ExportMaxBytes, DefaultExportMaxBytes(c.Protocol))
	defDur(&c.BatchTimeout, 200*time.Millisecond)
	def(&c.QueueSpans, 100_000)
	if c.QueueMaxBytes == 0 {
		c.QueueMaxBytes = 1 << 30
	}
	if c.QueueFsync == "" {
		c.QueueFsync = FsyncAlways
	}
	defDur(&c.QueueFsyncInterval, 100*time.Millisecond)
	def(&c.Senders, 4)
	defDur(&c.Timeout, 5*time.Second)
	defDur(&c.RetryInitialInterval, time.Second)
	defDur(&c.RetryMaxInterval, 30*time.Second)
}

// Validate fills defaults, then checks every field. Errors name the
// setting as the command line spells it.
func (c *Config) Validate() error {
	c.SetDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Endpoint != "" {
		host, port, err := net.SplitHostPort(c.Endpoint)
		if err != nil {
			bad("jaeger-endpoint %q: want HOST:PORT: %w", c.Endpoint, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad("jaeger-endpoint %q: port %q: want 1-65535", c.Endpoint, port)
		} else if host == "" {
			bad("jaeger-endpoint %q: empty host", c.Endpoint)
		}
	}
	if c.Endpoint != "" && c.Kafka.Enabled() {
		bad("jaeger and kafka-brokers: set one destination, not both")
	}
	errs = append(errs, c.Kafka.validate()...)
	switch c.Protocol {
	case ProtocolOTLPGRPC, ProtocolOTLPHTTP, ProtocolJaegerGRPC:
	default:
		bad("jaeger-protocol %q: want %s, %s or %s", c.Protocol, ProtocolOTLPGRPC, ProtocolOTLPHTTP, ProtocolJaegerGRPC)
	}
	switch c.Compression {
	case "gzip", "zstd", "none":
	default:
		bad("jaeger-compression %q: want gzip, zstd or none", c.Compression)
	}
	positive := func(name string, v int) {
		if v < 0 {
			bad("%s %d: want > 0", name, v)
		}
	}
	positive("batch-max-spans", c.BatchMaxSpans)
	if c.ExportMaxBytes < minExportMaxBytes {
		bad("export-max-bytes %d: want at least %d", c.ExportMaxBytes, minExportMaxBytes)
	}
	positive("queue-spans", c.QueueSpans)
	positive("senders", c.Senders)
	positiveDur := func(name string, v time.Duration) {
		if v < 0 {
			bad("%s %v: want >= 0", name, v)
		}
	}
	positiveDur("batch-timeout", c.BatchTimeout)
	positiveDur("export-timeout", c.Timeout)
	positiveDur("retry-initial-interval", c.RetryInitialInterval)
	positiveDur("retry-max-interval", c.RetryMaxInterval)
	positiveDur("retry-max-elapsed", c.RetryMaxElapsed)
	if c.RetryMaxInterval > 0 && c.RetryInitialInterval > c.RetryMaxInterval {
		bad("retry-initial-interval %v: more than retry-max-interval %v", c.RetryInitialInterval, c.RetryMaxInterval)
	}
	switch c.QueueFsync {
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		bad("queue-fsync %q: want %s, %s or %s", c.QueueFsync, FsyncAlways, FsyncInterval, FsyncNever)
	}
	if c.QueueMaxBytes < 1<<20 {
		bad("queue-max-bytes %d: want at least 1048576 (1 MiB)", c.QueueMaxBytes)
	}
	positiveDur("queue-fsync-interval", c.QueueFsyncInterval)
	if c.BatchMaxSpans > c.QueueSpans {
		bad("batch-max-spans %d: more than queue-spans %d, a batch could never fill", c.BatchMaxSpans, c.QueueSpans)
	}
	return errors.Join(errs...)
}
