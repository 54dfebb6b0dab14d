package deploy

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.yaml with the current renderings")

// Helm values that make the chart render what kustomize's mesh overlay plus
// the example-app overlay render.
const helmFullValues = `
namespace:
  create: true
networkPolicy:
  appNamespaces: [shop]
`

// renderings returns every rendering this repo documents, keyed by a short name.
func renderings(t *testing.T) map[string]rendering {
	t.Helper()
	return map[string]rendering{
		"kustomize-mesh":        renderKustomize(t, "overlays/mesh"),
		"kustomize-hostport":    renderKustomize(t, "overlays/hostport"),
		"kustomize-example-app": renderKustomize(t, "overlays/example-app"),
		"kustomize-migration":   renderKustomize(t, "overlays/migration"),
		"kustomize-kafka":       renderKustomize(t, "overlays/kafka"),
		"helm-kafka":            renderHelm(t, "kafka", "observability", helmKafkaValues),
		"helm-default":          renderHelm(t, "default", "observability", ""),
		"helm-full":             renderHelm(t, "full", "observability", helmFullValues),
		"helm-hostport-1Gi": renderHelm(t, "hostport-1Gi", "observability", `
hostPort: {enabled: true}
resources: {limits: {memory: 1Gi}}
`),
	}
}

// TestGolden keeps the rendered manifests in testdata/, so a review sees
// what a template change does to the objects (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for name, r := range renderings(t) {
		path := filepath.Join("testdata", name+".yaml")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, r.YAML, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		if string(want) != string(r.YAML) {
			t.Errorf("%s differs from the rendering; run go test -update and review the diff", path)
		}
	}
}

// TestSameObjects: kustomize and Helm install the same objects with the same
// specs, apart from what each tool adds by itself.
func TestSameObjects(t *testing.T) {
	rs := renderings(t)
	kust := normalizedSet(t, rs["kustomize-mesh"], rs["kustomize-example-app"])
	helm := normalizedSet(t, rs["helm-full"])
	compareSets(t, "kustomize mesh+example-app", kust, "helm full", helm)

	// Default values: everything but the Namespace object and app policies.
	for k := range kust {
		if strings.HasPrefix(k, "Namespace/") || strings.HasPrefix(k, "NetworkPolicy/shop/") {
			delete(kust, k)
		}
	}
	compareSets(t, "kustomize mesh without Namespace and app policy", kust, "helm default", normalizedSet(t, rs["helm-default"]))
}

func compareSets(t *testing.T, an string, a map[string]map[string]any, bn string, b map[string]map[string]any) {
	t.Helper()
	keys := func(m map[string]map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if ka, kb := keys(a), keys(b); !slices.Equal(ka, kb) {
		t.Errorf("object sets differ:\n%s: %v\n%s: %v", an, ka, bn, kb)
	}
	for k, ao := range a {
		bo, ok := b[k]
		if !ok || reflect.DeepEqual(ao, bo) {
			continue
		}
		aj, _ := json.MarshalIndent(ao, "", "  ")
		bj, _ := json.MarshalIndent(bo, "", "  ")
		t.Errorf("%s differs:\n--- %s\n%s\n--- %s\n%s", k, an, aj, bn, bj)
	}
}

var kustomizeHash = regexp.MustCompile(`^(traceport-config)-[a-z0-9]{10}$`)

// normalizedSet turns objects into generic maps keyed by kind/namespace/name,
// without what only one tool adds: Helm's chart labels and config checksum,
// kustomize's ConfigMap name hash, and GOMEMLIMIT (kustomize takes the limit,
// Helm 90% of it; TestDaemonSet checks both).
func normalizedSet(t *testing.T, rs ...rendering) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range rs {
		for _, o := range r.Objects {
			var m map[string]any
			if err := yaml.Unmarshal(o.Raw, &m); err != nil {
				t.Fatal(err)
			}
			meta := m["metadata"].(map[string]any)
			if ls, ok := meta["labels"].(map[string]any); ok {
				delete(ls, "helm.sh/chart")
				delete(ls, "app.kubernetes.io/managed-by")
			}
			name := kustomizeHash.ReplaceAllString(o.Name, "$1")
			meta["name"] = name
			switch o.Kind {
			case "ConfigMap":
				data := m["data"].(map[string]any)
				if c, ok := data["config.yaml"].(string); ok {
					var parsed any
					if err := yaml.Unmarshal([]byte(c), &parsed); err != nil {
						t.Fatalf("%s: %s config.yaml: %v", r.Source, o.Name, err)
					}
					data["config.yaml"] = parsed
				}
			case "DaemonSet":
				tmpl := dig(m, "spec", "template").(map[string]any)
				delete(dig(tmpl, "metadata", "annotations").(map[string]any), "checksum/config")
				pod := tmpl["spec"].(map[string]any)
				for _, v := range pod["volumes"].([]any) {
					if cm, ok := v.(map[string]any)["configMap"].(map[string]any); ok {
						cm["name"] = kustomizeHash.ReplaceAllString(cm["name"].(string), "$1")
					}
				}
				for _, c := range pod["containers"].([]any) {
					c := c.(map[string]any)
					c["env"] = slices.DeleteFunc(c["env"].([]any), func(e any) bool {
						return e.(map[string]any)["name"] == "GOMEMLIMIT"
					})
				}
			}
			out[o.Kind+"/"+o.Namespace+"/"+name] = m
		}
	}
	return out
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	return v
}

// onePort is what every rendering must agree on: the DaemonSet's single
// container port, by number and name.
type onePort struct {
	Number int32
	Name   string
}

func (p onePort) matches(v intstr.IntOrString) bool {
	if v.Type == intstr.String {
		return v.StrVal == p.Name
	}
	return v.IntVal == p.Number
}

// TestOnePort checks the point of traceport: a single port, named identically
// by the container, config, Service, probes, PodMonitor and every
// NetworkPolicy rule that lets traffic reach traceport.
func TestOnePort(t *testing.T) {
	rs := renderings(t)
	appPolicy := rs["kustomize-example-app"]
	for _, name := range []string{"kustomize-mesh", "kustomize-hostport", "helm-full", "helm-default", "helm-hostport-1Gi", "kustomize-kafka", "helm-kafka"} {
		r := rs[name]
		t.Run(name, func(t *testing.T) {
			ds := r.one(t, "DaemonSet").Typed.(*appsv1.DaemonSet)
			c := ds.Spec.Template.Spec.Containers[0]
			if len(c.Ports) != 1 {
				t.Fatalf("container ports %v, want exactly one", c.Ports)
			}
			port := onePort{c.Ports[0].ContainerPort, c.Ports[0].Name}

			cfg := traceportConfig(t, r)
			if cfg["listen"] != fmt.Sprintf(":%d", port.Number) {
				t.Errorf("config listen %v, container port %d", cfg["listen"], port.Number)
			}
			if _, ok := cfg["also-listen"]; ok {
				t.Errorf("also-listen outside the migration overlay: %v", cfg["also-listen"])
			}

			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil || !port.matches(p.HTTPGet.Port) {
					t.Errorf("probe %+v not on the one port %v", p, port)
				}
			}

			svc := r.one(t, "Service").Typed.(*corev1.Service)
			if len(svc.Spec.Ports) != 1 {
				t.Fatalf("Service ports %v, want one", svc.Spec.Ports)
			}
			sp := svc.Spec.Ports[0]
			if sp.Port != port.Number || !port.matches(sp.TargetPort) {
				t.Errorf("Service port %d -> %v, container port %v", sp.Port, sp.TargetPort.String(), port)
			}
			if sp.AppProtocol == nil || *sp.AppProtocol != "grpc" || !strings.HasPrefix(sp.Name, "grpc") {
				t.Errorf("Service port name %q appProtocol %q: want grpc (see README, Istio protocol selection)", sp.Name, ptrString(sp.AppProtocol))
			}
			if svc.Spec.InternalTrafficPolicy == nil || *svc.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal {
				t.Errorf("Service internalTrafficPolicy %v, want Local", deref(svc.Spec.InternalTrafficPolicy))
			}
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
				t.Errorf("Service selector %v does not select the DaemonSet's pods", svc.Spec.Selector)
			}

			for _, o := range r.all("PodMonitor") {
				for _, ep := range podMonitorPorts(o) {
					if ep != port.Name {
						t.Errorf("PodMonitor scrapes port %q, want %q", ep, port.Name)
					}
				}
			}

			// Every rule that lets traffic reach a traceport pod: exactly the one port.
			sources := []rendering{r}
			if !strings.HasPrefix(name, "helm-full") {
				sources = append(sources, appPolicy)
			}
			ns := ds.Namespace
			podLabels := labels.Set(ds.Spec.Template.Labels)
			nsLabels := labels.Set{"kubernetes.io/metadata.name": ns}
			var toTraceport int
			for _, src := range sources {
				for _, o := range src.all("NetworkPolicy") {
					np := o.Typed.(*networkingv1.NetworkPolicy)
					if np.Namespace == ns && selects(t, &np.Spec.PodSelector, podLabels) {
						for _, rule := range np.Spec.Ingress {
							toTraceport++
							checkRulePorts(t, o.key()+" ingress", rule.Ports, port)
						}
						checkEgress(t, np, cfg)
					}
					for _, rule := range np.Spec.Egress {
						if peersReach(t, rule.To, np.Namespace, ns, nsLabels, podLabels) {
							toTraceport++
							checkRulePorts(t, o.key()+" egress", rule.Ports, port)
							checkDNS(t, o.key(), np)
						}
					}
				}
			}
			if toTraceport < 2 {
				t.Errorf("%d NetworkPolicy rules allow traffic to traceport, want the ingress and the app egress", toTraceport)
			}
		})
	}
}

func checkRulePorts(t *testing.T, where string, ports []networkingv1.NetworkPolicyPort, port onePort) {
	t.Helper()
	if len(ports) != 1 {
		t.Errorf("%s: %d ports, want exactly the one port %d", where, len(ports), port.Number)
		return
	}
	p := ports[0]
	if p.Port == nil || !port.matches(*p.Port) || p.EndPort != nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
		t.Errorf("%s: port %v, want TCP %d", where, p.Port, port.Number)
	}
}

// checkEgress: traceport itself may reach its destination's ports (Jaeger's
// collector, or the Kafka brokers) and DNS only.
func checkEgress(t *testing.T, np *networkingv1.NetworkPolicy, cfg map[string]any) {
	t.Helper()
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("%s: no Egress policy type: traceport's egress is unrestricted", np.Name)
		return
	}
	want := destinationPorts(t, cfg)
	var sawDest bool
	for _, rule := range np.Spec.Egress {
		if isDNSRule(rule) {
			continue
		}
		for _, p := range rule.Ports {
			if p.Port == nil || !want[p.Port.IntValue()] || p.EndPort != nil {
				t.Errorf("%s: egress rule %v is neither DNS nor the destination's ports %v", np.Name, rule.Ports, want)
			}
		}
		if len(rule.Ports) == 0 || len(rule.To) == 0 {
			t.Errorf("%s: egress rule %v open to every port or destination", np.Name, rule)
		}
		sawDest = true
	}
	if !sawDest {
		t.Errorf("%s: no egress rule to the destination's ports %v", np.Name, want)
	}
	checkDNS(t, np.Name, np)
}

func isDNSRule(r networkingv1.NetworkPolicyEgressRule) bool {
	var udp, tcp bool
	for _, p := range r.Ports {
		if p.Port == nil || p.Port.IntValue() != 53 {
			return false
		}
		if p.Protocol != nil && *p.Protocol == corev1.ProtocolUDP {
			udp = true
		} else {
			tcp = true
		}
	}
	return udp && tcp && len(r.Ports) == 2
}

func checkDNS(t *testing.T, where string, np *networkingv1.NetworkPolicy) {
	t.Helper()
	if !slices.ContainsFunc(np.Spec.Egress, isDNSRule) {
		t.Errorf("%s: no DNS egress (53 UDP and TCP): senders could not resolve traceport's Service", where)
	}
}

func selects(t *testing.T, s *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel.Matches(set)
}

// peersReach reports whether an egress rule from policyNS lets traffic reach
// pods with podLabels in namespace ns.
func peersReach(t *testing.T, peers []networkingv1.NetworkPolicyPeer, policyNS, ns string, nsLabels, podLabels labels.Set) bool {
	t.Helper()
	if len(peers) == 0 {
		return false // everything: not a rule about traceport
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			continue
		}
		nsOK := p.NamespaceSelector == nil && policyNS == ns ||
			p.NamespaceSelector != nil && selects(t, p.NamespaceSelector, nsLabels)
		podOK := p.PodSelector == nil || selects(t, p.PodSelector, podLabels)
		if nsOK && podOK && (p.PodSelector != nil && len(p.PodSelector.MatchLabels)+len(p.PodSelector.MatchExpressions) > 0) {
			return true
		}
	}
	return false
}

// traceportConfig returns the parsed config.yaml of the rendering's ConfigMap
// that the DaemonSet mounts.
func traceportConfig(t *testing.T, r rendering) map[string]any {
	t.Helper()
	raw := traceportConfigRaw(t, r)
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(raw), &cfg); err != nil {
		t.Fatalf("%s: config.yaml: %v", r.Source, err)
	}
	return cfg
}

func traceportConfigRaw(t *testing.T, r rendering) string {
	t.Helper()
	ds := r.one(t, "DaemonSet").Typed.(*appsv1.DaemonSet)
	var cmName string
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	for _, o := range r.all("ConfigMap") {
		if o.Name == cmName && o.Namespace == ds.Namespace {
			cfg, ok := o.Typed.(*corev1.ConfigMap).Data["config.yaml"]
			if !ok {
				t.Fatalf("%s: ConfigMap %s has no config.yaml", r.Source, cmName)
			}
			return cfg
		}
	}
	t.Fatalf("%s: DaemonSet mounts ConfigMap %q, not rendered", r.Source, cmName)
	return ""
}

// TestDaemonSet checks the pod settings the issue asks for.
func TestDaemonSet(t *testing.T) {
	rs := renderings(t)
	for _, name := range []string{"kustomize-mesh", "helm-default", "helm-hostport-1Gi", "kustomize-hostport", "kustomize-migration", "kustomize-kafka", "helm-kafka"} {
		r := rs[name]
		t.Run(name, func(t *testing.T) {
			ds := r.one(t, "DaemonSet").Typed.(*appsv1.DaemonSet)
			pod := ds.Spec.Template.Spec
			c := pod.Containers[0]
			if len(pod.Containers) != 1 {
				t.Errorf("%d containers, want 1", len(pod.Containers))
			}

			cfg := traceportConfig(t, r)
			shutdown := 20 * time.Second
			if s, ok := cfg["shutdown-timeout"].(string); ok {
				d, err := time.ParseDuration(s)
				if err != nil {
					t.Fatalf("shutdown-timeout %q: %v", s, err)
				}
				shutdown = d
			}
			if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < shutdown+5*time.Second {
				t.Errorf("terminationGracePeriodSeconds %v, want >= shutdown-timeout %v + 5s so the flush is not killed", deref(g), shutdown)
			}

			if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("probes %s / %s, want /healthz liveness and /readyz readiness", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
			}

			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("container securityContext %+v: want read-only root, no privilege escalation, non-root, drop ALL", sc)
			}
			if psc := pod.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
				t.Errorf("pod securityContext %+v: want a non-zero runAsUser (distroless nonroot is 65532)", psc)
			}

			if !slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
				return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
			}) {
				t.Errorf("tolerations %v: want {operator: Exists} to run on every node", pod.Tolerations)
			}
			if ds.Spec.Template.Annotations["sidecar.istio.io/inject"] != "false" {
				t.Errorf("pod annotation sidecar.istio.io/inject = %q, want \"false\"", ds.Spec.Template.Annotations["sidecar.istio.io/inject"])
			}

			limit, ok := c.Resources.Limits[corev1.ResourceMemory]
			if !ok || c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
				t.Fatalf("resources %+v: want requests and a memory limit", c.Resources)
			}
			checkGoMemLimit(t, strings.HasPrefix(name, "helm"), c, limit)

			wantHostPort := strings.Contains(name, "hostport")
			if got := c.Ports[0].HostPort != 0; got != wantHostPort {
				t.Errorf("hostPort %d, want set: %v", c.Ports[0].HostPort, wantHostPort)
			}
			if wantHostPort && c.Ports[0].HostPort != c.Ports[0].ContainerPort {
				t.Errorf("hostPort %d != containerPort %d", c.Ports[0].HostPort, c.Ports[0].ContainerPort)
			}
		})
	}
}

// checkGoMemLimit: kustomize passes the limit through resourceFieldRef (bytes,
// which GOMEMLIMIT accepts without a suffix); Helm writes 90% of it in MiB.
func checkGoMemLimit(t *testing.T, helm bool, c corev1.Container, limit resource.Quantity) {
	t.Helper()
	var env *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "GOMEMLIMIT" {
			env = &c.Env[i]
		}
	}
	if env == nil {
		t.Fatal("no GOMEMLIMIT env")
	}
	if helm {
		want := fmt.Sprintf("%dMiB", limit.Value()*90/100/(1<<20))
		if env.Value != want {
			t.Errorf("GOMEMLIMIT %q, want %s (90%% of %s)", env.Value, want, limit.String())
		}
		return
	}
	ref := env.ValueFrom
	if ref == nil || ref.ResourceFieldRef == nil || ref.ResourceFieldRef.Resource != "limits.memory" ||
		ref.ResourceFieldRef.ContainerName != c.Name ||
		(!ref.ResourceFieldRef.Divisor.IsZero() && ref.ResourceFieldRef.Divisor.Value() != 1) {
		t.Errorf("GOMEMLIMIT %+v: want resourceFieldRef limits.memory of %s with divisor 1 (bytes)", env, c.Name)
	}
}

// TestIstio: both extension providers address the Service's one port, the
// Telemetry enables one of them, and the app env reaches the same port.
func TestIstio(t *testing.T) {
	rs := renderings(t)
	op := readObjects(t, "istio/istio-operator.yaml").one(t, "IstioOperator").Typed.(*istioOperator)
	providers := map[string]bool{}
	var sawZipkin, sawOtel bool
	for _, svcR := range []rendering{rs["kustomize-mesh"], rs["helm-default"]} {
		svc := svcR.one(t, "Service").Typed.(*corev1.Service)
		host := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace)
		port := uint32(svc.Spec.Ports[0].Port)
		for _, p := range op.Parsed.ExtensionProviders {
			providers[p.Name] = true
			switch {
			case p.GetZipkin() != nil:
				sawZipkin = true
				z := p.GetZipkin()
				if z.Service != host || z.Port != port {
					t.Errorf("provider %s: zipkin %s:%d, Service is %s:%d", p.Name, z.Service, z.Port, host, port)
				}
			case p.GetOpentelemetry() != nil:
				sawOtel = true
				o := p.GetOpentelemetry()
				if o.Service != host || o.Port != port || o.GetHttp() != nil {
					t.Errorf("provider %s: opentelemetry %s:%d (http %v), want gRPC to %s:%d", p.Name, o.Service, o.Port, o.GetHttp(), host, port)
				}
			default:
				t.Errorf("provider %s: neither zipkin nor opentelemetry", p.Name)
			}
		}
	}
	if !sawZipkin || !sawOtel {
		t.Errorf("meshConfig.extensionProviders: zipkin %v, opentelemetry %v; want both", sawZipkin, sawOtel)
	}

	for _, name := range []string{"kustomize-mesh", "helm-default"} {
		tel := rs[name].one(t, "Telemetry").Typed.(*telemetry)
		if tel.Namespace != "istio-system" {
			t.Errorf("%s: Telemetry in %q, want the root namespace istio-system (mesh-wide)", name, tel.Namespace)
		}
		if len(tel.Parsed.Tracing) == 0 {
			t.Fatalf("%s: Telemetry without tracing", name)
		}
		for _, tr := range tel.Parsed.Tracing {
			if len(tr.Providers) != 1 || !providers[tr.Providers[0].Name] {
				t.Errorf("%s: Telemetry providers %v, want one of meshConfig's %v", name, tr.Providers, providers)
			}
			if p := tr.RandomSamplingPercentage; p == nil || p.Value <= 0 || p.Value > 100 {
				t.Errorf("%s: randomSamplingPercentage %v, want (0, 100]", name, p)
			}
		}
	}

	dep := readObjects(t, "istio/app-env-patch.yaml").one(t, "Deployment").Typed.(*appsv1.Deployment)
	env := map[string]string{}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	svc := rs["kustomize-mesh"].one(t, "Service").Typed.(*corev1.Service)
	wantEndpoint := fmt.Sprintf("http://%s.%s.svc.cluster.local:%d", svc.Name, svc.Namespace, svc.Spec.Ports[0].Port)
	if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != wantEndpoint {
		t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT %q, want %q", env["OTEL_EXPORTER_OTLP_ENDPOINT"], wantEndpoint)
	}
	props := strings.Split(env["OTEL_PROPAGATORS"], ",")
	for _, p := range []string{"tracecontext", "baggage", "b3multi"} {
		if !slices.Contains(props, p) {
			t.Errorf("OTEL_PROPAGATORS %q lacks %s", env["OTEL_PROPAGATORS"], p)
		}
	}
	if env["OTEL_EXPORTER_OTLP_PROTOCOL"] != "grpc" {
		t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q, want grpc (the endpoint is the gRPC port)", env["OTEL_EXPORTER_OTLP_PROTOCOL"])
	}
}

// TestSharedFiles: the chart cannot read files outside its directory, so the
// dashboard is copied; the copies must not drift.
func TestSharedFiles(t *testing.T) {
	a, err := os.ReadFile("kustomize/components/prometheus/traceport.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("helm/traceport/dashboards/traceport.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Error("helm/traceport/dashboards/traceport.json differs from kustomize/components/prometheus/traceport.json; copy one over the other")
	}
}

func podMonitorPorts(o object) []string {
	var out []string
	for _, ep := range o.Typed.(*monitoringv1.PodMonitor).Spec.PodMetricsEndpoints {
		out = append(out, ptrString(ep.Port))
	}
	return out
}
