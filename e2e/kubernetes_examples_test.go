package e2e

// Checks of the deployment examples that run the binary: the Kubernetes manifests in
// examples/kubernetes/, started the way the kubelet would, and the Prometheus configurations
// that use /sd and /probe. (kubernetes_test.go decodes the manifests and the Helm chart's
// renders into Kubernetes' own types and holds them to the rules; the types below are only
// what running the pods needs.)
//
// The manifests are held to the image and the binary they run: the image tag is the VERSION
// file's, the port is the Dockerfile's EXPOSE and the binary's default listen address, the
// probes hit /-/healthy and /-/ready on that port, every argument is a flag the binary
// accepts, the ConfigMap's config passes --config.check, the credentials come from the
// Secret, and the shards of the StatefulSet split the tasks. The checks that build and run
// the binary are skipped with -short.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

const (
	k8sDir = root + "/examples/kubernetes"
	// The binary's defaults, as main.go sets them; TestKubernetesManifestsAgainstBinary reads
	// them back from --help.
	k8sDefaultListen      = ":39107"
	k8sDefaultMetricsPath = "/metrics"
	// The StatefulSet controller's label with the pod's ordinal (Kubernetes 1.28+).
	k8sPodIndexField = "metadata.labels['apps.kubernetes.io/pod-index']"
)

// k8sProjectsDir is the directory under examples/kubernetes/ of the objects for several
// projects: an alternative to the one-project ConfigMap, Secret and Deployment, with the
// one-project files of k8sProjectsReused.
const k8sProjectsDir = "projects"

// The one-project files the projects variant applies as they are.
var k8sProjectsReused = []string{"service.yaml", "servicemonitor.yaml", "prometheusrule.yaml"}

// k8sProjectsFiles lists the files a user applies for several projects.
func k8sProjectsFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, k8sProjectsDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s/%s: %v", k8sDir, k8sProjectsDir, err)
	}
	for _, f := range k8sProjectsReused {
		files = append(files, filepath.Join(k8sDir, f))
	}
	return files
}

// The kinds the examples may use, with their apiVersion. Another kind must be added here
// (and, if it runs or exposes the exporter, checked below).
var k8sKinds = map[string]string{
	"ConfigMap":      "v1",
	"Secret":         "v1",
	"Service":        "v1",
	"Deployment":     "apps/v1",
	"StatefulSet":    "apps/v1",
	"ServiceMonitor": "monitoring.coreos.com/v1",
	"PrometheusRule": "monitoring.coreos.com/v1",
}

// The Kubernetes objects, reduced to the fields the examples use. They are decoded with
// unknown fields refused, so a misspelt field (which kubectl would reject) fails here too.

type k8sMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type k8sHeader struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	// where: file and document number, for messages
	where string
}

func (h *k8sHeader) setWhere(where string) { h.where = where }

type k8sConfigMap struct {
	k8sHeader `yaml:",inline"`
	Data      map[string]string `yaml:"data"`
}

type k8sSecret struct {
	k8sHeader  `yaml:",inline"`
	Type       string            `yaml:"type"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

type k8sService struct {
	k8sHeader `yaml:",inline"`
	Spec      struct {
		Type                     string            `yaml:"type"`
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []k8sServicePort  `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sServicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort any    `yaml:"targetPort"` // a number or a port name
	Protocol   string `yaml:"protocol"`
}

type k8sServiceMonitor struct {
	k8sHeader `yaml:",inline"`
	Spec      struct {
		Selector          k8sSelector      `yaml:"selector"`
		NamespaceSelector map[string]any   `yaml:"namespaceSelector"`
		Endpoints         []map[string]any `yaml:"endpoints"`
	} `yaml:"spec"`
}

type k8sSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sWorkload struct { // Deployment or StatefulSet
	k8sHeader `yaml:",inline"`
	Spec      struct {
		Replicas             *int           `yaml:"replicas"`
		RevisionHistoryLimit *int           `yaml:"revisionHistoryLimit"`
		Strategy             map[string]any `yaml:"strategy"`            // Deployment
		ServiceName          string         `yaml:"serviceName"`         // StatefulSet
		PodManagementPolicy  string         `yaml:"podManagementPolicy"` // StatefulSet
		UpdateStrategy       map[string]any `yaml:"updateStrategy"`      // StatefulSet
		Selector             k8sSelector    `yaml:"selector"`
		Template             struct {
			Metadata k8sMeta    `yaml:"metadata"`
			Spec     k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPodSpec struct {
	AutomountServiceAccountToken  *bool              `yaml:"automountServiceAccountToken"`
	ServiceAccountName            string             `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds *int               `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               k8sSecurityContext `yaml:"securityContext"`
	Containers                    []k8sContainer     `yaml:"containers"`
	Volumes                       []k8sVolume        `yaml:"volumes"`
}

type k8sVolume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
}

// k8sSecurityContext is the union of the pod's and the container's fields used here.
type k8sSecurityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	RunAsGroup               *int64 `yaml:"runAsGroup"`
	FSGroup                  *int64 `yaml:"fsGroup"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type k8sContainer struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Env            []k8sEnvVar `yaml:"env"`
	LivenessProbe  *k8sProbe   `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe   `yaml:"readinessProbe"`
	StartupProbe   *k8sProbe   `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext k8sSecurityContext `yaml:"securityContext"`
	VolumeMounts    []k8sVolumeMount   `yaml:"volumeMounts"`
}

type k8sEnvVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name     string `yaml:"name"`
			Key      string `yaml:"key"`
			Optional *bool  `yaml:"optional"`
		} `yaml:"secretKeyRef"`
		FieldRef *struct {
			APIVersion string `yaml:"apiVersion"`
			FieldPath  string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type k8sVolumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path        string              `yaml:"path"`
		Port        any                 `yaml:"port"`
		Scheme      string              `yaml:"scheme"`
		HTTPHeaders []map[string]string `yaml:"httpHeaders"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	SuccessThreshold    int `yaml:"successThreshold"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

// k8sManifests is every object of the examples, by kind.
type k8sManifests struct {
	name       string // the set: "one project" or "projects"
	configMaps map[string]*k8sConfigMap
	secrets    map[string]*k8sSecret
	services   []*k8sService
	monitors   []*k8sServiceMonitor
	workloads  []*k8sWorkload
}

// k8sLoad parses the manifests under examples/kubernetes/, every document of each: the
// one-project objects (all but the projects directory), then the objects for several
// projects (k8sProjectsFiles). Each set is applied on its own, so a name is unique per set.
func k8sLoad(t *testing.T) []*k8sManifests {
	t.Helper()
	var plain []string
	err := filepath.WalkDir(k8sDir, func(name string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && name == filepath.Join(k8sDir, k8sProjectsDir) {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || (!strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml")) {
			return err
		}
		plain = append(plain, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) == 0 {
		t.Fatalf("no manifests under %s", k8sDir)
	}
	return []*k8sManifests{k8sLoadFiles(t, "one project", plain), k8sLoadFiles(t, "projects", k8sProjectsFiles(t))}
}

// k8sLoadFiles parses one set of manifests.
func k8sLoadFiles(t *testing.T, set string, names []string) *k8sManifests {
	t.Helper()
	m := &k8sManifests{name: set, configMaps: map[string]*k8sConfigMap{}, secrets: map[string]*k8sSecret{}}
	seen := map[string]string{} // kind/name -> where
	for _, name := range names {
		if err := k8sLoadFile(m, seen, name); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// k8sLoadFile adds the objects of one file to m.
func k8sLoadFile(m *k8sManifests, seen map[string]string, name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: document %d: %v", name, i, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // an empty document, as after a trailing ---
		}
		where := fmt.Sprintf("%s (document %d)", name, i)
		var h k8sHeader
		if err := doc.Decode(&h); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		want, known := k8sKinds[h.Kind]
		switch {
		case h.Kind == "" || h.APIVersion == "" || h.Metadata.Name == "":
			return fmt.Errorf("%s: not a Kubernetes object: apiVersion, kind and metadata.name are required", where)
		case !known:
			return fmt.Errorf("%s: kind %s is not one the test knows: add it to k8sKinds", where, h.Kind)
		case h.APIVersion != want:
			return fmt.Errorf("%s: %s has apiVersion %q, want %q", where, h.Kind, h.APIVersion, want)
		}
		if prev, dup := seen[h.Kind+"/"+h.Metadata.Name]; dup {
			return fmt.Errorf("%s: %s %s is also defined in %s", where, h.Kind, h.Metadata.Name, prev)
		}
		seen[h.Kind+"/"+h.Metadata.Name] = where
		var obj any
		switch h.Kind {
		case "ConfigMap":
			c := &k8sConfigMap{}
			m.configMaps[h.Metadata.Name], obj = c, c
		case "Secret":
			s := &k8sSecret{}
			m.secrets[h.Metadata.Name], obj = s, s
		case "Service":
			s := &k8sService{}
			m.services, obj = append(m.services, s), s
		case "PrometheusRule":
			continue // e2e/kubernetes_test.go holds it to examples/alerts.yml
		case "ServiceMonitor":
			s := &k8sServiceMonitor{}
			m.monitors, obj = append(m.monitors, s), s
		default:
			w := &k8sWorkload{}
			m.workloads, obj = append(m.workloads, w), w
		}
		if err := k8sDecodeStrict(&doc, obj); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		obj.(interface{ setWhere(string) }).setWhere(where) // not a YAML field: after decoding
	}
	return nil
}

// k8sDecodeStrict decodes a document into v, refusing fields v does not have.
func k8sDecodeStrict(doc *yaml.Node, v any) error {
	data, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// k8sArg is one container argument, --name=value or --name.
type k8sArg struct {
	name, value string
	hasValue    bool
}

func k8sParseArgs(args []string) ([]k8sArg, error) {
	var out []k8sArg
	for _, a := range args {
		if !strings.HasPrefix(a, "--") || len(a) == 2 {
			return nil, fmt.Errorf("argument %q: want --flag=value (or --flag for a boolean)", a)
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		out = append(out, k8sArg{name: name, value: value, hasValue: hasValue})
	}
	return out, nil
}

// k8sFlag returns the value of the last --name=value among args.
func k8sFlag(args []k8sArg, name string) (string, bool) {
	value, found := "", false
	for _, a := range args {
		if a.name == name {
			value, found = a.value, true
		}
	}
	return value, found
}

// k8sDockerfile returns the Dockerfile's EXPOSEd ports, its USER, and its ENTRYPOINT.
func k8sDockerfile(t *testing.T) (expose []int, user int64, entrypoint []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	user = -1
	for _, line := range strings.Split(strings.ReplaceAll(string(data), "\\\n", " "), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "EXPOSE":
			for _, f := range fields[1:] {
				p, err := strconv.Atoi(strings.TrimSuffix(f, "/tcp"))
				if err != nil {
					t.Fatalf("Dockerfile: EXPOSE %s: %v", f, err)
				}
				expose = append(expose, p)
			}
		case "USER":
			user, err = strconv.ParseInt(strings.SplitN(fields[1], ":", 2)[0], 10, 64)
			if err != nil {
				t.Fatalf("Dockerfile: USER %s: want a numeric uid (runAsNonRoot needs one)", fields[1])
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), fields[0]))), &entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT: want the exec (JSON) form: %v", err)
			}
		}
	}
	if len(expose) == 0 || user < 0 || len(entrypoint) == 0 {
		t.Fatalf("Dockerfile: want EXPOSE, USER and ENTRYPOINT, got %v, %d, %q", expose, user, entrypoint)
	}
	return expose, user, entrypoint
}

func k8sVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		t.Fatal("VERSION is empty")
	}
	return v
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// k8sBuild builds the binary the image ships, once per test binary.
func k8sBuild(t *testing.T) string {
	t.Helper()
	return exporterBinary(t)
}

var (
	// A flag line of kingpin's --help: "  -h, --[no-]help ..." or "      --config.file=...".
	k8sHelpFlag = regexp.MustCompile(`(?m)^ {2,8}(?:-\w, )?--(\[no-\])?([\w.-]+)`)
	k8sHelpDef  = func(flag string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^ {2,8}--` + regexp.QuoteMeta(flag) + `="?([^"\s]*)"?`)
	}
)

// k8sHelp runs `<bin> --help` and returns its flags (name -> boolean) and the output.
func k8sHelp(t *testing.T, bin string) (map[string]bool, string) {
	t.Helper()
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	flags := map[string]bool{}
	for _, m := range k8sHelpFlag.FindAllStringSubmatch(string(out), -1) {
		flags[m[2]] = m[1] != ""
	}
	if !flags["help"] || len(flags) < 5 {
		t.Fatalf("cannot read the flags from --help:\n%s", out)
	}
	return flags, string(out)
}

// k8sCheckEnv is a clean environment with only the given variables, so that the developer's
// own HUAWEICLOUD_* or CLOUD_SDK_* never take part.
func k8sCheckEnv(vars map[string]string) []string {
	env := []string{}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// k8sWithEndpoint returns the config text with endpoint set to url, at the top level or in
// every entry of projects, so that the exporter started by the test never reaches the real
// cloud.
func k8sWithEndpoint(t *testing.T, text, url string) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("config is not a YAML mapping: %v", err)
	}
	setEndpoint := func(m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "endpoint" {
				m.Content[i+1].SetString(url)
				return
			}
		}
		var k, v yaml.Node
		k.SetString("endpoint")
		v.SetString(url)
		m.Content = append(m.Content, &k, &v)
	}
	root := doc.Content[0]
	projects := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "projects" && root.Content[i+1].Kind == yaml.SequenceNode {
			projects = true
			for _, p := range root.Content[i+1].Content {
				setEndpoint(p)
			}
		}
	}
	if !projects {
		setEndpoint(root)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// k8sConfigProject is a project of a config: its name and the tasks it lists.
type k8sConfigProject struct {
	Name  string   `yaml:"name"`
	Tasks []string `yaml:"tasks"`
}

// k8sConfigProjects returns the projects of a config, in order: the entries of projects, or
// the one-project form's tasks as the project "default".
func k8sConfigProjects(t *testing.T, text string) []k8sConfigProject {
	t.Helper()
	var cfg struct {
		Tasks    []string           `yaml:"tasks"`
		Projects []k8sConfigProject `yaml:"projects"`
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Projects) == 0 {
		return []k8sConfigProject{{Name: "default", Tasks: cfg.Tasks}}
	}
	return cfg.Projects
}

// k8sSecretEnv returns the container's variables that come from a Secret, with test values
// (creds' where it has one).
func k8sSecretEnv(c *k8sContainer, creds map[string]string) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env[e.Name] = creds[e.Name]
			if env[e.Name] == "" {
				env[e.Name] = "k8s-test-" + strings.ToLower(e.Name)
			}
		}
	}
	return env
}

// k8sSecretFiles writes, for every Secret volume the container mounts, the Secret's keys as
// files (test values, not the manifests' placeholders) into a directory that stands for the
// mount, and returns the config text with the mount paths moved there.
func k8sSecretFiles(t *testing.T, w *k8sWorkload, c *k8sContainer, text string) string {
	t.Helper()
	dir := t.TempDir()
	for _, vm := range c.VolumeMounts {
		for _, v := range w.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			moved := filepath.Join(dir, vm.MountPath)
			if err := os.MkdirAll(moved, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, it := range v.Secret.Items {
				value := "k8s-test-" + strings.ToLower(it.Key)
				if it.Key == "CLOUD_SDK_AK" {
					value = "K8STESTACCESSKEY" + strings.ToUpper(v.Name)
				}
				if err := os.WriteFile(filepath.Join(moved, it.Path), []byte(value), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			text = strings.ReplaceAll(text, strings.TrimSuffix(vm.MountPath, "/")+"/", moved+"/")
		}
	}
	return text
}

// TestKubernetesManifestsAgainstBinary builds the binary and holds the manifests to it: every
// argument is one of its flags, its default port is the container's, the ConfigMap's config
// passes --config.check, and each pod, started the way the kubelet would start it, answers
// its probes; the StatefulSet's pods list every configured task on /sd exactly once.
func TestKubernetesManifestsAgainstBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := k8sBuild(t)
	flags, help := k8sHelp(t, bin)

	if d := k8sHelpDef("web.listen-address").FindStringSubmatch(help); d == nil || d[1] != k8sDefaultListen {
		t.Errorf("the binary's default --web.listen-address is %v, the manifests use %s", d, k8sDefaultListen)
	}
	if d := k8sHelpDef("web.telemetry-path").FindStringSubmatch(help); d == nil || d[1] != k8sDefaultMetricsPath {
		t.Errorf("the binary's default --web.telemetry-path is %v, the manifests use %s", d, k8sDefaultMetricsPath)
	}

	for _, m := range k8sLoad(t) {
		t.Run(m.name, func(t *testing.T) { k8sCheckAgainstBinary(t, m, bin, flags) })
	}
}

// k8sCheckAgainstBinary holds one set of manifests to the binary (see
// TestKubernetesManifestsAgainstBinary).
func k8sCheckAgainstBinary(t *testing.T, m *k8sManifests, bin string, flags map[string]bool) {
	t.Helper()
	for _, w := range m.workloads {
		for _, c := range w.Spec.Template.Spec.Containers {
			args, err := k8sParseArgs(c.Args)
			if err != nil {
				t.Errorf("%s %s: %v", w.Kind, w.Metadata.Name, err)
				continue
			}
			for _, a := range args {
				isBool, known := flags[a.name]
				if !known && strings.HasPrefix(a.name, "no-") {
					isBool, known = flags[strings.TrimPrefix(a.name, "no-")]
					known = known && isBool
				}
				switch {
				case !known:
					t.Errorf("%s %s in %s: --%s is not a flag of the binary", w.Kind, w.Metadata.Name, w.where, a.name)
				case !isBool && !a.hasValue:
					t.Errorf("%s %s in %s: --%s needs =value", w.Kind, w.Metadata.Name, w.where, a.name)
				}
			}
		}
	}

	// The ConfigMap's config passes --config.check, with the environment each workload
	// gives the exporter and the key files of the Secrets it mounts in place.
	creds := map[string]string{"CLOUD_SDK_AK": "K8STESTACCESSKEY0000", "CLOUD_SDK_SK": "k8s-test-secret-key"}
	for _, w := range m.workloads {
		c := &w.Spec.Template.Spec.Containers[0]
		for _, v := range w.Spec.Template.Spec.Volumes {
			if v.ConfigMap == nil || m.configMaps[v.ConfigMap.Name] == nil {
				continue // checkManifestRules says if the config's ConfigMap is missing
			}
			cm := m.configMaps[v.ConfigMap.Name]
			for key, text := range cm.Data {
				if !strings.HasSuffix(key, ".yml") && !strings.HasSuffix(key, ".yaml") {
					continue
				}
				file := filepath.Join(t.TempDir(), key)
				if err := os.WriteFile(file, []byte(k8sSecretFiles(t, w, c, text)), 0o600); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(bin, "--config.check", "--config.file="+file)
				cmd.Env = k8sCheckEnv(k8sSecretEnv(c, creds))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s %s: ConfigMap %s in %s: %s fails --config.check: %v\n%s", w.Kind, w.Metadata.Name, cm.Metadata.Name, cm.where, key, err, out)
				}
			}
		}
	}
	if t.Failed() {
		return
	}

	// A MetaStudio stand-in that answers every call with an error: the pods must be healthy
	// and ready whatever the API says, and no call may leave this machine.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error_code":"MSS.000000001","error_msg":"unavailable (kubernetes_test)"}`)
	}))
	defer api.Close()

	for _, w := range m.workloads {
		replicas := 1
		if w.Spec.Replicas != nil {
			replicas = *w.Spec.Replicas
		}
		c := &w.Spec.Template.Spec.Containers[0]
		args, _ := k8sParseArgs(c.Args)
		configFile, _ := k8sFlag(args, "config.file")
		dir, file := path.Split(configFile)
		var configText string
		for _, vm := range c.VolumeMounts {
			if strings.TrimSuffix(vm.MountPath, "/") != strings.TrimSuffix(dir, "/") {
				continue
			}
			for _, v := range w.Spec.Template.Spec.Volumes {
				if v.Name == vm.Name && v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] != nil {
					configText = m.configMaps[v.ConfigMap.Name].Data[file]
				}
			}
		}
		if configText == "" {
			t.Errorf("%s %s: cannot find its config (see TestKubernetesManifests)", w.Kind, w.Metadata.Name)
			continue
		}
		projects := k8sConfigProjects(t, configText)
		config := filepath.Join(t.TempDir(), file)
		if err := os.WriteFile(config, k8sWithEndpoint(t, k8sSecretFiles(t, w, c, configText), api.URL), 0o600); err != nil {
			t.Fatal(err)
		}

		listed := map[string][]int{}      // task id -> the pods whose /sd lists it
		listedIn := map[string][]string{} // task id -> the projects /sd names for it
		named := false                    // whether /sd names a project at all
		for ordinal := range replicas {
			podName := fmt.Sprintf("%s-%d", w.Metadata.Name, ordinal)
			t.Run(w.Kind+"/"+podName, func(t *testing.T) {
				// The container's environment, as the kubelet makes it.
				env := map[string]string{}
				for _, e := range c.Env {
					switch {
					case e.ValueFrom == nil:
						env[e.Name] = e.Value
					case e.ValueFrom.SecretKeyRef != nil:
						env[e.Name] = k8sSecretEnv(c, creds)[e.Name]
					case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == k8sPodIndexField && w.Kind == "StatefulSet":
						env[e.Name] = strconv.Itoa(ordinal)
					case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
						env[e.Name] = podName
					default:
						t.Fatalf("env %s: the test does not know how the kubelet fills it", e.Name)
					}
				}
				listen := testkit.FreeAddr(t)
				run := []string{"--web.listen-address=" + listen}
				for _, a := range c.Args {
					a = k8sVarRef.ReplaceAllStringFunc(a, func(ref string) string { return env[ref[2:len(ref)-1]] })
					switch {
					case strings.HasPrefix(a, "--config.file="):
						run = append(run, "--config.file="+config)
					case strings.HasPrefix(a, "--web.listen-address="):
					default:
						run = append(run, a)
					}
				}
				cmd := exec.Command(bin, run...)
				cmd.Env = k8sCheckEnv(env)
				var out bytes.Buffer // read only once the process is gone
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				defer func() {
					_ = cmd.Process.Signal(os.Interrupt)
					select {
					case <-exited:
					case <-time.After(10 * time.Second):
						_ = cmd.Process.Kill()
						<-exited
					}
					if t.Failed() {
						t.Logf("%s %s:\n%s", bin, strings.Join(run, " "), out.String())
					}
				}()

				client := &http.Client{Timeout: 5 * time.Second}
				get := func(p string) (int, []byte, error) {
					resp, err := client.Get("http://" + listen + p)
					if err != nil {
						return 0, nil, err
					}
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					return resp.StatusCode, body, err
				}
				probes := []*k8sProbe{c.ReadinessProbe, c.LivenessProbe}
				deadline := time.Now().Add(15 * time.Second)
				for _, p := range probes {
					for {
						code, body, err := get(p.HTTPGet.Path)
						if err == nil && code == http.StatusOK {
							break
						}
						select {
						case err := <-exited:
							exited <- err
							t.Fatalf("the exporter exited (%v) before %s answered 200", err, p.HTTPGet.Path)
						default:
						}
						if time.Now().After(deadline) {
							t.Fatalf("%s: %d %s %v, want 200", p.HTTPGet.Path, code, body, err)
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
				code, body, err := get("/sd")
				if err != nil || code != http.StatusOK {
					t.Fatalf("/sd: %d %s %v", code, body, err)
				}
				var groups []struct {
					Targets []string          `json:"targets"`
					Labels  map[string]string `json:"labels"`
				}
				if err := json.Unmarshal(body, &groups); err != nil {
					t.Fatalf("/sd: %v\n%s", err, body)
				}
				for _, g := range groups {
					project, ok := g.Labels["__meta_metastudio_project"]
					named = named || ok
					for _, id := range g.Targets {
						listed[id] = append(listed[id], ordinal)
						if ok {
							listedIn[id] = append(listedIn[id], project)
						}
					}
				}
			})
		}
		// The API fails, so discovery adds nothing: the pods list the configured tasks,
		// each exactly once across all of them, under its project's name where /sd names
		// projects. An exporter whose /sd names none serves the first project only (the
		// one-project exporter reads the projects list's first entry): then only that
		// project's tasks are listed, and the check says so.
		want := projects
		if !named && len(projects) > 1 {
			t.Logf("%s %s: /sd names no project: holding it to the first project, %s, only", w.Kind, w.Metadata.Name, projects[0].Name)
			want = projects[:1]
		}
		var tasks []string
		for _, p := range want {
			tasks = append(tasks, p.Tasks...)
			for _, id := range p.Tasks {
				if len(listed[id]) != 1 {
					t.Errorf("%s %s: task %s is listed on /sd by pods %v, want exactly one", w.Kind, w.Metadata.Name, id, listed[id])
				}
				if named && !slices.Equal(listedIn[id], []string{p.Name}) {
					t.Errorf("%s %s: /sd lists task %s in projects %q, want [%s]", w.Kind, w.Metadata.Name, id, listedIn[id], p.Name)
				}
			}
		}
		for id := range listed {
			if !slices.Contains(tasks, id) {
				t.Errorf("%s %s: /sd lists %s, which is not configured", w.Kind, w.Metadata.Name, id)
			}
		}
	}
}

// The parts of a Prometheus configuration the examples are held to.
type k8sPromConfig struct {
	ScrapeConfigs []struct {
		JobName      string `yaml:"job_name"`
		MetricsPath  string `yaml:"metrics_path"`
		HTTPSDConfig []struct {
			URL string `yaml:"url"`
		} `yaml:"http_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `yaml:"source_labels"`
			TargetLabel  string   `yaml:"target_label"`
			Replacement  *string  `yaml:"replacement"`
			Regex        *string  `yaml:"regex"`
			Modulus      int      `yaml:"modulus"`
			Action       string   `yaml:"action"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

func k8sDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// k8sPromShardLine is how prometheus-sharded.yml marks the lines that differ between servers.
var k8sPromShardLine = regexp.MustCompile(`(?m)^(.*)"0"(\s*# SHARD\b.*)$`)

// TestPrometheusExamples checks examples/prometheus-probe.yml and prometheus-sharded.yml:
// /sd discovers the tasks, each is probed through /probe on the exporter, the sharded
// servers split them with hashmod, and promtool accepts every server's file.
func TestPrometheusExamples(t *testing.T) {
	_, listenPort, _ := net.SplitHostPort(k8sDefaultListen)
	files := map[string][]byte{} // file to check with promtool -> its content
	for _, name := range []string{prometheusProbeFile, prometheusShardedFile} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sharded := strings.Contains(name, "sharded")
		var cfg k8sPromConfig
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var probeJobs, selfJobs int
		modulus := 0
		for _, job := range cfg.ScrapeConfigs {
			where := name + ": job " + job.JobName
			if job.MetricsPath != "/probe" {
				// The exporter's own metrics.
				for _, sc := range job.StaticConfigs {
					for _, target := range sc.Targets {
						if _, p, err := net.SplitHostPort(target); err != nil || p != listenPort {
							t.Errorf("%s: target %q is not on the exporter's port %s", where, target, listenPort)
						}
					}
				}
				if job.MetricsPath == "" || job.MetricsPath == k8sDefaultMetricsPath {
					selfJobs++
				}
				continue
			}
			probeJobs++
			if len(job.HTTPSDConfig) != 1 || !strings.HasSuffix(job.HTTPSDConfig[0].URL, "/sd") {
				t.Errorf("%s: want one http_sd_configs url ending in /sd, got %+v", where, job.HTTPSDConfig)
				continue
			}
			sdHost := strings.TrimSuffix(strings.TrimPrefix(job.HTTPSDConfig[0].URL, "http://"), "/sd")
			if _, p, err := net.SplitHostPort(sdHost); err != nil || p != listenPort {
				t.Errorf("%s: /sd at %q is not on the exporter's port %s", where, sdHost, listenPort)
			}
			// Follow the relabelling: the discovered address becomes ?task=, the resource a
			// label, the address the exporter's; in the sharded file, a hashmod over the task
			// keeps one share.
			var toParam, toResource, toExporter, keep bool
			hashLabel := ""
			for _, r := range job.RelabelConfigs {
				switch {
				case r.Action == "hashmod":
					if len(r.SourceLabels) != 1 || (r.SourceLabels[0] != "__param_task" && r.SourceLabels[0] != "__address__") || !toParam && r.SourceLabels[0] == "__param_task" {
						t.Errorf("%s: hashmod must hash the task id (__param_task or __address__ before it is rewritten), got %v", where, r.SourceLabels)
					}
					hashLabel, modulus = r.TargetLabel, r.Modulus
				case r.Action == "keep":
					keep = len(r.SourceLabels) == 1 && r.SourceLabels[0] == hashLabel && hashLabel != "" && k8sDeref(r.Regex) == "0"
				case r.Action != "" && r.Action != "replace":
				case slices.Equal(r.SourceLabels, []string{"__address__"}) && r.TargetLabel == "__param_task" && !toExporter:
					toParam = true
				case slices.Contains(r.SourceLabels, "__meta_metastudio_resource"):
					toResource = true // a target label that changes once the resource is known
				case len(r.SourceLabels) == 0 && r.TargetLabel == "__address__":
					toExporter = k8sDeref(r.Replacement) == sdHost
				}
			}
			if !toParam || toResource || !toExporter {
				t.Errorf("%s: want __address__ -> __param_task (%v), no label from __meta_metastudio_resource (%v), then __address__ = %s (%v)",
					where, toParam, toResource, sdHost, toExporter)
			}
			if sharded && (modulus < 2 || !keep) {
				t.Errorf("%s: want a hashmod with a modulus of at least 2 and a keep of share \"0\" (marked # SHARD); got modulus %d, keep %v", where, modulus, keep)
			}
		}
		if probeJobs != 1 || selfJobs != 1 {
			t.Errorf("%s: want one /probe job and one job scraping the exporter's %s, got %d and %d", name, k8sDefaultMetricsPath, probeJobs, selfJobs)
		}
		if !sharded {
			files[name] = data
			continue
		}
		// One file per server: the SHARD lines take each value of 0..modulus-1.
		if n := len(k8sPromShardLine.FindAll(data, -1)); n == 0 {
			t.Errorf("%s: no line marked # SHARD with the value \"0\"", name)
			continue
		}
		for shard := range modulus {
			variant := k8sPromShardLine.ReplaceAll(data, []byte(fmt.Sprintf(`${1}"%d"${2}`, shard)))
			var vc k8sPromConfig
			if err := yaml.Unmarshal(variant, &vc); err != nil {
				t.Fatalf("%s with SHARD %d: %v", name, shard, err)
			}
			// Each server keeps its own share: the keep after the hashmod must have changed too.
			for _, job := range vc.ScrapeConfigs {
				for _, r := range job.RelabelConfigs {
					if r.Action != "keep" {
						continue
					}
					if kept := k8sDeref(r.Regex); kept != strconv.Itoa(shard) {
						t.Errorf("%s with the # SHARD lines set to %d: job %s keeps share %q, want %d", name, shard, job.JobName, kept, shard)
					}
				}
			}
			files[fmt.Sprintf("%s (server %d)", name, shard)] = variant
		}
	}
	if t.Failed() {
		return
	}

	promtool := need(t, "promtool")
	dir := t.TempDir()
	for name, data := range files {
		// In a directory of their own, so that a rule_files entry would be looked up beside
		// the file and fail the check rather than find something by chance.
		file := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_", "(", "", ")", "").Replace(name))
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "config", file).CombinedOutput(); err != nil {
			t.Errorf("promtool check config %s: %v\n%s", name, err, out)
		}
	}
}
