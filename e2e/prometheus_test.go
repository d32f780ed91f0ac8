package e2e

// The whole chain with a real Prometheus: the simulator (in this process) -> the exporter
// binary -> Prometheus, configured from examples/prometheus.yml and loading
// examples/alerts.yml. Time runs 60 times faster than in the shipped files: every interval,
// `for:`, range and offset is divided by 60 (one minute of the rules is one second here),
// and so is Prometheus' lookback delta, so the rules behave as shipped, only sooner.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	simProject = "0123456789abcdef0123456789abcdef"
	simAK      = "E2EPROMETHEUSAK00000"
	simSK      = "e2e-prometheus-secret-key-not-real"
	// The second project of the end-to-end test, in another region, whose key is refused.
	sgProject = "fedcba9876543210fedcba9876543210"
	sgAK      = "E2EPROMETHEUSSGAK000"
	sgSK      = "e2e-prometheus-sg-secret-key-not-real"
	// The projects' names: the good one sorts first, so that the dashboard's first values
	// select it.
	goodProject, badProject = "beijing", "singapore"
	timeScale               = 60
	// e2eLimit bounds the whole test, processes included.
	e2eLimit = 90 * time.Second
)

// scaleDuration divides a Prometheus duration by timeScale.
func scaleDuration(t *testing.T, s string) string {
	t.Helper()
	d, err := model.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	scaled := time.Duration(d) / timeScale
	if scaled < time.Millisecond {
		scaled = time.Millisecond
	}
	return model.Duration(scaled).String()
}

var (
	rangeRE  = regexp.MustCompile(`\[(\w+)(:\w*)?\]`)
	offsetRE = regexp.MustCompile(`\boffset\s+(-?)(\w+)`)
)

// scaleExpr divides every range and offset of a PromQL expression by timeScale.
func scaleExpr(t *testing.T, expr string) string {
	t.Helper()
	expr = rangeRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := rangeRE.FindStringSubmatch(m)
		step := sub[2]
		if len(step) > 1 {
			step = ":" + scaleDuration(t, step[1:])
		}
		return "[" + scaleDuration(t, sub[1]) + step + "]"
	})
	return offsetRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := offsetRE.FindStringSubmatch(m)
		return "offset " + sub[1] + scaleDuration(t, sub[2])
	})
}

func TestScaleExpr(t *testing.T) {
	got := scaleExpr(t, `max_over_time(x[1h] offset 15m) - changes(y[30m]) + z[1h:5m] offset -2m`)
	want := `max_over_time(x[1m] offset 15s) - changes(y[30s]) + z[1m:5s] offset -2s`
	if got != want {
		t.Errorf("scaleExpr = %q, want %q", got, want)
	}
}

// writeScaledRules writes alerts.yml with every for, range and offset scaled, into dir.
func writeScaledRules(t *testing.T, dir string) string {
	t.Helper()
	var doc map[string]any
	readYAML(t, alertsFile, &doc, false)
	groups, _ := doc["groups"].([]any)
	for _, g := range groups {
		group := g.(map[string]any)
		if iv, ok := group["interval"].(string); ok {
			group["interval"] = scaleDuration(t, iv)
		}
		for _, r := range group["rules"].([]any) {
			rule := r.(map[string]any)
			rule["expr"] = scaleExpr(t, rule["expr"].(string))
			if f, ok := rule["for"].(string); ok {
				rule["for"] = scaleDuration(t, f)
			}
		}
	}
	return writeYAML(t, dir, "alerts.yml", doc)
}

// writePrometheusConfig writes an example Prometheus configuration (examples/prometheus.yml
// or prometheus-probe.yml) rewritten only to point at the test's exporter (static targets,
// /sd URLs and the rule that sends probes to the exporter), with its intervals scaled and
// the scaled rules loaded.
func writePrometheusConfig(t *testing.T, dir, file, rules, exporter string) string {
	t.Helper()
	var cfg map[string]any
	readYAML(t, file, &cfg, false)
	global := cfg["global"].(map[string]any)
	for _, k := range []string{"scrape_interval", "evaluation_interval"} {
		global[k] = scaleDuration(t, global[k].(string))
	}
	cfg["rule_files"] = []any{rules}
	for _, j := range cfg["scrape_configs"].([]any) {
		job := j.(map[string]any)
		job["scrape_interval"] = scaleDuration(t, job["scrape_interval"].(string))
		// Not scaled: the exporter keeps half a second of the timeout for itself.
		job["scrape_timeout"] = job["scrape_interval"]
		if statics, ok := job["static_configs"].([]any); ok {
			for _, sc := range statics {
				sc.(map[string]any)["targets"] = []any{exporter}
			}
		}
		if sds, ok := job["http_sd_configs"].([]any); ok {
			for _, sd := range sds {
				sd := sd.(map[string]any)
				u, err := url.Parse(sd["url"].(string))
				if err != nil {
					t.Fatal(err)
				}
				u.Host = exporter
				sd["url"] = u.String()
				sd["refresh_interval"] = scaleDuration(t, sd["refresh_interval"].(string))
			}
		}
		if rcs, ok := job["relabel_configs"].([]any); ok {
			for _, rc := range rcs {
				rc := rc.(map[string]any)
				if rc["target_label"] == "__address__" && rc["source_labels"] == nil && rc["replacement"] != nil {
					rc["replacement"] = exporter
				}
			}
		}
	}
	return writeYAML(t, dir, "prometheus.yml", cfg)
}

// promAPI queries Prometheus' HTTP API.
type promAPI struct {
	base string
	ctx  context.Context
}

// sample is one element of a vector result (or the scalar, with no labels).
type sample struct {
	Metric map[string]string
	Value  float64
	Max    float64 // the largest point, for a matrix
}

// get calls an API path and decodes data into out; an API error is returned as such.
func (p promAPI) get(path string, params url.Values, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: HTTP %d, %v: %s", path, resp.StatusCode, err, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, env.ErrorType, env.Error)
	}
	if len(env.Warnings) > 0 {
		return fmt.Errorf("%s: warnings %q", path, env.Warnings)
	}
	return json.Unmarshal(env.Data, out)
}

func parseValue(v []any) (float64, error) {
	if len(v) != 2 {
		return 0, fmt.Errorf("bad value %v", v)
	}
	s, _ := v[1].(string)
	return strconv.ParseFloat(s, 64)
}

// query evaluates expr now (an instant query).
func (p promAPI) query(expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, fmt.Errorf("%w\nquery: %s", err, expr)
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]sample, 0, len(vec))
		for _, e := range vec {
			f, err := parseValue(e.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, sample{Metric: e.Metric, Value: f, Max: f})
		}
		return out, nil
	case "scalar":
		var v []any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, err
		}
		f, err := parseValue(v)
		return []sample{{Metric: map[string]string{}, Value: f, Max: f}}, err
	}
	return nil, fmt.Errorf("query %s: result type %s", expr, data.ResultType)
}

// queryRange evaluates expr over the last span, one step a second; each series' Value is
// its last point, Max its largest.
func (p promAPI) queryRange(expr string, span time.Duration) ([]sample, error) {
	end := time.Now()
	params := url.Values{
		"query": {expr},
		// Not whole seconds: a sample less than a second old must be in the range.
		"start": {strconv.FormatFloat(float64(end.Add(-span).UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {"1"},
	}
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][]any           `json:"values"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query_range", params, &data); err != nil {
		return nil, fmt.Errorf("%w\nquery_range: %s", err, expr)
	}
	var out []sample
	for _, e := range data.Result {
		if len(e.Values) == 0 {
			continue
		}
		s := sample{Metric: e.Metric}
		for i, v := range e.Values {
			f, err := parseValue(v)
			if err != nil {
				return nil, err
			}
			if i == 0 || f > s.Max {
				s.Max = f
			}
			s.Value = f
		}
		out = append(out, s)
	}
	return out, nil
}

// labelValues is what Grafana's label_values(selector, label) lists.
func (p promAPI) labelValues(selector, label string) ([]string, error) {
	var values []string
	params := url.Values{
		"match[]": {selector},
		"start":   {strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)},
	}
	err := p.get("/api/v1/label/"+label+"/values", params, &values)
	sort.Strings(values)
	return values, err
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Value       string            `json:"value"`
}

func (p promAPI) alerts() ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.get("/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// taskFamilies matches the per-task metrics whose values come from the API (the contract's
// table; not, for example, the age of cached values).
const taskFamilies = "metastudio_task_(items|succeeded_items|failed_items|status|info|begin_timestamp_seconds|end_timestamp_seconds|scrape_success)"

// seriesKey is name{label="value",...} without job and instance, labels sorted.
func seriesKey(m map[string]string) string {
	var labels []string
	for k, v := range m {
		if k != "__name__" && k != "job" && k != "instance" {
			labels = append(labels, fmt.Sprintf("%s=%q", k, v))
		}
	}
	sort.Strings(labels)
	return m["__name__"] + "{" + strings.Join(labels, ",") + "}"
}

// field returns a task field as the exporter reads it: a JSON number or digit string.
func field(f map[string]any, key string) (float64, bool) {
	switch v := f[key].(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case string:
		n, err := strconv.ParseFloat(v, 64)
		return n, err == nil
	}
	return 0, false
}

// label returns a task field as label text.
func label(f map[string]any, key string) string {
	switch v := f[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

var statusNames = map[string]string{"0": "waiting", "1": "running", "2": "succeeded", "3": "failed"}

// wantSeries is what the contract says the exporter reports for a task the simulator
// answers with fields f (f nil: a task whose call fails).
func wantSeries(id string, f map[string]any) map[string]float64 {
	key := func(name string, extra ...string) string {
		m := map[string]string{"__name__": name, "project": goodProject, "task_id": id}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return seriesKey(m)
	}
	if f == nil {
		return map[string]float64{key("metastudio_task_scrape_success"): 0}
	}
	out := map[string]float64{
		key("metastudio_task_scrape_success"): 1,
		key("metastudio_task_info", "task_name", label(f, "task_name"), "resource", label(f, "resource"),
			"task_type", label(f, "task_type"), "operator", label(f, "operator"), "user_id", label(f, "user_id")): 1,
		key("metastudio_task_status", "status", statusNames[label(f, "task_status")]): 1,
	}
	for name, fieldName := range map[string]string{
		"metastudio_task_items":           "total_count",
		"metastudio_task_succeeded_items": "success_count",
		"metastudio_task_failed_items":    "failure_count",
	} {
		if v, ok := field(f, fieldName); ok {
			out[key(name)] = v
		}
	}
	for name, fieldName := range map[string]string{
		"metastudio_task_begin_timestamp_seconds": "begin_time",
		"metastudio_task_end_timestamp_seconds":   "end_time",
	} {
		if v, ok := field(f, fieldName); ok && v > 0 {
			out[key(name)] = v / 1000
		}
	}
	return out
}

// diffSeries describes how got differs from want, or returns "".
func diffSeries(got, want map[string]float64) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			lines = append(lines, fmt.Sprintf("missing %s %v", k, want[k]))
		} else if g != want[k] {
			lines = append(lines, fmt.Sprintf("%s = %v, want %v", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("unexpected %s %v", k, got[k]))
		}
	}
	return strings.Join(lines, "\n")
}

// TestPrometheusEndToEnd runs the chain with the static example (examples/prometheus.yml)
// and with the probe example (examples/prometheus-probe.yml: /sd + /probe), each rewritten
// only to point at the test's exporter.
func TestPrometheusEndToEnd(t *testing.T) {
	need(t, "prometheus")
	probeData, err := os.ReadFile(prometheusProbeFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		mode mode
	}{
		{prometheusFile, staticMode(t)},
		{prometheusProbeFile, probeMode(t, "probe", prometheusProbeFile, probeData)},
	} {
		t.Run(c.mode.name, func(t *testing.T) {
			t.Parallel() // each mode has its own simulator, exporter and Prometheus
			endToEnd(t, c.file, c.mode)
		})
	}
}

func endToEnd(t *testing.T, promFile string, m mode) {
	prometheus := need(t, "prometheus")
	exporter := exporterBinary(t)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e2eLimit)
	t.Cleanup(cancel)
	dir := t.TempDir()

	// The simulator, with tasks fixed by the test, serving two projects: the exporter's key
	// of the second is refused.
	sim := simulator.New(simulator.Options{Credentials: map[string]string{simAK: simSK}, ProjectID: simProject,
		MoreProjects: []simulator.Project{{Name: "sg", ID: sgProject, Region: "ap-southeast-3", Credentials: map[string]string{sgAK: sgSK}}}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	nowMs := time.Now().UnixMilli()
	running, finished, waiting, failing := simulator.TaskID(0), simulator.TaskID(1), simulator.TaskID(2), simulator.TaskID(3)
	tasks := map[string]map[string]any{
		running: {"resource": "qa_pair", "task_name": `qa import "spring"`, "begin_time": nowMs - 10*60*1000,
			"task_type": 0, "operator": "ops-bot", "total_count": 200, "success_count": 50, "failure_count": 2,
			"task_status": 1, "task_id": running, "user_id": "u-1"},
		// Ended a minute ago (MetaStudioTaskFailureRatioHigh reports tasks that ended in the
		// last hour, a literal the time scaling leaves alone), an hour after it began.
		finished: {"resource": "intent", "task_name": "intent export", "begin_time": nowMs - 3660*1000,
			"end_time": nowMs - 60*1000, "task_type": 1, "operator": "li.si", "total_count": 100,
			"success_count": 60, "failure_count": 40, "task_status": 2, "task_id": finished, "user_id": "u-2"},
		// The documented string types, and nulls.
		waiting: {"resource": "knowledge", "task_name": "kb import", "begin_time": nil, "end_time": nil,
			"task_type": "0", "operator": "zhang_san", "total_count": "300", "success_count": "0",
			"failure_count": "0", "task_status": "0", "task_id": waiting, "user_id": "u-3"},
	}
	for id, f := range tasks {
		sim.SetTask(id, f)
	}
	// Not a 429: the exporter slows all its calls down for a minute after one, and this
	// test needs the other tasks fresh. promtool's unit tests prove MetaStudioAPIThrottled.
	sim.SetFault(failing, simulator.FaultInternal())
	taskIDs := []string{running, finished, waiting, failing}
	refused := simulator.ProjectTaskID(1, 0) // sorts after the good project's
	sim.SetProjectTask("sg", refused, map[string]any{"task_id": refused, "resource": "qa_pair", "total_count": 5, "failure_count": 1})

	// The exporter binary.
	if err := os.WriteFile(filepath.Join(dir, "sk"), []byte(simSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sg-sk"), []byte("wrong-"+sgSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("scrape:\n  timeout: 5s\n  concurrency: 4\nprojects:\n"+
		"  - name: %s\n    region: cn-north-4\n    project_id: %s\n    endpoint: %s\n"+
		"    credentials: {access_key: %s, secret_key_file: sk}\n    status_names:\n", goodProject, simProject, srv.URL, simAK)
	for _, k := range slices.Sorted(maps.Keys(statusNames)) {
		config += fmt.Sprintf("      %q: %s\n", k, statusNames[k])
	}
	config += "    tasks:\n"
	for _, id := range taskIDs {
		config += "      - " + id + "\n"
	}
	config += fmt.Sprintf("  - name: %s\n    region: ap-southeast-3\n    project_id: %s\n    endpoint: %s\n"+
		"    credentials: {access_key: %s, secret_key_file: sg-sk}\n    tasks: [%s]\n", badProject, sgProject, srv.URL, sgAK, refused)
	if err := os.WriteFile(filepath.Join(dir, "exporter.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	exporterAddr := testkit.FreeAddr(t)
	exp := start(t, ctx, dir, exporter, "--config.file="+filepath.Join(dir, "exporter.yml"),
		"--web.listen-address="+exporterAddr, "--log.level=debug")
	if err := waitHTTP(ctx, exp, "http://"+exporterAddr+"/-/ready"); err != nil {
		t.Fatal(err)
	}

	// Prometheus, with the example configuration and rules, time-scaled.
	rules := writeScaledRules(t, dir)
	promConfig := writePrometheusConfig(t, dir, promFile, rules, exporterAddr)
	promAddr := testkit.FreeAddr(t)
	prom := start(t, ctx, dir, prometheus, "--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--query.lookback-delta="+scaleDuration(t, "5m"), "--log.level=warn")
	if err := waitHTTP(ctx, prom, "http://"+promAddr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	api := promAPI{base: "http://" + promAddr, ctx: ctx}

	// 1. Prometheus scrapes the exporter.
	if err := poll(ctx, 200*time.Millisecond, func() error {
		s, err := api.query(fmt.Sprintf(`up{%s=%q} == 1`, exporterLabel, exporterAddr))
		if err == nil && len(s) == 0 {
			err = fmt.Errorf("no successful scrape of the exporter yet")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Prometheus scraped the exporter %.1fs after the start", time.Since(began).Seconds())

	// 2. What Prometheus stores is what the simulator holds.
	checkTaskSeries := func() {
		t.Helper()
		want := map[string]float64{}
		for _, id := range taskIDs {
			maps.Copy(want, wantSeries(id, tasks[id]))
		}
		var diff string
		err := poll(ctx, 200*time.Millisecond, func() error {
			s, err := api.query(fmt.Sprintf(`{__name__=~%q, %s=%q, project=%q}`, taskFamilies, exporterLabel, exporterAddr, goodProject))
			if err != nil {
				return err
			}
			got := map[string]float64{}
			for _, e := range s {
				// The target labels are the mode's (derived from the example's relabelling);
				// what is left are the exporter's own labels.
				id := e.Metric["task_id"]
				resource, _ := tasks[id]["resource"].(string)
				own := maps.Clone(e.Metric)
				for k, v := range m.task(exporterAddr, id, resource) {
					if e.Metric[k] != v {
						return fmt.Errorf("series %v: %s is not %q", e.Metric, k, v)
					}
					if k != "job" && k != "instance" && !(k == "resource" && e.Metric["__name__"] == "metastudio_task_info") {
						delete(own, k)
					}
				}
				got[seriesKey(own)] = e.Value
			}
			if diff = diffSeries(got, want); diff != "" {
				return fmt.Errorf("Prometheus differs from the simulator")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v:\n%s", err, diff)
		}
	}
	checkTaskSeries()
	// The exporter-wide series (with /probe, from the exporter's own job, which may not have
	// been scraped yet when the task series are in).
	// The refused project: its tasks are not read, its key is refused.
	for _, expr := range []string{
		`metastudio_api_requests_total{operation="ShowTask", code="500", project="beijing"} > 0`,
		`metastudio_api_requests_total{operation="ShowTask", code="200", project="beijing"} > 0`,
		`metastudio_api_requests_total{operation="ShowTask", code="401", project="singapore"} > 0`,
		`metastudio_auth_ok{project="beijing"} == 1`,
		`metastudio_auth_ok{project="singapore"} == 0`,
		`metastudio_project_resolved == 1`,
		`metastudio_task_scrape_success{project="singapore"} == 0`,
	} {
		if err := poll(ctx, 200*time.Millisecond, func() error {
			s, err := api.query(expr)
			want := 1
			if strings.HasPrefix(expr, "metastudio_project_resolved") {
				want = 2
			}
			if err == nil && len(s) != want {
				err = fmt.Errorf("%s: %v, want %d series", expr, s, want)
			}
			return err
		}); err != nil {
			t.Error(err)
		}
	}

	// 3. A task fails more items: MetaStudioTaskItemsFailed fires for it, only for it. The
	// rule compares with what Prometheus saw from 75 to 15 (scaled) minutes ago, so first
	// wait until that window holds the task.
	var itemsFailed rule
	for _, r := range readRules(t, rules) {
		if r.Alert == "MetaStudioTaskItemsFailed" {
			itemsFailed = r
		}
	}
	window := regexp.MustCompile(`max_over_time\([^()]*\)`).FindString(itemsFailed.Expr)
	if window == "" {
		t.Fatalf("cannot find the window of MetaStudioTaskItemsFailed in %q", itemsFailed.Expr)
	}
	if err := poll(ctx, 250*time.Millisecond, func() error {
		s, err := api.query(fmt.Sprintf(`%s and on (task_id) metastudio_task_items{task_id=%q}`, window, running))
		if err == nil && len(s) == 0 {
			err = fmt.Errorf("%s has no value for the task yet", window)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tasks[running]["failure_count"] = 7
	tasks[running]["success_count"] = 51
	sim.SetTask(running, tasks[running])
	t.Logf("raised the failed items of task %s %.1fs after the start", running, time.Since(began).Seconds())

	type want struct{ alertname, key, value string }
	firing := []want{
		{"MetaStudioTaskItemsFailed", "task_id", running},
		{"MetaStudioTaskFailureRatioHigh", "task_id", finished},
		{"MetaStudioTaskScrapeFailing", "task_id", failing},
		{"MetaStudioAuthFailing", "project", badProject},
	}
	quiet := []string{"MetaStudioExporterDown", "MetaStudioAPIThrottled", "MetaStudioProjectUnresolved"}
	var last []alert
	err := poll(ctx, 250*time.Millisecond, func() error {
		var err error
		if last, err = api.alerts(); err != nil {
			return err
		}
		for _, w := range firing {
			if !slices.ContainsFunc(last, func(a alert) bool {
				return a.Labels["alertname"] == w.alertname && a.Labels[w.key] == w.value && a.State == "firing"
			}) {
				return fmt.Errorf("%s is not firing for %s=%s", w.alertname, w.key, w.value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v; alerts: %+v", err, last)
	}
	t.Logf("the alerts fired %.1fs after the start", time.Since(began).Seconds())
	for _, a := range last {
		name := a.Labels["alertname"]
		if slices.Contains(quiet, name) && a.State == "firing" {
			t.Errorf("%s fires: %+v", name, a)
		}
		for _, w := range firing {
			if name == w.alertname && a.Labels[w.key] != w.value {
				t.Errorf("%s also fires for %s=%s: %+v", name, w.key, a.Labels[w.key], a)
			}
		}
		// The refused project's tasks stay quiet (its auth alert speaks for them); the good
		// project gets no project-wide alert.
		if a.State == "firing" && a.Labels["project"] == badProject && name != "MetaStudioAuthFailing" {
			t.Errorf("%s fires for the refused project: %+v", name, a)
		}
		if name == "MetaStudioAuthFailing" && !strings.Contains(a.Annotations["summary"], badProject) {
			t.Errorf("MetaStudioAuthFailing does not name the project in its summary: %v", a.Annotations)
		}
		if name == "MetaStudioTaskItemsFailed" {
			wantDesc := fmt.Sprintf(`5 more item(s) of the qa_pair task qa import "spring" (%s, project %s, exporter %s) failed in the last 15 minutes.`, running, goodProject, exporterAddr)
			if a.Labels["task_name"] != `qa import "spring"` || a.Labels["resource"] != "qa_pair" || a.Labels["severity"] != "warning" ||
				a.Annotations["description"] != wantDesc {
				t.Errorf("MetaStudioTaskItemsFailed: labels %v annotations %v; want the description %q", a.Labels, a.Annotations, wantDesc)
			}
		}
	}
	checkTaskSeries()

	// 4. Every rule evaluates: the scaled copies in Prometheus' rule manager, the shipped
	// expressions by the query API.
	if err := poll(ctx, 250*time.Millisecond, func() error {
		var data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := api.get("/api/v1/rules", nil, &data); err != nil {
			return err
		}
		n := 0
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" {
					return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
				}
			}
		}
		if want := len(readRules(t, alertsFile)); n != want {
			return fmt.Errorf("Prometheus has %d rules loaded, want %d", n, want)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	for _, r := range readRules(t, alertsFile) {
		if _, err := api.query(r.Expr); err != nil {
			t.Errorf("%s%s: %v", r.Alert, r.Record, err)
		}
	}

	// 5. Every dashboard query evaluates, and the panels show what the tasks are.
	checkDashboard(t, api, m, exporterAddr, map[string]string{running: "qa_pair", finished: "intent", waiting: "knowledge"})
	t.Logf("end to end in %.1fs", time.Since(began).Seconds())
}

// checkDashboard resolves the dashboard's variables as Grafana does (it evaluates each
// variable's query in order, with the variables before it substituted, and takes All or
// the first value), then evaluates every panel's queries. Two selections: All everywhere,
// and the first value of every variable (which picks the finished task, the only one of
// resource "intent"). Every panel must show data, and the main panels what the tasks are:
// running (in progress, 7 of 200 failed, 5 of them in the test), finished (40 of 100
// failed), waiting (no failures) and a task that cannot be scraped.
func checkDashboard(t *testing.T, api promAPI, m mode, exporter string, resources map[string]string) {
	t.Helper()
	d := readDashboard(t)
	var finished, running string
	for id, r := range resources {
		switch r {
		case "intent":
			finished = id
		case "qa_pair":
			running = id
		}
	}
	taskJob := m.task(exporter, running, "qa_pair")["job"]
	all := slices.Sorted(maps.Keys(resources))
	selections := []struct {
		name  string
		first bool
		// the values each variable lists
		lists map[string][]string
		// panel title / refId -> the values its series show, sorted
		want map[string][]float64
	}{
		{name: "All", lists: map[string][]string{"job": {taskJob}, "exporter": {exporter}, "resource": distinctValues(resources), "task": all},
			want: map[string][]float64{
				"Tasks in progress/A":     {1},
				"Tasks with failures/A":   {2},
				"Failed items in range/A": {5},
				"Tasks/E":                 {0, 7, 40},   // failed
				"Tasks/F":                 {0, 0.29, 1}, // done
				"Tasks not scraped/A":     {1, 1},       // one in each project: the refused project's task too
				"Items failed/A":          {0, 7, 40},
				"Items succeeded/A":       {0, 51, 60},
				// Discovery is off: nothing listed, nothing missed.
				"Tasks discovery missed/A": {0},
				"Discovery at max_tasks/A": {0},
			}},
		{name: "first values", first: true, lists: map[string][]string{"task": {finished}},
			want: map[string][]float64{
				"Tasks in progress/A":   {0},
				"Tasks with failures/A": {1},
				"Tasks/C":               {100},
				"Tasks/I":               {3600}, // duration: ended an hour after it began
				"Tasks not scraped/A":   {0},
			}},
	}
	// Bars only where a count rose in the last interval: checked over a range.
	const bars = "Failed items per interval"
	varRE := regexp.MustCompile(`\$\{?(\w+)\}?`)

	for _, sel := range selections {
		vars := map[string]string{"__interval": "5s", "__rate_interval": "10s", "__range": "1h"}
		substitute := func(expr string) string {
			return varRE.ReplaceAllStringFunc(expr, func(s string) string {
				if v, ok := vars[strings.Trim(s, "${}")]; ok {
					return v
				}
				t.Errorf("%s: unknown variable %s in %s", sel.name, s, expr)
				return s
			})
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q := labelValuesRE.FindStringSubmatch(v.QueryString)
			if q == nil {
				t.Fatalf("variable %s: cannot read query %q", v.Name, v.QueryString)
			}
			values, err := api.labelValues(substitute(q[1]), q[2])
			if err != nil || len(values) == 0 {
				t.Errorf("%s: variable %s lists nothing (%v): %s", sel.name, v.Name, err, substitute(q[1]))
				vars[v.Name] = "no-value"
				continue
			}
			if want, ok := sel.lists[v.Name]; ok && !slices.Equal(values, want) {
				t.Errorf("%s: variable %s lists %q, want %q", sel.name, v.Name, values, want)
			}
			if sel.first || !v.IncludeAll {
				// As Grafana writes a value into a regex matcher: regex-escaped, and the
				// backslashes doubled for the PromQL string.
				vars[v.Name] = strings.ReplaceAll(regexp.QuoteMeta(values[0]), `\`, `\\`)
			} else {
				vars[v.Name] = v.AllValue
			}
		}
		seen := map[string]bool{}
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				expr := substitute(tg.Expr)
				key := p.Title + "/" + tg.RefID
				got, err := api.query(expr)
				if err != nil {
					t.Errorf("%s: panel %q target %s: %v", sel.name, p.Title, tg.RefID, err)
					continue
				}
				if tg.Range {
					series, err := api.queryRange(expr, time.Minute)
					if err != nil {
						t.Errorf("%s: panel %q target %s as a range query: %v", sel.name, p.Title, tg.RefID, err)
					}
					if len(series) == 0 && (p.Title != bars || !sel.first) {
						t.Errorf("%s: panel %q target %s shows no data over the last minute: %s", sel.name, p.Title, tg.RefID, expr)
					}
					// The bars show the rise of the running task's failed items, which
					// happened less than a minute ago.
					if p.Title == bars && !sel.first && (len(series) != 1 || series[0].Max != 5) {
						t.Errorf("%s: panel %q over the last minute: %+v, want one series with a bar of 5: %s", sel.name, p.Title, series, expr)
					}
				} else if len(got) == 0 {
					t.Errorf("%s: panel %q target %s shows no data: %s", sel.name, p.Title, tg.RefID, expr)
				}
				if want, ok := sel.want[key]; ok {
					seen[key] = true
					var values []float64
					for _, s := range got {
						values = append(values, float64(int(s.Value*100+0.5))/100) // 2 decimals
					}
					slices.Sort(values)
					if !slices.Equal(values, want) {
						t.Errorf("%s: panel %q target %s shows %v, want %v: %s", sel.name, p.Title, tg.RefID, values, want, expr)
					}
				}
			}
		}
		for key := range sel.want {
			if !seen[key] {
				t.Errorf("%s: the dashboard has no panel/target %s", sel.name, key)
			}
		}
	}
}

// distinctValues returns the sorted distinct values of m.
func distinctValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
