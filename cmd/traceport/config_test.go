package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestConfigPrecedence: a flag beats the environment, which beats the file,
// which beats the default; repeatable settings are replaced, not merged.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "traceport.yaml")
	os.WriteFile(file, []byte(`
listen: ":9000"
also-listen: [":9411", ":4318"]
jaeger: "file:4317"
jaeger-protocol: otlp-http
batch-timeout: 1s
queue-spans: 5000
jaeger-header: {x-tenant: blue, x-b: "2"}
`), 0o644)
	cfg, err := loadConfig(
		[]string{"--config", file, "--jaeger", "flag:4317"},
		env(map[string]string{"TRACEPORT_JAEGER": "env:4317", "TRACEPORT_QUEUE_SPANS": "70000", "TRACEPORT_ALSO_LISTEN": ":1,:2"}),
		&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	f("jaeger (flag over env over file)", cfg.Jaeger, "flag:4317")
	f("queue-spans (env over file)", cfg.QueueSpans, 70000)
	f("also-listen (env replaces file)", cfg.AlsoListen.String(), ":1,:2")
	f("listen (file over default)", cfg.Listen, ":9000")
	f("jaeger-protocol (file)", cfg.JaegerProtocol, "otlp-http")
	f("batch-timeout (file)", cfg.BatchTimeout, time.Second)
	f("jaeger-header (file map)", cfg.JaegerHeaders.String(), "x-b=2,x-tenant=blue")
	f("senders (default)", cfg.Senders, 4)
	if err := cfg.Validate(); err != nil {
		t.Errorf("check: %v", err)
	}
}

// TestConfigErrorsNameTheSetting: a wrong setting fails with its name.
func TestConfigErrorsNameTheSetting(t *testing.T) {
	f := func(args []string, file, want string) {
		t.Helper()
		if file != "" {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(file), 0o644)
			args = append(args, "--config", p)
		}
		cfg, err := loadConfig(args, env(nil), &bytes.Buffer{})
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v %q: error %v, want it to mention %q", args, file, err, want)
		}
	}
	f([]string{"--jaeger-protocol", "thrift"}, "", "jaeger-protocol")
	f([]string{"--jaeger-compression", "lz4"}, "", "jaeger-compression")
	f([]string{"--listen", "4317"}, "", "listen address")
	f([]string{"--tls-cert", "/nonexistent.pem"}, "", "tls-cert")
	f([]string{"--max-services", "0"}, "", "max-services")
	f([]string{"--log-level", "loud"}, "", "log-level")
	f(nil, "jaeger-protocl: otlp-http\n", `unknown setting "jaeger-protocl"`)
	f(nil, "queue-spans: lots\n", "queue-spans")
	f([]string{"--jaeger-header", "novalue"}, "", "KEY=VALUE")
	f([]string{"--fast-paths", "no"}, "", "fast-paths")
	f([]string{"--export-max-bytes", "10"}, "", "export-max-bytes")
	f([]string{"--export-max-bytes", "-1"}, "", "export-max-bytes")
}

// TestFastPathsSwitch: --fast-paths=off (flag, environment or file) turns
// both fast paths off in the receiver; auto, the default, leaves them on.
func TestFastPathsSwitch(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{nil, nil, false},
		{[]string{"--fast-paths", "off"}, nil, true},
		{nil, map[string]string{"TRACEPORT_FAST_PATHS": "off"}, true},
		{[]string{"--fast-paths=auto"}, map[string]string{"TRACEPORT_FAST_PATHS": "off"}, false},
	} {
		cfg, err := loadConfig(c.args, env(c.env), &bytes.Buffer{})
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		if got := cfg.receiverConfig(nil).FastPathsOff; got != c.want {
			t.Errorf("%v %v: FastPathsOff %v, want %v", c.args, c.env, got, c.want)
		}
	}
}

// TestValidateExitCodes: `traceport --config F --validate` is what deploy/
// and operators use to check a configuration.
func TestValidateExitCodes(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("jaeger: jaeger-collector.observability:4317\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"--config", good, "--validate"}, env(nil), &out, &errOut); code != 0 {
		t.Errorf("valid config: exit %d (%s)", code, errOut.String())
	}
	if code := run([]string{"--senders", "-1", "--validate"}, env(nil), &out, &errOut); code != 2 {
		t.Errorf("invalid config: exit %d, want 2", code)
	}
	if code := run([]string{"--help"}, env(nil), &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "--jaeger") && !strings.Contains(errOut.String(), "-jaeger") {
		t.Errorf("--help: exit %d", code)
	}
}

// TestREADMEFlagsTable keeps the README's flags table in step with the
// flags: every flag with its default appears there.
func TestREADMEFlagsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	fs := cfg.flagSet(&bytes.Buffer{})
	fs.VisitAll(func(f *flag.Flag) {
		row := "| `--" + f.Name + "` |"
		i := bytes.Index(readme, []byte(row))
		if i < 0 {
			t.Errorf("README flags table lacks --%s", f.Name)
			return
		}
		line := string(readme[i:])
		line = line[:strings.IndexByte(line, '\n')]
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "[]" && !strings.Contains(line, "`"+d+"`") {
			t.Errorf("README row for --%s does not show its default %q: %s", f.Name, d, line)
		}
	})
}

// TestPushWaitsOnlyWithFsyncAlways: only a persistent queue fsynced before
// every reply makes the receiver keep OTLP/gRPC on grpc.Server, where
// concurrent streams share the fsyncs.
func TestPushWaitsOnlyWithFsyncAlways(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--queue-dir", t.TempDir()}, true}, // always is the default
		{[]string{"--queue-dir", t.TempDir(), "--queue-fsync", "never"}, false},
		{[]string{"--queue-dir", t.TempDir(), "--queue-fsync", "interval"}, false},
	} {
		cfg, err := loadConfig(c.args, env(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.receiverConfig(nil).PushWaits; got != c.want {
			t.Errorf("%v: PushWaits %v, want %v", c.args, got, c.want)
		}
	}
}

// TestValidatePrints: --validate prints the settings traceport would run
// with, as a --config file that loads back to the same settings, with
// jaeger-header values (credentials) redacted and defaults resolved.
func TestValidatePrints(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--validate", "--jaeger", "j:4318", "--jaeger-protocol", "otlp-http", "--jaeger-header", "authorization=Bearer s3cret", "--also-listen", ":9411", "--queue-spans", "50000"}
	if code := run(args, env(nil), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	printed := out.String()
	if strings.Contains(printed, "s3cret") || !strings.Contains(printed, "authorization: <redacted>") {
		t.Errorf("jaeger-header not redacted:\n%s", printed)
	}
	if !strings.Contains(printed, "export-max-bytes: 20971520") {
		t.Errorf("export-max-bytes not resolved to otlp-http's default:\n%s", printed)
	}
	file := filepath.Join(t.TempDir(), "printed.yaml")
	os.WriteFile(file, out.Bytes(), 0o644)
	cfg, err := loadConfig([]string{"--config", file}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("printed configuration does not load back: %v\n%s", err, printed)
	}
	if cfg.Jaeger != "j:4318" || cfg.JaegerProtocol != "otlp-http" || cfg.QueueSpans != 50000 || cfg.AlsoListen.String() != ":9411" || cfg.ExportMaxBytes != 20<<20 {
		t.Errorf("loaded back: %+v", cfg)
	}
}
