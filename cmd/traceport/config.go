package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/traceport/traceport/diagnosis"
	"github.com/traceport/traceport/exporter"
	"github.com/traceport/traceport/receiver"
	"github.com/traceport/traceport/translate"
)

// Config is all of traceport's configuration. Flags, TRACEPORT_* environment
// variables and the YAML --config file all fill this one struct, by the same
// names (flag --jaeger-protocol = env TRACEPORT_JAEGER_PROTOCOL = YAML key
// jaeger-protocol); a flag beats the environment, which beats the file.
type Config struct {
	ConfigFile string
	CheckOnly  bool

	Listen          string
	AlsoListen      stringList
	TLSCert         string
	TLSKey          string
	TLSClientCA     string
	MaxRequestBytes int64
	MaxServices     int
	SummaryInterval time.Duration
	ReadHeaderTime  time.Duration
	ReadTimeout     time.Duration
	IdleTimeout     time.Duration
	MaxConnections  int
	MaxStreams      int
	MemoryLimit     byteSize
	FastPaths       string

	ZipkinProtoLittleEndianIDs bool

	Jaeger              string
	JaegerProtocol      string
	JaegerCompression   string
	JaegerTLS           bool
	JaegerTLSCA         string
	JaegerTLSSkipVerify bool
	JaegerHeaders       headerMap

	Kafka kafkaFlags // --kafka-*: Kafka instead of Jaeger (kafka.go)

	BatchMaxSpans        int
	BatchTimeout         time.Duration
	ExportMaxBytes       byteSize
	QueueSpans           int
	QueueDir             string
	QueueMaxBytes        int64
	QueueFsync           string
	QueueFsyncInterval   time.Duration
	Senders              int
	ExportTimeout        time.Duration
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	RetryMaxElapsed      time.Duration

	ShutdownTimeout time.Duration
	PprofListen     string

	Diagnose diagnosis.Config // --silence-after, --orphan-grace, --health-window, --health-sample-ratio

	LogLevel  string
	LogFormat string

	getenv func(string) string // for --kafka-sasl-password-env
}

// defaultConfig is what traceport runs with when nothing is set: all
// protocols on :4317, counting and discarding (no --jaeger).
func defaultConfig() Config {
	exp := exporter.Defaults()
	return Config{
		Listen:               ":4317",
		MaxRequestBytes:      20 << 20,
		MaxServices:          1000,
		SummaryInterval:      time.Minute,
		ReadHeaderTime:       10 * time.Second,
		ReadTimeout:          time.Minute,
		MaxConnections:       4096,
		MaxStreams:           100,
		MemoryLimit:          byteSize(memoryLimitFromCgroup()),
		IdleTimeout:          2 * time.Minute,
		FastPaths:            "auto",
		JaegerProtocol:       exp.Protocol,
		JaegerCompression:    exp.Compression,
		JaegerHeaders:        headerMap{},
		BatchMaxSpans:        exp.BatchMaxSpans,
		BatchTimeout:         exp.BatchTimeout,
		QueueSpans:           exp.QueueSpans,
		QueueMaxBytes:        exp.QueueMaxBytes,
		QueueFsync:           exp.QueueFsync,
		QueueFsyncInterval:   exp.QueueFsyncInterval,
		Senders:              exp.Senders,
		ExportTimeout:        exp.Timeout,
		RetryInitialInterval: exp.RetryInitialInterval,
		RetryMaxInterval:     exp.RetryMaxInterval,
		RetryMaxElapsed:      exp.RetryMaxElapsed,
		ShutdownTimeout:      20 * time.Second,
		LogLevel:             "info",
		LogFormat:            "text",
		Diagnose:             diagnosis.DefaultConfig(),
		Kafka:                defaultKafkaFlags(exp.Kafka),
	}
}

// flagSet binds every setting to its flag name. The names are the contract:
// deploy/ manifests and the YAML file use them verbatim.
func (c *Config) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("traceport", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML file with settings named like the flags (e.g. jaeger-protocol: otlp-http)")
	fs.BoolVar(&c.CheckOnly, "validate", c.CheckOnly, "check the configuration, print it as a --config YAML file (jaeger-header values redacted), and exit (0 if valid)")

	fs.StringVar(&c.Listen, "listen", c.Listen, "the one address for every protocol: Zipkin, OTLP gRPC/HTTP, Jaeger gRPC, /metrics, probes")
	fs.Var(&c.AlsoListen, "also-listen", "extra address with the same handler, repeatable (e.g. :9411 and :4318 during a migration)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate: serve TLS (ALPN h2 and http/1.1) on every listener")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key for --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "PEM CA bundle: require client certificates signed by it (mTLS)")
	fs.Int64Var(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "largest request body, checked both compressed and decompressed (413 / RESOURCE_EXHAUSTED)")
	fs.IntVar(&c.MaxServices, "max-services", c.MaxServices, "distinct service label values; spans of further services are counted as \"_other\"")
	fs.DurationVar(&c.SummaryInterval, "summary-interval", c.SummaryInterval, "log one line per interval with the spans seen per source (0: never)")
	fs.DurationVar(&c.ReadHeaderTime, "read-header-timeout", c.ReadHeaderTime, "time a client has to send its request headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time a client has to send a whole HTTP request, body included (slow uploads are cut off)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "idle keep-alive connections are closed after this")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "open connections per listener; more wait in the kernel's backlog (0: no limit)")
	fs.IntVar(&c.MaxStreams, "max-concurrent-streams", c.MaxStreams, "concurrent HTTP/2 streams (requests) per connection, gRPC included")
	fs.Var(&c.MemoryLimit, "memory-limit", "memory limit in bytes (K/M/G/Ki/Mi/Gi suffixes), default the container's cgroup limit: sets GOMEMLIMIT; request bytes in flight may use a quarter of it (at least --max-request-bytes), and above that or above 80% of the limit requests are refused with 429 / RESOURCE_EXHAUSTED (0: no guard)")
	fs.StringVar(&c.FastPaths, "fast-paths", c.FastPaths, "auto: traceport reads Envoy's HTTP/1.1 Zipkin posts and plain gRPC exports itself; off: net/http and grpc.Server serve everything (to rule the fast paths out in an incident)")
	fs.BoolVar(&c.ZipkinProtoLittleEndianIDs, "zipkin-proto-little-endian-ids", c.ZipkinProtoLittleEndianIDs, "read Zipkin proto span/parent ids in little-endian byte order, as Envoy's HTTP_PROTO writes them")

	fs.StringVar(&c.Jaeger, "jaeger", c.Jaeger, "Jaeger's HOST:PORT to forward to; empty: count spans and discard them")
	fs.StringVar(&c.JaegerProtocol, "jaeger-protocol", c.JaegerProtocol, "otlp-grpc (Jaeger ≥1.35, port 4317), otlp-http (4318) or jaeger-grpc (api_v2, 14250)")
	fs.StringVar(&c.JaegerCompression, "jaeger-compression", c.JaegerCompression, "gzip, zstd or none")
	fs.BoolVar(&c.JaegerTLS, "jaeger-tls", c.JaegerTLS, "use TLS to Jaeger")
	fs.StringVar(&c.JaegerTLSCA, "jaeger-tls-ca", c.JaegerTLSCA, "PEM CA bundle to verify Jaeger's certificate (implies --jaeger-tls)")
	fs.BoolVar(&c.JaegerTLSSkipVerify, "jaeger-tls-skip-verify", c.JaegerTLSSkipVerify, "do not verify Jaeger's certificate (implies --jaeger-tls)")
	fs.Var(&c.JaegerHeaders, "jaeger-header", "KEY=VALUE header (gRPC metadata) sent with every export, repeatable")

	fs.IntVar(&c.BatchMaxSpans, "batch-max-spans", c.BatchMaxSpans, "most spans in one export")
	fs.DurationVar(&c.BatchTimeout, "batch-timeout", c.BatchTimeout, "longest a span waits for its batch to fill")
	fs.Var(&c.ExportMaxBytes, "export-max-bytes", fmt.Sprintf("largest export (uncompressed, K/M/G/Ki/Mi/Gi suffixes): batches fill up to it and larger requests are cut at span boundaries; a single span over it is dropped (reason too_large). Default: what Jaeger and the Collector take at their defaults, %d (4 MiB less framing room) for otlp-grpc and jaeger-grpc, %d (20 MiB) for otlp-http", exporter.GRPCExportMaxBytes, exporter.HTTPExportMaxBytes))
	fs.IntVar(&c.QueueSpans, "queue-spans", c.QueueSpans, "export queue capacity in spans; when full, requests are refused with 429 / RESOURCE_EXHAUSTED")
	fs.StringVar(&c.QueueDir, "queue-dir", c.QueueDir, "directory for a persistent queue: spans are written there before the client is answered, replayed after a restart or crash; empty: memory only")
	fs.Int64Var(&c.QueueMaxBytes, "queue-max-bytes", c.QueueMaxBytes, "disk the --queue-dir may use; when full, requests are refused as at --queue-spans")
	fs.StringVar(&c.QueueFsync, "queue-fsync", c.QueueFsync, "when --queue-dir is fsynced: always (before answering the client; concurrent requests share one fsync), interval (a machine crash loses up to --queue-fsync-interval), never")
	fs.DurationVar(&c.QueueFsyncInterval, "queue-fsync-interval", c.QueueFsyncInterval, "fsync period with --queue-fsync interval")
	fs.IntVar(&c.Senders, "senders", c.Senders, "concurrent exports")
	fs.DurationVar(&c.ExportTimeout, "export-timeout", c.ExportTimeout, "time limit of one export attempt")
	fs.DurationVar(&c.RetryInitialInterval, "retry-initial-interval", c.RetryInitialInterval, "first wait before retrying a failed export")
	fs.DurationVar(&c.RetryMaxInterval, "retry-max-interval", c.RetryMaxInterval, "longest wait between retries")
	fs.DurationVar(&c.RetryMaxElapsed, "retry-max-elapsed", c.RetryMaxElapsed, "give up on a batch after this long (dropped, reason export_failed; 0: retry until shutdown)")

	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGTERM, time to finish requests and flush the queue; what is left is dropped (reason shutdown), or kept on disk with --queue-dir")
	fs.StringVar(&c.PprofListen, "pprof-listen", c.PprofListen, "serve Go's /debug/pprof/ profiles on this address (e.g. 127.0.0.1:6060); empty: off")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	d := &c.Diagnose
	fs.DurationVar(&d.SilenceAfter, "silence-after", d.SilenceAfter, "a source (service × protocol) silent this long is stale; /api/sources flags a workload whose sidecar or app path went silent")
	fs.DurationVar(&d.OrphanGrace, "orphan-grace", d.OrphanGrace, "how long a span waits for its parent (and a trace for its root) before it counts as an orphan (rootless)")
	fs.DurationVar(&d.HealthWindow, "health-window", d.HealthWindow, "sliding window of the orphan ratios and of the dependency preview")
	fs.Float64Var(&d.HealthSampleRatio, "health-sample-ratio", d.HealthSampleRatio, "share of traces (chosen by trace id, each whole) that trace health and the dependency preview watch; 1 watches all, at about 0.5 µs of CPU per span")
	c.Kafka.register(fs)
	return fs
}

// loadConfig fills a Config from args, the environment and the --config
// file, in that order of precedence.
func loadConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := defaultConfig()
	c.getenv = getenv
	fs := c.flagSet(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "traceport: one port for every trace protocol (Zipkin, OTLP, Jaeger), forwarded to Jaeger.\n\nUsage: traceport [flags]\n\nEvery flag can also be set as TRACEPORT_<NAME> in the environment or as <name> in the --config YAML file.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := "TRACEPORT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(env)
		if set[f.Name] || v == "" {
			return
		}
		for _, item := range splitRepeatable(f, v) {
			if err := fs.Set(f.Name, item); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
		}
		set[f.Name] = true
	})
	if c.ConfigFile != "" {
		if err := applyFile(fs, c.ConfigFile, set); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// print writes what --validate shows: a line saying the configuration is
// valid, then every setting as traceport will run with it, as a YAML
// --config file (keys are the flag names, sorted), with the values of
// jaeger-header, which may carry credentials, redacted.
func (c Config) print(w io.Writer) error {
	if c.ExportMaxBytes == 0 { // the protocol's default, shown resolved
		c.ExportMaxBytes = byteSize(exporter.DefaultExportMaxBytes(c.JaegerProtocol))
	}
	fs := c.flagSet(io.Discard)
	doc := map[string]any{}
	fs.VisitAll(func(f *flag.Flag) {
		switch v := f.Value.(type) {
		case *stringList:
			doc[f.Name] = []string(*v)
		case *byteSize:
			doc[f.Name] = int64(*v)
		case *headerMap:
			redacted := map[string]string{}
			for k := range *v {
				redacted[k] = "<redacted>"
			}
			doc[f.Name] = redacted
		case flag.Getter:
			if d, ok := v.Get().(time.Duration); ok {
				doc[f.Name] = d.String()
			} else {
				doc[f.Name] = v.Get()
			}
		default:
			doc[f.Name] = f.Value.String()
		}
	})
	delete(doc, "config")
	delete(doc, "validate")
	out, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("print configuration: %w", err)
	}
	_, err = fmt.Fprintf(w, "# configuration is valid; traceport runs with (jaeger-header values redacted):\n%s", out)
	return err
}

// splitRepeatable splits a comma-separated environment value for repeatable
// flags (TRACEPORT_ALSO_LISTEN=:9411,:4318).
func splitRepeatable(f *flag.Flag, v string) []string {
	switch f.Value.(type) {
	case *stringList, *headerMap, *commaList:
		return strings.Split(v, ",")
	}
	return []string{v}
}

// applyFile reads the YAML file and sets every key not already set by a flag
// or the environment. Unknown keys are an error: a typo must not pass.
func applyFile(fs *flag.FlagSet, path string, set map[string]bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			errs = append(errs, fmt.Errorf("config %s: unknown setting %q (see traceport --help)", path, k))
			continue
		}
		if set[k] {
			continue
		}
		var values []string
		switch v := doc[k].(type) {
		case []any:
			for _, item := range v {
				values = append(values, fmt.Sprint(item))
			}
		case map[string]any:
			for hk, hv := range v {
				values = append(values, hk+"="+fmt.Sprint(hv))
			}
			sort.Strings(values)
		case nil:
		default:
			values = []string{fmt.Sprint(v)}
		}
		for _, item := range values {
			if err := fs.Set(k, item); err != nil {
				errs = append(errs, fmt.Errorf("config %s: %s: %w", path, k, err))
			}
		}
	}
	return errors.Join(errs...)
}

// check validates the whole configuration; every error names its setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, addr := range append([]string{c.Listen}, c.AlsoListen...) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("listen address %q: want [HOST]:PORT: %v", addr, err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert and tls-key: set both or neither")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		bad("tls-client-ca needs tls-cert and tls-key")
	}
	for _, f := range []struct{ name, path string }{{"tls-cert", c.TLSCert}, {"tls-key", c.TLSKey}, {"tls-client-ca", c.TLSClientCA}, {"jaeger-tls-ca", c.JaegerTLSCA}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad("%s: %v", f.name, err)
			}
		}
	}
	if c.MaxRequestBytes < 1024 {
		bad("max-request-bytes %d: want at least 1024", c.MaxRequestBytes)
	}
	if c.MaxConnections < 0 {
		bad("max-connections %d: want >= 0", c.MaxConnections)
	}
	if c.MaxStreams < 1 {
		bad("max-concurrent-streams %d: want at least 1", c.MaxStreams)
	}
	if c.MemoryLimit < 0 || c.MemoryLimit > 0 && c.MemoryLimit < 32<<20 {
		bad("memory-limit %d: want 0 (no guard) or at least 32Mi", c.MemoryLimit)
	}
	if c.FastPaths != "auto" && c.FastPaths != "off" {
		bad("fast-paths %q: want auto or off", c.FastPaths)
	}
	if c.MaxServices < 1 {
		bad("max-services %d: want at least 1", c.MaxServices)
	}
	if c.SummaryInterval < 0 {
		bad("summary-interval %v: want >= 0", c.SummaryInterval)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout %v: want > 0", c.ShutdownTimeout)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log-level: %v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format %q: want text or json", c.LogFormat)
	}
	if err := c.Diagnose.Validate(); err != nil {
		errs = append(errs, err)
	}
	exp := c.exporterConfig(nil)
	if _, err := c.kafkaConfig(); err != nil {
		errs = append(errs, err)
	}
	if err := exp.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) receiverConfig(tlsConf *tls.Config) receiver.Config {
	return receiver.Config{
		MaxRequestBytes:   c.MaxRequestBytes,
		MaxServices:       c.MaxServices,
		Zipkin:            translate.ZipkinOptions{ProtoIDsLittleEndian: c.ZipkinProtoLittleEndianIDs},
		TLS:               tlsConf,
		ReadHeaderTimeout: c.ReadHeaderTime,
		ReadTimeout:       c.ReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxConnections:    c.MaxConnections,
		MaxStreams:        uint32(c.MaxStreams),
		MemoryLimit:       int64(c.MemoryLimit),
		PushWaits:         c.QueueDir != "" && c.QueueFsync == exporter.FsyncAlways,
		FastPathsOff:      c.FastPaths == "off",
	}
}

func (c *Config) exporterConfig(tlsConf *tls.Config) exporter.Config {
	return exporter.Config{
		Endpoint:             c.Jaeger,
		Protocol:             c.JaegerProtocol,
		Compression:          c.JaegerCompression,
		TLS:                  tlsConf,
		Headers:              c.JaegerHeaders,
		Kafka:                c.kafkaOrZero(),
		BatchMaxSpans:        c.BatchMaxSpans,
		BatchTimeout:         c.BatchTimeout,
		ExportMaxBytes:       int(c.ExportMaxBytes),
		QueueSpans:           c.QueueSpans,
		QueueDir:             c.QueueDir,
		QueueMaxBytes:        c.QueueMaxBytes,
		QueueFsync:           c.QueueFsync,
		QueueFsyncInterval:   c.QueueFsyncInterval,
		Senders:              c.Senders,
		Timeout:              c.ExportTimeout,
		RetryInitialInterval: c.RetryInitialInterval,
		RetryMaxInterval:     c.RetryMaxInterval,
		RetryMaxElapsed:      c.RetryMaxElapsed,
	}
}

// serverTLS loads --tls-cert/--tls-key (and --tls-client-ca for mTLS).
func (c *Config) serverTLS() (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	if c.TLSClientCA != "" {
		pool, err := loadPool(c.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls-client-ca: %w", err)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// jaegerTLS is the client TLS configuration towards Jaeger, or nil.
func (c *Config) jaegerTLS() (*tls.Config, error) {
	if !c.JaegerTLS && c.JaegerTLSCA == "" && !c.JaegerTLSSkipVerify {
		return nil, nil
	}
	conf := &tls.Config{InsecureSkipVerify: c.JaegerTLSSkipVerify, MinVersion: tls.VersionTLS12}
	if c.JaegerTLSCA != "" {
		pool, err := loadPool(c.JaegerTLSCA)
		if err != nil {
			return nil, fmt.Errorf("jaeger-tls-ca: %w", err)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, strings.TrimSpace(v)); return nil }

// headerMap is a repeatable KEY=VALUE flag.
type headerMap map[string]string

func (h *headerMap) String() string {
	keys := make([]string, 0, len(*h))
	for k, v := range *h {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (h *headerMap) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	if *h == nil {
		*h = headerMap{}
	}
	(*h)[k] = strings.TrimSpace(val)
	return nil
}

// byteSize is a size flag: 536870912, 512Mi, 1G.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(v string) error {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want a size in bytes, e.g. 536870912 or 512Mi", v)
	}
	*b = byteSize(n * mult)
	return nil
}
