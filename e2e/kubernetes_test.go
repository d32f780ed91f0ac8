package e2e

// The Kubernetes objects users apply, the plain manifests of examples/kubernetes/ and what
// the Helm chart renders with each values file of charts/metastudio-exporter/ci/, decoded
// strictly into Kubernetes' own types (k8s.io/api, with sigs.k8s.io/yaml refusing unknown
// fields) and held to the same rules: the hardened security context, the probes, GOMEMLIMIT
// derived from the memory limit, credentials from a Secret, a config that passes
// --config.check, the ServiceMonitor's metastudio_exporter label, and a PrometheusRule whose
// rules are examples/alerts.yml.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	yaml3 "gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

var chartDir = filepath.Join(root, "charts", "metastudio-exporter")

// helmVersion is the Helm the Makefile and the tests run, from the Go module proxy.
const helmVersion = "helm.sh/helm/v3/cmd/helm@v3.22.0"

// objects is one set of objects applied together.
type objects struct {
	name         string
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     []*corev1.Service
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	monitors     []*serviceMonitor
	rules        []*prometheusRule
}

// serviceMonitor and prometheusRule are the Prometheus Operator's kinds, reduced to the
// fields used here (the Operator's Go types are not a dependency of this module); decoded
// strictly too.
type serviceMonitor struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   metadataLabels     `json:"metadata"`
	Spec       serviceMonitorSpec `json:"spec"`
}

type metadataLabels struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

type serviceMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Endpoints []struct {
		Port          string `json:"port"`
		Path          string `json:"path"`
		Scheme        string `json:"scheme"`
		Interval      string `json:"interval"`
		ScrapeTimeout string `json:"scrapeTimeout"`
		Relabelings   []struct {
			SourceLabels []string `json:"sourceLabels"`
			TargetLabel  string   `json:"targetLabel"`
		} `json:"relabelings"`
	} `json:"endpoints"`
}

type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   metadataLabels `json:"metadata"`
	Spec       struct {
		Groups []any `json:"groups"`
	} `json:"spec"`
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeObjects decodes every YAML document of data strictly into its kind's type.
func decodeObjects(t *testing.T, set *objects, where string, data []byte) {
	t.Helper()
	for i, doc := range docSep.Split(string(data), -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s, document %d: %v", where, i+1, err)
		}
		if head.Kind == "" {
			continue // comments only
		}
		var obj any
		switch head.Kind {
		case "ConfigMap":
			c := &corev1.ConfigMap{}
			obj, set.configMaps[where+"/"+fmt.Sprint(i)] = c, c
		case "Secret":
			s := &corev1.Secret{}
			obj, set.secrets[where+"/"+fmt.Sprint(i)] = s, s
		case "Service":
			s := &corev1.Service{}
			obj, set.services = s, append(set.services, s)
		case "Deployment":
			d := &appsv1.Deployment{}
			obj, set.deployments = d, append(set.deployments, d)
		case "StatefulSet":
			s := &appsv1.StatefulSet{}
			obj, set.statefulSets = s, append(set.statefulSets, s)
		case "ServiceMonitor":
			s := &serviceMonitor{}
			obj, set.monitors = s, append(set.monitors, s)
		case "PrometheusRule":
			r := &prometheusRule{}
			obj, set.rules = r, append(set.rules, r)
		default:
			t.Fatalf("%s, document %d: kind %s is not one this test knows", where, i+1, head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Errorf("%s, document %d (%s): %v", where, i+1, head.Kind, err)
		}
	}
}

func newObjects(name string) *objects {
	return &objects{name: name, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
}

// plainManifests reads examples/kubernetes/ but its projects/ directory (the Deployment and
// the sharded StatefulSet share the ConfigMap and the Secret).
func plainManifests(t *testing.T) *objects {
	t.Helper()
	set := newObjects("examples/kubernetes")
	dir := filepath.Join(root, "examples", "kubernetes")
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && path == filepath.Join(dir, k8sProjectsDir) {
			return filepath.SkipDir // an alternative to the one-project objects: projectsManifests
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		return decodeFile(t, set, path)
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// projectsManifests reads examples/kubernetes/projects/ with the one-project files it
// reuses: what a user applies for two projects.
func projectsManifests(t *testing.T) *objects {
	t.Helper()
	set := newObjects("examples/kubernetes/" + k8sProjectsDir)
	for _, f := range k8sProjectsFiles(t) {
		if err := decodeFile(t, set, f); err != nil {
			t.Fatal(err)
		}
	}
	return set
}

func decodeFile(t *testing.T, set *objects, path string) error {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	decodeObjects(t, set, path, data)
	return nil
}

// TestHelmIsBuiltOnce checks that the tests run Helm exactly as the Makefile builds it
// while the race tests run: the same module version and the same configuration (static,
// -trimpath). Otherwise e2e builds Helm a second time, minutes on a fresh machine.
func TestHelmIsBuiltOnce(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(makefile), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, "\t:") {
			vars[strings.TrimSpace(strings.TrimSuffix(k, "?"))] = strings.TrimSpace(v)
		}
	}
	if want := "$(STATIC) $(GO) run " + helmVersion; vars["HELM"] != want {
		t.Errorf("Makefile: HELM = %q, want %q (as the tests run it)", vars["HELM"], want)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
		if !strings.Contains(vars["STATIC"], want) {
			t.Errorf("Makefile: STATIC = %q lacks %s", vars["STATIC"], want)
		}
	}
	env := staticEnv()
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
		if !slices.ContainsFunc(env, func(kv string) bool {
			return kv == want || strings.HasPrefix(kv, "GOFLAGS=") && slices.Contains(strings.Fields(kv[len("GOFLAGS="):]), want)
		}) {
			t.Errorf("the tests' go commands run without %s, unlike the Makefile's", want)
		}
	}
}

// helm runs the pinned Helm from the repository root.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goCmd, append([]string{"run", helmVersion}, args...)...)
	cmd.Dir = root
	cmd.Env = staticEnv() // as the Makefile runs it: its build is cached once
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// chartRenders renders the chart with each values file of its ci/ directory.
func chartRenders(t *testing.T) []*objects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want values files in %s/ci: %v %v", chartDir, files, err)
	}
	var sets []*objects
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		out := helm(t, "template", "metastudio-exporter", filepath.Join("charts", "metastudio-exporter"), "-f", rel)
		set := newObjects("helm template -f " + rel)
		decodeObjects(t, set, set.name, []byte(out))
		sets = append(sets, set)
	}
	return sets
}

// checkObjects holds one set of objects to the rules every deployment follows.
func checkObjects(t *testing.T, set *objects, binary string) {
	t.Helper()
	type workload struct {
		kind, name string
		replicas   int32
		pod        corev1.PodTemplateSpec
	}
	var ws []workload
	for _, d := range set.deployments {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("%s: Deployment %s: want exactly 1 replica (more would call the API for every task twice)", set.name, d.Name)
		}
		ws = append(ws, workload{"Deployment", d.Name, 1, d.Spec.Template})
	}
	for _, s := range set.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, *s.Spec.Replicas, s.Spec.Template})
	}
	if len(ws) == 0 {
		t.Errorf("%s: no Deployment or StatefulSet", set.name)
	}
	secretNames := map[string]bool{}
	for _, s := range set.secrets {
		secretNames[s.Name] = true
	}
	configMaps := map[string]*corev1.ConfigMap{}
	for _, c := range set.configMaps {
		configMaps[c.Name] = c
	}
	for _, w := range ws {
		where := fmt.Sprintf("%s: %s %s", set.name, w.kind, w.name)
		pod := w.pod.Spec
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65534 ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v, want non-root 65534 with the RuntimeDefault seccomp profile", where, sc)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("%s: want automountServiceAccountToken: false (it never calls the Kubernetes API)", where)
		}
		if len(pod.Containers) != 1 {
			t.Errorf("%s: want one container", where)
			continue
		}
		c := pod.Containers[0]
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
			!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: container securityContext %+v, want no privilege escalation, a read-only root filesystem, all capabilities dropped", where, sc)
		}
		for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/-/healthy", c.ReadinessProbe: "/-/ready"} {
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "http-metrics" {
				t.Errorf("%s: want a probe on %s at port http-metrics, got %+v", where, want, probe)
			}
		}
		if len(c.Ports) != 1 || c.Ports[0].Name != "http-metrics" || c.Ports[0].ContainerPort != 39107 {
			t.Errorf("%s: ports %+v, want http-metrics 39107", where, c.Ports)
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		// GOMEMLIMIT: 80 % of the memory limit, in MiB.
		limit, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			t.Errorf("%s: no memory limit", where)
		} else if want := fmt.Sprintf("%dMiB", limit.Value()*80/100/(1<<20)); env["GOMEMLIMIT"].Value != want {
			t.Errorf("%s: GOMEMLIMIT %q, want %q (80 %% of the memory limit %s)", where, env["GOMEMLIMIT"].Value, want, limit.String())
		}
		if _, err := resource.ParseQuantity(strings.TrimSuffix(env["GOMEMLIMIT"].Value, "B")); err != nil {
			t.Errorf("%s: GOMEMLIMIT %q: %v", where, env["GOMEMLIMIT"].Value, err)
		}
		// The config, from a ConfigMap of the set.
		var cm *corev1.ConfigMap
		for _, v := range pod.Volumes {
			if v.ConfigMap != nil {
				cm = configMaps[v.ConfigMap.Name]
			}
		}
		if cm == nil || cm.Data["config.yml"] == "" {
			t.Errorf("%s: no ConfigMap with a config.yml among the objects", where)
			continue
		}
		var cfg struct {
			Projects []struct {
				Name        string            `yaml:"name"`
				Credentials map[string]string `yaml:"credentials"`
			} `yaml:"projects"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["config.yml"]), &cfg); err != nil {
			t.Errorf("%s: ConfigMap %s: %v", where, cm.Name, err)
			continue
		}
		// With several projects, each reads its keys from files of its own Secret, mounted
		// into the container, and the environment holds none.
		mounts := map[string]string{} // mount path -> Secret
		for _, m := range c.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.Secret != nil {
					mounts[m.MountPath] = v.Secret.SecretName
					keys := map[string]bool{}
					for _, it := range v.Secret.Items {
						keys[it.Key+"="+it.Path] = true
					}
					if !keys["CLOUD_SDK_AK=CLOUD_SDK_AK"] || !keys["CLOUD_SDK_SK=CLOUD_SDK_SK"] {
						t.Errorf("%s: Secret volume %s: want the keys CLOUD_SDK_AK and CLOUD_SDK_SK as files of those names", where, v.Name)
					}
					if n := v.Secret.SecretName; !secretNames[n] && !strings.Contains(set.name, "ci/") {
						t.Errorf("%s: volume %s mounts Secret %s, which is not among the objects", where, v.Name, n)
					}
				}
			}
		}
		projectSecrets := map[string]bool{}
		for _, p := range cfg.Projects {
			for key, file := range map[string]string{"access_key_file": "CLOUD_SDK_AK", "secret_key_file": "CLOUD_SDK_SK"} {
				path := p.Credentials[key]
				secret, ok := mounts[filepath.Dir(path)]
				if !ok || filepath.Base(path) != file {
					t.Errorf("%s: project %s: credentials.%s %q is not the file %s of a mounted Secret", where, p.Name, key, path, file)
				}
				projectSecrets[secret] = true
			}
		}
		if len(cfg.Projects) > 0 && len(projectSecrets) != len(cfg.Projects) {
			t.Errorf("%s: %d projects read %d Secrets: want one Secret each", where, len(cfg.Projects), len(projectSecrets))
		}
		for _, k := range []string{"CLOUD_SDK_AK", "CLOUD_SDK_SK"} {
			e := env[k]
			if len(cfg.Projects) > 0 {
				if e.Name != "" {
					t.Errorf("%s: %s is set, but every project reads its own Secret", where, k)
				}
				continue
			}
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Key != k {
				t.Errorf("%s: %s does not come from a Secret's key %s", where, k, k)
			} else if n := e.ValueFrom.SecretKeyRef.Name; !secretNames[n] && !strings.Contains(set.name, "ci/") {
				t.Errorf("%s: %s comes from Secret %s, which is not among the objects", where, k, n)
			}
		}
		// Sharding: --shard.count is the replica count, the index the pod's ordinal.
		args := strings.Join(c.Args, " ")
		if w.kind == "StatefulSet" {
			if !strings.Contains(args, "--shard.count="+strconv.Itoa(int(w.replicas))) || !strings.Contains(args, "--shard.index=$(SHARD_INDEX)") ||
				env["SHARD_INDEX"].ValueFrom == nil || env["SHARD_INDEX"].ValueFrom.FieldRef == nil ||
				env["SHARD_INDEX"].ValueFrom.FieldRef.FieldPath != "metadata.labels['apps.kubernetes.io/pod-index']" {
				t.Errorf("%s: want --shard.index=$(SHARD_INDEX) from the pod-index label and --shard.count=%d; args %q", where, w.replicas, args)
			}
		} else if strings.Contains(args, "--shard.") {
			t.Errorf("%s: a Deployment must not shard: %q", where, args)
		}
		// The config loads, with each project's key files where its Secret is mounted
		// (moved under a temporary directory).
		dir := t.TempDir()
		text := cm.Data["config.yml"]
		for mount := range mounts {
			moved := filepath.Join(dir, mount)
			text = strings.ReplaceAll(text, mount+"/", moved+"/")
			if err := os.MkdirAll(moved, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, value := range map[string]string{"CLOUD_SDK_AK": "CHECKAK0000000000000", "CLOUD_SDK_SK": "check-secret"} {
				if err := os.WriteFile(filepath.Join(moved, name), []byte(value), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		file := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "--config.check", "--config.file="+file)
		cmd.Env = append(os.Environ(), "CLOUD_SDK_AK=CHECKAK0000000000000", "CLOUD_SDK_SK=check-secret")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: its config fails --config.check: %v\n%s", where, err, out)
		}
	}
	// ServiceMonitors select a Service of the set and set the label the rules use.
	for _, sm := range set.monitors {
		matched := false
		for _, s := range set.services {
			sel := sm.Spec.Selector.MatchLabels
			all := len(sel) > 0
			for k, v := range sel {
				all = all && s.Labels[k] == v
			}
			matched = matched || all
		}
		if !matched {
			t.Errorf("%s: ServiceMonitor %s selects no Service of the set", set.name, sm.Metadata.Name)
		}
		for _, ep := range sm.Spec.Endpoints {
			ok := false
			for _, r := range ep.Relabelings {
				ok = ok || (r.TargetLabel == exporterLabel && slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_name"}))
			}
			if !ok || ep.Port != "http-metrics" || ep.Path != "/metrics" {
				t.Errorf("%s: ServiceMonitor %s: want port http-metrics, path /metrics and %s from the pod's name", set.name, sm.Metadata.Name, exporterLabel)
			}
		}
	}
	// PrometheusRules hold examples/alerts.yml's rules, as written.
	if len(set.rules) > 0 {
		raw, err := os.ReadFile(alertsFile)
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Groups []any `yaml:"groups"`
		}
		if err := yaml3.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		// Both through JSON, so that the number types agree.
		wantJSON, _ := yaml.Marshal(want.Groups)
		for _, r := range set.rules {
			got, _ := yaml.Marshal(r.Spec.Groups)
			var g, w any
			_ = yaml.Unmarshal(got, &g)
			_ = yaml.Unmarshal(wantJSON, &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: PrometheusRule %s differs from %s: run `make chart-rules`", set.name, r.Metadata.Name, alertsFile)
			}
		}
	}
}

func TestKubernetesObjects(t *testing.T) {
	binary := exporterBinary(t)
	plain := plainManifests(t)
	if len(plain.rules) != 1 || len(plain.monitors) != 1 || len(plain.deployments) != 1 || len(plain.statefulSets) != 1 {
		t.Errorf("examples/kubernetes: want a PrometheusRule, a ServiceMonitor, a Deployment and a StatefulSet")
	}
	checkObjects(t, plain, binary)
	checkManifestRules(t, plain)
	projects := projectsManifests(t)
	if len(projects.deployments) != 1 || len(projects.statefulSets) != 0 || len(projects.secrets) != 2 || len(projects.configMaps) != 1 ||
		len(projects.services) != 1 || len(projects.monitors) != 1 || len(projects.rules) != 1 {
		t.Errorf("%s: want a ConfigMap, two Secrets and a Deployment, with the Service, ServiceMonitor and PrometheusRule of examples/kubernetes", projects.name)
	}
	for _, cm := range projects.configMaps {
		var cfg struct {
			Projects []struct {
				Region string `yaml:"region"`
			} `yaml:"projects"`
		}
		regions := map[string]bool{}
		if err := yaml.Unmarshal([]byte(cm.Data["config.yml"]), &cfg); err == nil {
			for _, p := range cfg.Projects {
				regions[p.Region] = true
			}
		}
		if len(cfg.Projects) != 2 || len(regions) != 2 {
			t.Errorf("%s: ConfigMap %s: want two projects in two regions, got %d in %d", projects.name, cm.Name, len(cfg.Projects), len(regions))
		}
	}
	checkObjects(t, projects, binary)
	checkManifestRules(t, projects)
	renders := chartRenders(t)
	var sharded, rules, monitors int
	for _, set := range renders {
		checkObjects(t, set, binary)
		checkManifestRules(t, set)
		sharded += len(set.statefulSets)
		rules += len(set.rules)
		monitors += len(set.monitors)
	}
	if sharded == 0 || rules == 0 || monitors == 0 {
		t.Errorf("the chart's ci/ values render no StatefulSet (%d), PrometheusRule (%d) or ServiceMonitor (%d)", sharded, rules, monitors)
	}
}

// TestChartMatchesExamples: the chart's version is the exporter's, and its ServiceMonitor
// relabels as the example one does (so the modes tested with the example hold for it).
func TestChartMatchesExamples(t *testing.T) {
	var chart struct {
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml3.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	version, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(string(version)); chart.AppVersion != v {
		t.Errorf("Chart.yaml appVersion %q, VERSION %q", chart.AppVersion, v)
	}
	plain := plainManifests(t)
	out := helm(t, "template", "metastudio-exporter", filepath.Join("charts", "metastudio-exporter"), "-f", filepath.Join("charts", "metastudio-exporter", "ci", "monitoring-values.yaml"))
	rendered := newObjects("chart")
	decodeObjects(t, rendered, "chart", []byte(out))
	if len(plain.monitors) != 1 || len(rendered.monitors) != 1 {
		t.Fatalf("want one ServiceMonitor in examples/kubernetes and in the chart")
	}
	if p, c := plain.monitors[0].Spec.Endpoints, rendered.monitors[0].Spec.Endpoints; !reflect.DeepEqual(p, c) {
		t.Errorf("the chart's ServiceMonitor endpoints %+v differ from examples/kubernetes/servicemonitor.yaml's %+v", c, p)
	}
}

// TestKubernetesReadmeIsConsistent: the README applies the files it describes, one way to
// scrape, and never the whole directory (the Secret's placeholders, and the Deployment with
// the sharded StatefulSet, which would fetch every task twice).
func TestKubernetesReadmeIsConsistent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "examples", "kubernetes", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if regexp.MustCompile(`apply -f examples/kubernetes/?\s*(\n|$)`).MatchString(text) {
		t.Error("the README applies the whole of examples/kubernetes/")
	}
	for _, f := range []string{"servicemonitor.yaml", "prometheusrule.yaml", "deployment.yaml", "service.yaml", "configmap.yaml"} {
		if !strings.Contains(text, "-f examples/kubernetes/"+f) {
			t.Errorf("the README's commands do not apply %s", f)
		}
	}
	plain := plainManifests(t)
	for _, s := range plain.services {
		for k := range s.Annotations {
			if strings.HasPrefix(k, "prometheus.io/") {
				t.Errorf("Service %s has scrape annotation %s besides the ServiceMonitor", s.Name, k)
			}
		}
	}
}

// checkManifestRules holds a set of objects to the image and to each other: the image tag is
// the VERSION file's, the port the Dockerfile's EXPOSE, the user its USER, every argument a
// --flag whose $(VAR) references the container defines, the config a read-only ConfigMap
// directory mount (no subPath: the kubelet never refreshes one) holding the file
// --config.file names and watched for changes, shards that match the replicas, Services that
// select exactly one workload through the container's port, and ServiceMonitors whose port
// the Services have.
func checkManifestRules(t *testing.T, set *objects) {
	t.Helper()
	version := k8sVersion(t)
	expose, dockerUser, _ := k8sDockerfile(t)
	const port = 39107
	if !slices.Contains(expose, port) {
		t.Errorf("Dockerfile EXPOSEs %v, not the exporter's port %d", expose, port)
	}
	type workload struct {
		kind, name  string
		selector    map[string]string
		pod         corev1.PodTemplateSpec
		serviceName string
	}
	var ws []workload
	for _, d := range set.deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template, ""})
	}
	for _, s := range set.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, s.Spec.Selector.MatchLabels, s.Spec.Template, s.Spec.ServiceName})
	}
	subset := func(sel, labels map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	configMaps := map[string]*corev1.ConfigMap{}
	for _, c := range set.configMaps {
		configMaps[c.Name] = c
	}
	for _, w := range ws {
		where := fmt.Sprintf("%s: %s %s", set.name, w.kind, w.name)
		if !subset(w.selector, w.pod.Labels) {
			t.Errorf("%s: selector %v does not select its own pod labels %v", where, w.selector, w.pod.Labels)
		}
		if u := w.pod.Spec.SecurityContext; u == nil || u.RunAsUser == nil || *u.RunAsUser != dockerUser {
			t.Errorf("%s: want runAsUser %d, the Dockerfile's USER", where, dockerUser)
		}
		if len(w.pod.Spec.Containers) != 1 {
			continue // checkObjects says so
		}
		c := w.pod.Spec.Containers[0]
		if _, tag, _ := strings.Cut(c.Image, ":"); tag != version {
			t.Errorf("%s: image %q, want the tag %s (the VERSION file's)", where, c.Image, version)
		}
		if len(c.Command) > 0 {
			t.Errorf("%s: command %q overrides the image's ENTRYPOINT", where, c.Command)
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
		}
		args, err := k8sParseArgs(c.Args)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		for _, a := range c.Args {
			for _, ref := range k8sVarRef.FindAllStringSubmatch(a, -1) {
				if !env[ref[1]] {
					t.Errorf("%s: argument %q refers to $(%s), which the container's env does not define", where, a, ref[1])
				}
			}
		}
		if v, _ := k8sFlag(args, "web.listen-address"); !strings.HasSuffix(v, ":"+strconv.Itoa(port)) {
			t.Errorf("%s: --web.listen-address=%s: want port %d, the container port", where, v, port)
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Scheme != "" && p.HTTPGet.Scheme != corev1.URISchemeHTTP {
				t.Errorf("%s: probe scheme %s: the exporter serves HTTP unless --web.config.file says otherwise", where, p.HTTPGet.Scheme)
			}
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				t.Errorf("%s: want resources.requests.%s", where, r)
			}
		}
		// The config.
		configFile, _ := k8sFlag(args, "config.file")
		if !filepath.IsAbs(configFile) {
			t.Errorf("%s: want --config.file=<absolute path in the ConfigMap mount>, got %q", where, configFile)
		} else {
			dir, file := filepath.Split(configFile)
			mi := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return strings.TrimSuffix(vm.MountPath, "/") == strings.TrimSuffix(dir, "/")
			})
			switch {
			case mi < 0:
				t.Errorf("%s: nothing is mounted at %s, the directory of --config.file", where, dir)
			case c.VolumeMounts[mi].SubPath != "":
				t.Errorf("%s: the config is mounted with subPath, which the kubelet never refreshes", where)
			case !c.VolumeMounts[mi].ReadOnly:
				t.Errorf("%s: mount the config readOnly", where)
			default:
				vi := slices.IndexFunc(w.pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[mi].Name })
				if vi < 0 || w.pod.Spec.Volumes[vi].ConfigMap == nil {
					t.Errorf("%s: the volume at %s is not a ConfigMap", where, dir)
				} else if cm := configMaps[w.pod.Spec.Volumes[vi].ConfigMap.Name]; cm == nil || cm.Data[file] == "" {
					t.Errorf("%s: no ConfigMap %s with the key %s among the objects", where, w.pod.Spec.Volumes[vi].ConfigMap.Name, file)
				}
			}
		}
		if v, ok := k8sFlag(args, "config.watch-interval"); !ok {
			t.Errorf("%s: want --config.watch-interval, so that a changed ConfigMap is reloaded", where)
		} else if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			t.Errorf("%s: --config.watch-interval=%s: want a positive duration", where, v)
		}
		if w.kind == "StatefulSet" {
			si := slices.IndexFunc(set.services, func(s *corev1.Service) bool { return s.Name == w.serviceName })
			if si < 0 {
				t.Errorf("%s: serviceName %q: no such Service among the objects", where, w.serviceName)
			} else if s := set.services[si]; s.Spec.ClusterIP != corev1.ClusterIPNone || !subset(s.Spec.Selector, w.pod.Labels) {
				t.Errorf("%s: Service %s must be headless (clusterIP: None) and select the pods", where, s.Name)
			}
		}
	}
	// Services: one port, the container's, and exactly one workload behind them.
	for _, s := range set.services {
		where := fmt.Sprintf("%s: Service %s", set.name, s.Name)
		n := 0
		for _, w := range ws {
			if subset(s.Spec.Selector, w.pod.Labels) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: selector %v selects %d workloads, want exactly 1", where, s.Spec.Selector, n)
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "http-metrics" || s.Spec.Ports[0].Port != port ||
			s.Spec.Ports[0].TargetPort.String() != "http-metrics" {
			t.Errorf("%s: want one port http-metrics: %d to the container port http-metrics, got %+v", where, port, s.Spec.Ports)
		}
		for key := range s.Annotations {
			if strings.HasPrefix(key, "prometheus.io/") {
				t.Errorf("%s: annotation %s: the ServiceMonitor is the one way to scrape (both would fetch every task twice)", where, key)
			}
		}
	}
	for _, sm := range set.monitors {
		for _, e := range sm.Spec.Endpoints {
			for _, s := range set.services {
				if subset(sm.Spec.Selector.MatchLabels, s.Labels) && !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
					t.Errorf("%s: ServiceMonitor %s: endpoint port %s: Service %s has no such port", set.name, sm.Metadata.Name, e.Port, s.Name)
				}
			}
		}
	}
	// The config takes its credentials from the environment, i.e. from the Secret.
	for _, cm := range set.configMaps {
		var cfg map[string]any
		if err := yaml.Unmarshal([]byte(cm.Data["config.yml"]), &cfg); err != nil {
			t.Errorf("%s: ConfigMap %s: %v", set.name, cm.Name, err)
		} else if _, ok := cfg["credentials"]; ok {
			t.Errorf("%s: ConfigMap %s has a credentials section; the keys come from the Secret as CLOUD_SDK_AK/SK", set.name, cm.Name)
		}
	}
}

// TestPlainSecretIsAPlaceholder: the example Secrets, the one-project one and the
// projects' ones, hold placeholders only, in stringData.
func TestPlainSecretIsAPlaceholder(t *testing.T) {
	set := plainManifests(t)
	if len(set.secrets) != 1 {
		t.Fatalf("want one Secret in examples/kubernetes, got %d", len(set.secrets))
	}
	projects := projectsManifests(t)
	if len(projects.secrets) == 0 {
		t.Fatalf("no Secret in %s", projects.name)
	}
	for _, s := range projects.secrets {
		set.secrets[s.Name] = s
	}
	for _, s := range set.secrets {
		if len(s.Data) > 0 || len(s.StringData) == 0 {
			t.Errorf("Secret %s: use stringData with placeholders, not data", s.Name)
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, "REPLACE") {
				t.Errorf("Secret %s: %s is not an obvious placeholder (want REPLACE in it): never commit a key", s.Name, k)
			}
		}
	}
}
