package deploy

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// helmRenderError renders the chart with values and returns the error, if
// any, as `helm template` would report it.
func helmRenderError(t *testing.T, values string) error {
	t.Helper()
	ch, err := loader.Load("helm/traceport")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "traceport", Namespace: "observability", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return err
	}
	_, err = engine.Engine{Strict: true}.Render(ch, rv)
	return err
}

// TestHelmPort: the chart refuses a port no Service or sender can name,
// and the alert text names the port traceport listens on.
func TestHelmPort(t *testing.T) {
	for _, v := range []string{"port: 0", "port: 70000", "port: -1"} {
		err := helmRenderError(t, v)
		if err == nil || !strings.Contains(err.Error(), "port") {
			t.Errorf("%s: rendered (err %v), want a refusal naming port", v, err)
		}
	}
	r := renderHelm(t, "port-9411", "observability", "port: 9411")
	rule := string(r.one(t, "PrometheusRule").Raw)
	if !strings.Contains(rule, "traceport:9411") || strings.Contains(rule, "4317") {
		t.Errorf("PrometheusRule with port 9411 does not follow the port:\n%s", rule)
	}
}
