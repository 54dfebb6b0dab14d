package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	telemetryv1 "istio.io/api/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object, strictly decoded.
type object struct {
	Kind, Namespace, Name string
	Raw                   []byte // the YAML document as rendered
	Typed                 any    // *appsv1.DaemonSet, *corev1.Service, ...
}

func (o object) key() string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

// rendering is the object list of one kustomize build or helm template.
type rendering struct {
	Source  string
	YAML    []byte
	Objects []object
}

func (r rendering) all(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of kind, failing the test otherwise.
func (r rendering) one(t *testing.T, kind string) object {
	t.Helper()
	os := r.all(kind)
	if len(os) != 1 {
		t.Fatalf("%s: %d objects of kind %s, want 1", r.Source, len(os), kind)
	}
	return os[0]
}

// telemetry is Istio's Telemetry resource; its spec is decoded with protojson
// into the istio.io/api message, which rejects unknown fields.
type telemetry struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage        `json:"spec"`
	Parsed            *telemetryv1.Telemetry `json:"-"`
}

// istioOperator is the part of IstioOperator this repo ships: meshConfig,
// decoded with protojson into Istio's MeshConfig message.
type istioOperator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	} `json:"spec"`
	Parsed *meshv1alpha1.MeshConfig `json:"-"`
}

// kinds maps apiVersion/kind to the Go type every rendered object must decode into.
var kinds = map[string]func() any{
	"v1/Namespace":                        func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                   func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                        func() any { return &corev1.ConfigMap{} },
	"v1/Service":                          func() any { return &corev1.Service{} },
	"apps/v1/DaemonSet":                   func() any { return &appsv1.DaemonSet{} },
	"apps/v1/Deployment":                  func() any { return &appsv1.Deployment{} },
	"networking.k8s.io/v1/NetworkPolicy":  func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/PodMonitor": func() any { return &monitoringv1.PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any {
		return &monitoringv1.PrometheusRule{}
	},
	"telemetry.istio.io/v1/Telemetry":         func() any { return &telemetry{} },
	"install.istio.io/v1alpha1/IstioOperator": func() any { return &istioOperator{} },
	"kafka.strimzi.io/v1beta2/KafkaTopic":     func() any { return &kafkaTopic{} },
}

// decodeStrict decodes one YAML document into its API type; unknown fields,
// duplicate keys and unknown kinds are errors.
func decodeStrict(doc []byte) (object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return object{}, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return object{}, fmt.Errorf("unexpected apiVersion/kind %s/%s", tm.APIVersion, tm.Kind)
	}
	typed := newObj()
	// The API server's own strict decoding: case-sensitive field names (plain
	// encoding/json would take readOnlyRootFileSystem), no unknown or
	// duplicate fields.
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, typed, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return object{}, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return object{}, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strictErrs...))
	}
	var meta metav1.ObjectMeta
	switch o := typed.(type) {
	case *telemetry:
		o.Parsed = &telemetryv1.Telemetry{}
		if err := protojson.Unmarshal(o.Spec, o.Parsed); err != nil {
			return object{}, fmt.Errorf("Telemetry %s spec: %w", o.Name, err)
		}
		meta = o.ObjectMeta
	case *istioOperator:
		o.Parsed = &meshv1alpha1.MeshConfig{}
		if err := protojson.Unmarshal(o.Spec.MeshConfig, o.Parsed); err != nil {
			return object{}, fmt.Errorf("IstioOperator %s meshConfig: %w", o.Name, err)
		}
		meta = o.ObjectMeta
	default:
		m, err := metaOf(typed)
		if err != nil {
			return object{}, err
		}
		meta = m
	}
	if meta.Name == "" {
		return object{}, fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	return object{Kind: tm.Kind, Namespace: meta.Namespace, Name: meta.Name, Raw: doc, Typed: typed}, nil
}

func metaOf(typed any) (metav1.ObjectMeta, error) {
	type hasMeta interface{ GetObjectMeta() metav1.Object }
	o, ok := typed.(hasMeta)
	if !ok {
		return metav1.ObjectMeta{}, fmt.Errorf("%T has no ObjectMeta", typed)
	}
	m := o.GetObjectMeta()
	return metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace()}, nil
}

// decodeAll splits a multi-document YAML stream and decodes each document.
func decodeAll(t *testing.T, source string, stream []byte) rendering {
	t.Helper()
	r := rendering{Source: source, YAML: stream}
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: split documents: %v", source, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		o, err := decodeStrict(doc)
		if err != nil {
			t.Errorf("%s: %v\n%s", source, err, doc)
			continue
		}
		r.Objects = append(r.Objects, o)
	}
	if len(r.Objects) == 0 {
		t.Fatalf("%s: rendered no object", source)
	}
	seen := map[string]bool{}
	for _, o := range r.Objects {
		if seen[o.key()] {
			t.Errorf("%s: %s rendered twice", source, o.key())
		}
		seen[o.key()] = true
	}
	return r
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// renderKustomize runs kustomize build on a directory under deploy/kustomize.
func renderKustomize(t *testing.T, dir string) rendering {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("kustomize", dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return decodeAll(t, "kustomize "+dir, y)
}

// renderHelm runs the equivalent of
// `helm template traceport helm/traceport -n namespace -f values`.
func renderHelm(t *testing.T, name, namespace, values string) rendering {
	t.Helper()
	ch, err := loader.Load("helm/traceport")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("values %s: %v", name, err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: "traceport", Namespace: namespace, Revision: 1, IsInstall: true, IsUpgrade: false,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("helm values %s: %v", name, err)
	}
	files, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		t.Fatalf("helm template %s: %v", name, err)
	}
	names := make([]string, 0, len(files))
	for f := range files {
		if !strings.HasSuffix(f, "NOTES.txt") {
			names = append(names, f)
		}
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, f := range names {
		if strings.TrimSpace(files[f]) == "" {
			continue
		}
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", f, strings.TrimPrefix(files[f], "\n"))
	}
	return decodeAll(t, "helm "+name, b.Bytes())
}

// readObjects decodes the objects of a plain YAML file of this repo.
func readObjects(t *testing.T, path string) rendering {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, path, b)
}
