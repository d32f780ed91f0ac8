package e2e

// Every shipped deployment mode is a tested mode for the alert rules. examples/alerts_test.yml
// is written with the labels examples/prometheus.yml gives (static /metrics). For each other
// mode, the labels are derived here from that mode's own example file and relabelling:
//
//   - probe: examples/prometheus-probe.yml, /sd + /probe (task series on the probe job, with
//     the task id as instance; exporter-wide series on the exporter's own job);
//   - hashmod-<n>: examples/prometheus-sharded.yml as server n, which keeps only the tasks
//     that hash to it;
//   - servicemonitor-<service>: examples/kubernetes/servicemonitor.yaml in front of the
//     Deployment's Service and of the sharded StatefulSet's, with the labels the Prometheus
//     Operator gives every target (job from the Service's name, namespace, service, pod,
//     container, endpoint) and then the ServiceMonitor's own relabelings.
//
// The unit tests are rewritten to each mode's labels (series, expected labels, the exporter's
// name in annotations) and promtool runs them against examples/alerts.yml. Every alert must
// fire, resolve and stay quiet in every mode as it does in the static one.

import (
	"context"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

var (
	prometheusProbeFile   = filepath.Join(root, "examples", "prometheus-probe.yml")
	prometheusShardedFile = filepath.Join(root, "examples", "prometheus-sharded.yml")
	serviceMonitorFile    = filepath.Join(root, "examples", "kubernetes", "servicemonitor.yaml")
	k8sServiceFiles       = []string{
		filepath.Join(root, "examples", "kubernetes", "service.yaml"),
		filepath.Join(root, "examples", "kubernetes", "sharded", "service.yaml"),
	}
)

// exporterLabel is the target label the rules find the exporter by.
const exporterLabel = "metastudio_exporter"

// scrapeConfig is the part of a Prometheus scrape config the modes need.
type scrapeConfig struct {
	JobName       string `yaml:"job_name"`
	MetricsPath   string `yaml:"metrics_path"`
	HonorLabels   bool   `yaml:"honor_labels"`
	StaticConfigs []struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	} `yaml:"static_configs"`
	HTTPSD []struct {
		URL string `yaml:"url"`
	} `yaml:"http_sd_configs"`
	RelabelConfigs       []relabelRule `yaml:"relabel_configs"`
	MetricRelabelConfigs []relabelRule `yaml:"metric_relabel_configs"`
}

func readScrapeConfigs(t *testing.T, path string, data []byte) []scrapeConfig {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg.ScrapeConfigs
}

// mode gives the target labels of a deployment mode: those of the exporter's own /metrics
// target at address addr, and those of the target whose scrape carries task id (nil: this
// mode's Prometheus does not scrape that task).
type mode struct {
	name     string
	exporter func(addr string) map[string]string
	task     func(addr, id, resource string) map[string]string
	// honor: whether the series' own labels win over the target's (honor_labels)
	honor bool
}

// staticTarget derives a static_configs job's labels for a target at addr (the example's
// target replaced by addr, as the e2e test points the example at its exporter).
func staticTarget(t *testing.T, file string, job scrapeConfig, addr string) map[string]string {
	t.Helper()
	if len(job.StaticConfigs) != 1 || len(job.StaticConfigs[0].Targets) != 1 {
		t.Fatalf("%s: job %s: want one static target", file, job.JobName)
	}
	labels := map[string]string{"job": job.JobName, "__address__": addr, "__metrics_path__": job.MetricsPath}
	maps.Copy(labels, job.StaticConfigs[0].Labels)
	out, err := relabel(labels, job.RelabelConfigs)
	if err != nil || out == nil {
		t.Fatalf("%s: job %s drops its exporter target (%v)", file, job.JobName, err)
	}
	return targetLabels(out)
}

// staticMode is examples/prometheus.yml: one job scraping the exporter's /metrics.
func staticMode(t *testing.T) mode {
	data, err := os.ReadFile(prometheusFile)
	if err != nil {
		t.Fatal(err)
	}
	jobs := readScrapeConfigs(t, prometheusFile, data)
	if len(jobs) != 1 {
		t.Fatalf("%s: want one scrape job", prometheusFile)
	}
	f := func(addr string) map[string]string { return staticTarget(t, prometheusFile, jobs[0], addr) }
	return mode{name: "static", exporter: f, task: func(addr, _, _ string) map[string]string { return f(addr) }, honor: jobs[0].HonorLabels}
}

// probeMode is a /sd + /probe file (data: its content): the exporter's own job, and a probe
// job whose targets /sd lists as the task id with __meta_metastudio_resource, relabelled to
// be sent to the exporter.
func probeMode(t *testing.T, name, file string, data []byte) mode {
	var self, probe *scrapeConfig
	jobs := readScrapeConfigs(t, file, data)
	for i := range jobs {
		if jobs[i].MetricsPath == "/probe" {
			probe = &jobs[i]
		} else {
			self = &jobs[i]
		}
	}
	if self == nil || probe == nil || len(jobs) != 2 {
		t.Fatalf("%s: want a /probe job and a job scraping the exporter", file)
	}
	return mode{
		name:     name,
		exporter: func(addr string) map[string]string { return staticTarget(t, file, *self, addr) },
		task: func(addr, id, resource string) map[string]string {
			rules := slices.Clone(probe.RelabelConfigs)
			pointed := false
			for i, r := range rules {
				// The rule that sends every probe to the exporter: point it at addr.
				if r.TargetLabel == "__address__" && len(r.SourceLabels) == 0 && r.Replacement != nil {
					rules[i].Replacement, pointed = ptr(addr), true
				}
			}
			if !pointed {
				t.Fatalf("%s: the probe job has no rule that sets __address__ to the exporter", file)
			}
			labels := map[string]string{"job": probe.JobName, "__address__": id, "__metrics_path__": "/probe"}
			if resource != "" {
				labels["__meta_metastudio_resource"] = resource
			}
			out, err := relabel(labels, rules)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			return targetLabels(out)
		},
		honor: probe.HonorLabels,
	}
}

// serviceMonitorMode is the ServiceMonitor in front of a Service (file): the Prometheus
// Operator makes each pod behind it a target, job = the Service's name, with namespace,
// service, pod, container and endpoint labels; then the ServiceMonitor's relabelings apply.
// Exporter addr stands for pod number i (in order of appearance).
func serviceMonitorMode(t *testing.T, serviceFile string) mode {
	var svc struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			ClusterIP string `yaml:"clusterIP"`
			Ports     []struct {
				Name string `yaml:"name"`
				Port int    `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	data, err := os.ReadFile(serviceFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &svc); err != nil || len(svc.Spec.Ports) != 1 {
		t.Fatalf("%s: %v (want one port)", serviceFile, err)
	}
	var sm struct {
		Spec struct {
			JobLabel  string `yaml:"jobLabel"`
			Endpoints []struct {
				Port        string `yaml:"port"`
				HonorLabels bool   `yaml:"honorLabels"`
				Relabelings []struct {
					SourceLabels []string `yaml:"sourceLabels"`
					Separator    *string  `yaml:"separator"`
					Regex        *string  `yaml:"regex"`
					Modulus      uint64   `yaml:"modulus"`
					TargetLabel  string   `yaml:"targetLabel"`
					Replacement  *string  `yaml:"replacement"`
					Action       string   `yaml:"action"`
				} `yaml:"relabelings"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	data, err = os.ReadFile(serviceMonitorFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &sm); err != nil || len(sm.Spec.Endpoints) != 1 || sm.Spec.JobLabel != "" {
		t.Fatalf("%s: %v (want one endpoint and no jobLabel)", serviceMonitorFile, err)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != svc.Spec.Ports[0].Name {
		t.Fatalf("%s: endpoint port %q is not the port %q of %s", serviceMonitorFile, ep.Port, svc.Spec.Ports[0].Name, serviceFile)
	}
	var rules []relabelRule
	for _, r := range ep.Relabelings {
		rules = append(rules, relabelRule{SourceLabels: r.SourceLabels, Separator: r.Separator, Regex: r.Regex, Modulus: r.Modulus,
			TargetLabel: r.TargetLabel, Replacement: r.Replacement, Action: strings.ToLower(r.Action)})
	}
	statefulSet := svc.Spec.ClusterIP == "None" // the headless Service of the StatefulSet
	pods := map[string]int{}
	f := func(addr string) map[string]string {
		i, ok := pods[addr]
		if !ok {
			i = len(pods)
			pods[addr] = i
		}
		pod := fmt.Sprintf("%s-7c9d8f6b5-%05d", svc.Metadata.Name, i)
		meta := map[string]string{
			"__address__":                    fmt.Sprintf("10.0.0.%d:%d", i+1, svc.Spec.Ports[0].Port),
			"__meta_kubernetes_namespace":    "monitoring",
			"__meta_kubernetes_service_name": svc.Metadata.Name,
			"__meta_kubernetes_pod_name":     pod,
		}
		if statefulSet {
			meta["__meta_kubernetes_pod_name"] = fmt.Sprintf("%s-%d", svc.Metadata.Name, i)
			meta["__meta_kubernetes_pod_label_apps_kubernetes_io_pod_index"] = strconv.Itoa(i)
		}
		// What the Operator's generated scrape config sets before the user's relabelings.
		meta["namespace"] = meta["__meta_kubernetes_namespace"]
		meta["service"] = meta["__meta_kubernetes_service_name"]
		meta["pod"] = meta["__meta_kubernetes_pod_name"]
		meta["container"] = "metastudio-exporter"
		meta["job"] = meta["__meta_kubernetes_service_name"]
		meta["endpoint"] = ep.Port
		out, err := relabel(meta, rules)
		if err != nil || out == nil {
			t.Fatalf("%s: the relabelings drop the target (%v)", serviceMonitorFile, err)
		}
		return targetLabels(out)
	}
	return mode{name: "servicemonitor-" + svc.Metadata.Name, exporter: f,
		task: func(addr, _, _ string) map[string]string { return f(addr) }, honor: ep.HonorLabels}
}

// allModes returns every deployment mode, static first.
func allModes(t *testing.T) []mode {
	t.Helper()
	modes := []mode{staticMode(t)}
	data, err := os.ReadFile(prometheusProbeFile)
	if err != nil {
		t.Fatal(err)
	}
	modes = append(modes, probeMode(t, "probe", prometheusProbeFile, data))
	data, err = os.ReadFile(prometheusShardedFile)
	if err != nil {
		t.Fatal(err)
	}
	modulus := 0
	for _, job := range readScrapeConfigs(t, prometheusShardedFile, data) {
		for _, r := range job.RelabelConfigs {
			if r.Action == "hashmod" {
				modulus = int(r.Modulus)
			}
		}
	}
	if modulus < 2 || !shardLine.Match(data) {
		t.Fatalf("%s: want a hashmod of modulus 2 or more and lines marked # SHARD", prometheusShardedFile)
	}
	for n := range modulus {
		variant := shardLine.ReplaceAll(data, []byte(fmt.Sprintf(`${1}"%d"${2}`, n)))
		modes = append(modes, probeMode(t, fmt.Sprintf("hashmod-%d", n), prometheusShardedFile, variant))
	}
	for _, f := range k8sServiceFiles {
		modes = append(modes, serviceMonitorMode(t, f))
	}
	return modes
}

// shardLine is how prometheus-sharded.yml marks the lines that differ between servers.
var shardLine = regexp.MustCompile(`(?m)^(.*)"0"(\s*# SHARD\b.*)$`)

var (
	seriesRE = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{(.*)\}\s*$`)
	matchRE  = regexp.MustCompile(`\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?`)
)

// parseSeries splits a promtool series notation name{a="b",...}.
func parseSeries(t *testing.T, s string) (string, map[string]string) {
	t.Helper()
	m := seriesRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("cannot read series %q", s)
	}
	labels := map[string]string{}
	rest := m[2]
	for _, lm := range matchRE.FindAllStringSubmatch(rest, -1) {
		v, err := strconv.Unquote(`"` + lm[2] + `"`)
		if err != nil {
			t.Fatalf("series %q: %v", s, err)
		}
		labels[lm[1]] = v
	}
	if strings.TrimSpace(matchRE.ReplaceAllString(rest, "")) != "" {
		t.Fatalf("cannot read the labels of series %q", s)
	}
	return m[1], labels
}

func formatSeries(name string, labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// retarget replaces a series' (or alert's) target labels, static, by the mode's.
func retarget(labels, static, target map[string]string, honor bool) map[string]string {
	out := maps.Clone(labels)
	for k := range static {
		delete(out, k)
	}
	for k, v := range target {
		if old, ok := out[k]; ok && old != v && !honor {
			out["exported_"+k] = old
		}
		if _, ok := out[k]; !ok || !honor {
			out[k] = v
		}
	}
	return out
}

// rewriteTests rewrites the promtool test file (decoded into doc) from the static mode's
// labels to m's. It reports the template's series whose labels are not what the static
// mode gives (the template must be right for prometheus.yml).
func rewriteTests(t *testing.T, doc map[string]any, static, m mode) {
	t.Helper()
	tests, _ := doc["tests"].([]any)
	for _, tc := range tests {
		tc := tc.(map[string]any)
		name := tc["name"]
		// The tasks: id -> exporter address and resource (from metastudio_task_info).
		resources := map[string]string{}
		inputs, _ := tc["input_series"].([]any)
		for _, in := range inputs {
			metric, labels := parseSeries(t, in.(map[string]any)["series"].(string))
			if metric == "metastudio_task_info" {
				resources[labels["task_id"]] = labels["resource"]
			}
		}
		// target returns the mode's target labels of a series or alert, and the static ones.
		target := func(labels map[string]string) (mine, was map[string]string, dropped bool) {
			addr := labels[exporterLabel]
			if id, ok := labels["task_id"]; ok {
				was = static.task(addr, id, resources[id])
				mine = m.task(addr, id, resources[id])
				return mine, was, mine == nil
			}
			return m.exporter(addr), static.exporter(addr), false
		}
		names := map[string]string{} // static exporter name -> this mode's, for annotations
		var kept []any
		for _, in := range inputs {
			in := in.(map[string]any)
			metric, labels := parseSeries(t, in["series"].(string))
			if _, ok := labels[exporterLabel]; !ok {
				kept = append(kept, in) // not the exporter's (another job's up)
				continue
			}
			mine, was, dropped := target(labels)
			for k, v := range was {
				if labels[k] != v {
					t.Errorf("%s: %q: series %s has %s=%q, but %s gives %q", alertsTestFile, name, in["series"], k, labels[k], prometheusFile, v)
				}
			}
			if dropped {
				continue
			}
			names[labels[exporterLabel]] = m.exporter(labels[exporterLabel])[exporterLabel]
			in["series"] = formatSeries(metric, retarget(labels, was, mine, m.honor))
			kept = append(kept, in)
		}
		tc["input_series"] = kept
		var pairs []string
		for _, k := range slices.Sorted(maps.Keys(names)) {
			pairs = append(pairs, k, names[k])
		}
		rename := strings.NewReplacer(pairs...)

		checks, _ := tc["alert_rule_test"].([]any)
		for _, c := range checks {
			c := c.(map[string]any)
			exp, _ := c["exp_alerts"].([]any)
			var keptAlerts []any
			for _, e := range exp {
				e := e.(map[string]any)
				raw, _ := e["exp_labels"].(map[string]any)
				labels := map[string]string{}
				for k, v := range raw {
					labels[k] = fmt.Sprint(v)
				}
				if addr, ok := labels[exporterLabel]; ok {
					if _, keepsTarget := labels["instance"]; keepsTarget {
						mine, was, dropped := target(labels)
						if dropped {
							continue
						}
						labels = retarget(labels, was, mine, m.honor)
					} else {
						labels[exporterLabel] = m.exporter(addr)[exporterLabel]
					}
				}
				out := map[string]any{}
				for k, v := range labels {
					out[k] = v
				}
				e["exp_labels"] = out
				if ann, ok := e["exp_annotations"].(map[string]any); ok {
					for k, v := range ann {
						ann[k] = rename.Replace(fmt.Sprint(v))
					}
				}
				keptAlerts = append(keptAlerts, e)
			}
			if exp != nil {
				c["exp_alerts"] = keptAlerts
			}
		}
	}
}

func TestAlertRulesInEveryMode(t *testing.T) {
	promtool := need(t, "promtool")
	modes := allModes(t)
	raw, err := os.ReadFile(alertsTestFile)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			rewriteTests(t, doc, modes[0], m)
			firing := firingAlerts(doc)
			for _, r := range readRules(t, alertsFile) {
				if r.Alert != "" && !firing[r.Alert] {
					t.Errorf("mode %s: no unit test where %s fires (its tasks all went to another server?)", m.name, r.Alert)
				}
			}
			// Every mode names the exporter the same way on its task and exporter series.
			if e, tk := m.exporter("x:39107")[exporterLabel], m.task("x:39107", "t1", "qa_pair"); e == "" || (tk != nil && tk[exporterLabel] != e) {
				t.Errorf("mode %s: the exporter's own target has %s=%q, a task's %v", m.name, exporterLabel, e, tk)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
				t.Fatal(err)
			}
			file := writeYAML(t, dir, "alerts_test.yml", doc)
			if res, err := run(t, promtool, "test", "rules", file); err != nil || !strings.Contains(res, "SUCCESS") {
				t.Errorf("promtool test rules, mode %s: %v\n%s", m.name, err, res)
			}
		})
	}
}

// firingAlerts returns the alerts that some check of the test file expects to fire.
func firingAlerts(doc map[string]any) map[string]bool {
	out := map[string]bool{}
	tests, _ := doc["tests"].([]any)
	for _, tc := range tests {
		checks, _ := tc.(map[string]any)["alert_rule_test"].([]any)
		for _, c := range checks {
			c := c.(map[string]any)
			if exp, _ := c["exp_alerts"].([]any); len(exp) > 0 {
				out[fmt.Sprint(c["alertname"])] = true
			}
		}
	}
	return out
}

// TestModesDeriveLabels pins what the modes derive from the examples, so that a change in
// an example's relabelling shows here as well as in the rules' results.
func TestModesDeriveLabels(t *testing.T) {
	modes := map[string]mode{}
	for _, m := range allModes(t) {
		modes[m.name] = m
	}
	check := func(what string, got, want map[string]string) {
		t.Helper()
		if !maps.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("static exporter", modes["static"].exporter("e:39107"), map[string]string{"job": "metastudio", "instance": "e:39107", exporterLabel: "e:39107"})
	check("probe task", modes["probe"].task("e:39107", "t1", "qa_pair"),
		map[string]string{"job": "metastudio_probe", "instance": "t1", exporterLabel: "e:39107"})
	check("probe exporter", modes["probe"].exporter("e:39107"), map[string]string{"job": "metastudio", "instance": "e:39107", exporterLabel: "e:39107"})
	// Each task is kept by exactly one hashmod server.
	for _, id := range []string{"t1", "t2", "t3", "s1", "x1", "k1"} {
		n := 0
		for name, m := range modes {
			if strings.HasPrefix(name, "hashmod-") && m.task("e:39107", id, "") != nil {
				n++
			}
		}
		if n != 1 {
			t.Errorf("task %s is kept by %d hashmod servers, want 1", id, n)
		}
	}
	sts := modes["servicemonitor-metastudio-exporter-sharded"].exporter("e:39107")
	if sts["job"] != "metastudio-exporter-sharded" || sts["shard"] != "0" || sts[exporterLabel] != "metastudio-exporter-sharded-0" {
		t.Errorf("sharded StatefulSet behind the ServiceMonitor: %v, want job metastudio-exporter-sharded, shard 0, %s its pod", sts, exporterLabel)
	}
}

// TestDerivedLabelsMatchPrometheus runs the real Prometheus with each example (every server
// of the hashmod split included) against an exporter, and compares the targets it keeps and
// their labels with what the modes derive: the relabelling of this test is Prometheus'.
func TestDerivedLabelsMatchPrometheus(t *testing.T) {
	t.Parallel() // with TestPrometheusEndToEnd's modes: each waits on Prometheus, not the CPU
	prometheus := need(t, "prometheus")
	exporter := exporterBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	sim := simulator.New(simulator.Options{Credentials: map[string]string{simAK: simSK}, ProjectID: simProject})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	var ids []string
	for i := range 6 {
		ids = append(ids, simulator.TaskID(i))
	}
	config := fmt.Sprintf("region: cn-north-4\nproject_id: %s\nendpoint: %s\ncredentials: {access_key: %s, secret_key: %s}\ntasks: [%s]\n",
		simProject, srv.URL, simAK, simSK, strings.Join(ids, ", "))
	if err := os.WriteFile(filepath.Join(dir, "exporter.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	exp := start(t, ctx, dir, exporter, "--config.file="+filepath.Join(dir, "exporter.yml"), "--web.listen-address="+addr)
	if err := waitHTTP(ctx, exp, "http://"+addr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	rules := writeScaledRules(t, dir)

	sharded, err := os.ReadFile(prometheusShardedFile)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"static": prometheusFile, "probe": prometheusProbeFile}
	for n := range 2 {
		variant := filepath.Join(dir, fmt.Sprintf("sharded-%d.yml", n))
		if err := os.WriteFile(variant, shardLine.ReplaceAll(sharded, []byte(fmt.Sprintf(`${1}"%d"${2}`, n))), 0o644); err != nil {
			t.Fatal(err)
		}
		files[fmt.Sprintf("hashmod-%d", n)] = variant
	}
	for _, m := range allModes(t) {
		file, ok := files[m.name]
		if !ok {
			continue // the ServiceMonitor needs a cluster
		}
		t.Run(m.name, func(t *testing.T) {
			want := map[string]map[string]string{} // instance -> labels
			e := m.exporter(addr)
			want[e["instance"]] = e
			if m.name != "static" {
				for _, id := range ids {
					if l := m.task(addr, id, ""); l != nil {
						want[l["instance"]] = l
					}
				}
			}
			pdir := filepath.Join(dir, m.name)
			if err := os.MkdirAll(pdir, 0o755); err != nil {
				t.Fatal(err)
			}
			promConfig := writePrometheusConfig(t, pdir, file, rules, addr)
			promAddr := testkit.FreeAddr(t)
			prom := start(t, ctx, pdir, prometheus, "--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(pdir, "data"),
				"--web.listen-address="+promAddr, "--log.level=warn")
			if err := waitHTTP(ctx, prom, "http://"+promAddr+"/-/ready"); err != nil {
				t.Fatal(err)
			}
			api := promAPI{base: "http://" + promAddr, ctx: ctx}
			var got map[string]map[string]string
			err := poll(ctx, 200*time.Millisecond, func() error {
				var data struct {
					ActiveTargets []struct {
						Labels map[string]string `json:"labels"`
					} `json:"activeTargets"`
				}
				if err := api.get("/api/v1/targets", nil, &data); err != nil {
					return err
				}
				got = map[string]map[string]string{}
				for _, tg := range data.ActiveTargets {
					got[tg.Labels["instance"]] = tg.Labels
				}
				if len(got) < len(want) {
					return fmt.Errorf("%d active targets so far, want %d", len(got), len(want))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(got, want, func(a, b map[string]string) bool { return maps.Equal(a, b) }) {
				t.Errorf("Prometheus' targets differ from the derived ones:\ngot  %v\nwant %v", got, want)
			}
		})
	}
}
