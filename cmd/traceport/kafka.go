package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/traceport/traceport/exporter"
)

// kafkaFlags are the --kafka-* settings. The SASL password itself is never
// a setting: it is read from a file or an environment variable when the
// exporter is configured, so neither --validate nor a log can show it.
type kafkaFlags struct {
	Brokers         commaList
	Topic           string
	Encoding        string
	Compression     string
	Acks            string
	MaxMessageBytes int
	ClientID        string

	TLS           bool
	TLSCA         string
	TLSCert       string
	TLSKey        string
	TLSSkipVerify bool

	SASLMechanism    string
	SASLUsername     string
	SASLPasswordFile string
	SASLPasswordEnv  string
}

func defaultKafkaFlags(k exporter.KafkaConfig) kafkaFlags {
	return kafkaFlags{
		Topic:           k.Topic,
		Encoding:        k.Encoding,
		Compression:     k.Compression,
		Acks:            k.Acks,
		MaxMessageBytes: k.MaxMessageBytes,
		ClientID:        k.ClientID,
	}
}

func (k *kafkaFlags) register(fs *flag.FlagSet) {
	fs.Var(&k.Brokers, "kafka-brokers", "Kafka bootstrap brokers HOST:PORT,...: write spans to Kafka (Jaeger's ingester pipeline) instead of --jaeger")
	fs.StringVar(&k.Topic, "kafka-topic", k.Topic, "Kafka topic (Jaeger's default)")
	fs.StringVar(&k.Encoding, "kafka-encoding", k.Encoding, "otlp_proto (Jaeger v2 ingester's default), otlp_json, jaeger_proto (one span per record, Jaeger v1 ingesters) or jaeger_json")
	fs.StringVar(&k.Compression, "kafka-compression", k.Compression, "none, gzip, snappy, lz4 or zstd")
	fs.StringVar(&k.Acks, "kafka-acks", k.Acks, "all (idempotent producer), leader or none")
	fs.IntVar(&k.MaxMessageBytes, "kafka-max-message-bytes", k.MaxMessageBytes, "the brokers' message.max.bytes: records are cut to fit; a span that fits no record is dropped (non_retryable)")
	fs.StringVar(&k.ClientID, "kafka-client-id", k.ClientID, "Kafka client id (broker logs, quotas)")
	fs.BoolVar(&k.TLS, "kafka-tls", k.TLS, "use TLS to the Kafka brokers")
	fs.StringVar(&k.TLSCA, "kafka-tls-ca", k.TLSCA, "PEM CA bundle to verify the brokers' certificates (implies --kafka-tls)")
	fs.StringVar(&k.TLSCert, "kafka-tls-cert", k.TLSCert, "PEM client certificate for the brokers (mTLS; implies --kafka-tls)")
	fs.StringVar(&k.TLSKey, "kafka-tls-key", k.TLSKey, "PEM private key for --kafka-tls-cert")
	fs.BoolVar(&k.TLSSkipVerify, "kafka-tls-skip-verify", k.TLSSkipVerify, "do not verify the brokers' certificates (implies --kafka-tls)")
	fs.StringVar(&k.SASLMechanism, "kafka-sasl-mechanism", k.SASLMechanism, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL")
	fs.StringVar(&k.SASLUsername, "kafka-sasl-username", k.SASLUsername, "SASL user name")
	fs.StringVar(&k.SASLPasswordFile, "kafka-sasl-password-file", k.SASLPasswordFile, "file holding the SASL password (e.g. a mounted Secret); one trailing newline is ignored")
	fs.StringVar(&k.SASLPasswordEnv, "kafka-sasl-password-env", k.SASLPasswordEnv, "name of the environment variable holding the SASL password")
}

// kafkaConfig is the exporter's Kafka configuration, with the TLS files
// loaded and the password read. Errors name the flag, never the password.
func (c *Config) kafkaConfig() (exporter.KafkaConfig, error) {
	k := &c.Kafka
	out := exporter.KafkaConfig{
		Brokers:         k.Brokers.items,
		Topic:           k.Topic,
		Encoding:        k.Encoding,
		Compression:     k.Compression,
		Acks:            k.Acks,
		MaxMessageBytes: k.MaxMessageBytes,
		ClientID:        k.ClientID,
		SASL:            k.SASLMechanism,
		SASLUser:        k.SASLUsername,
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if k.Brokers.set && len(k.Brokers.items) == 0 {
		bad("kafka-brokers: empty broker list, want HOST:PORT,...")
	}
	if !k.Brokers.set {
		return out, nil // the other --kafka-* flags only matter with brokers
	}
	tlsConf, err := k.tlsConfig()
	if err != nil {
		errs = append(errs, err)
	}
	out.TLS = tlsConf
	switch {
	case k.SASLPasswordFile != "" && k.SASLPasswordEnv != "":
		bad("kafka-sasl-password-file and kafka-sasl-password-env: set one")
	case k.SASLPasswordFile != "":
		b, err := os.ReadFile(k.SASLPasswordFile)
		if err != nil {
			bad("kafka-sasl-password-file: %v", err)
		}
		out.SASLPassword = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	case k.SASLPasswordEnv != "":
		if c.getenv != nil {
			out.SASLPassword = c.getenv(k.SASLPasswordEnv)
		}
		if out.SASLPassword == "" {
			bad("kafka-sasl-password-env: environment variable %s is empty or unset", k.SASLPasswordEnv)
		}
	}
	if k.SASLMechanism != "" && k.SASLPasswordFile == "" && k.SASLPasswordEnv == "" {
		bad("kafka-sasl-mechanism %s: needs kafka-sasl-password-file or kafka-sasl-password-env", k.SASLMechanism)
	}
	return out, errors.Join(errs...)
}

// kafkaOrZero is kafkaConfig for exporterConfig, which cannot fail: check
// and serve call kafkaConfig first and report its errors.
func (c *Config) kafkaOrZero() exporter.KafkaConfig {
	k, _ := c.kafkaConfig()
	return k
}

func (k *kafkaFlags) tlsConfig() (*tls.Config, error) {
	if !k.TLS && k.TLSCA == "" && k.TLSCert == "" && !k.TLSSkipVerify {
		return nil, nil
	}
	conf := &tls.Config{InsecureSkipVerify: k.TLSSkipVerify, MinVersion: tls.VersionTLS12}
	if k.TLSCA != "" {
		pool, err := loadPool(k.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("kafka-tls-ca: %w", err)
		}
		conf.RootCAs = pool
	}
	if (k.TLSCert == "") != (k.TLSKey == "") {
		return nil, errors.New("kafka-tls-cert and kafka-tls-key: set both or neither")
	}
	if k.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(k.TLSCert, k.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("kafka-tls-cert/kafka-tls-key: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// commaList is a list flag taking HOST:PORT,HOST:PORT, repeatable, and a
// YAML list. set tells an empty list given from no list at all.
type commaList struct {
	items []string
	set   bool
}

func (l *commaList) String() string { return strings.Join(l.items, ",") }

func (l *commaList) Set(v string) error {
	l.set = true
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			l.items = append(l.items, item)
		}
	}
	return nil
}
