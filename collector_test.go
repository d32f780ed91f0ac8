package main

// End to end: the exporter's HTTP handler against the bundled simulator, over HTTP, with
// requests signed with SDK-HMAC-SHA256 and verified by the simulator as the gateway would.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	e2eProject = "0123456789abcdef0123456789abcdef"
	e2eAK      = "E2EACCESSKEY00000000"
	e2eSK      = "e2e-secret-key-must-never-be-logged"
)

// startSimulator serves a simulator on loopback; tasks and faults are set by the caller.
func startSimulator(t *testing.T) (*simulator.Server, string) {
	t.Helper()
	sim := simulator.New(simulator.Options{
		Credentials: map[string]string{e2eAK: e2eSK},
		ProjectID:   e2eProject,
		FieldStyle:  "number",
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// exporterFor builds the exporter's handler for a config that points at endpoint and
// signs with the simulator's AK and secretKey.
func exporterFor(t *testing.T, endpoint, secretKey string, tasks []string, logs *testkit.Buffer) http.Handler {
	t.Helper()
	text := "region: cn-north-4\nproject_id: " + e2eProject + "\nendpoint: " + endpoint +
		"\ncredentials:\n  access_key: " + e2eAK + "\n  secret_key: " + secretKey +
		"\nscrape:\n  timeout: 10s\n  concurrency: 4\nstatus_names:\n  \"2\": succeeded\ntasks:\n"
	for _, id := range tasks {
		text += "  - " + id + "\n"
	}
	cfg, _, err := config.Parse([]byte(text), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHandler(t.Context(), cfg, "/metrics", log.NewLogfmtLogger(logs), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// scrape asks the handler for /metrics as Prometheus would, with its timeout header.
func scrape(t *testing.T, h http.Handler, timeoutSeconds string) map[string]string {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutSeconds)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("/metrics answered %d: %s", rec.Code, rec.Body)
	}
	return parseExposition(t, rec.Body.String())
}

// parseExposition checks the exposition parses and returns each family's samples as
// sorted "name{labels} value" lines, one string per family.
func parseExposition(t *testing.T, body string) map[string]string {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	out := map[string]string{}
	for name, mf := range families {
		var buf bytes.Buffer
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
		var samples []string
		for _, line := range strings.Split(buf.String(), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				samples = append(samples, line)
			}
		}
		sort.Strings(samples)
		out[name] = strings.Join(samples, "\n")
	}
	return out
}

func taskSeries(families map[string]string) string {
	var names []string
	for name := range families {
		if strings.HasPrefix(name, "metastudio_task_") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, families[n])
	}
	return strings.Join(parts, "\n")
}

func TestEndToEnd(t *testing.T) {
	sim, url := startSimulator(t)
	sim.SetTask("good_numbers", map[string]any{
		"task_id": "good_numbers", "task_name": "FAQ import", "resource": "qa_pair", "begin_time": 1744276967708,
		"end_time": 1744277967708, "task_type": 0, "operator": "ops", "total_count": 5000, "success_count": 4990,
		"failure_count": 10, "task_status": 2, "user_id": "u-1",
	})
	sim.SetTask("good_strings", map[string]any{
		"task_id": "good_strings", "task_name": "intents", "resource": "intent", "begin_time": "1744276967708",
		"end_time": nil, "task_type": "1", "operator": "ops", "total_count": "42", "success_count": "7",
		"failure_count": "1", "task_status": "1",
	})
	sim.SetTask("odd-names", map[string]any{
		"task_id": "odd-names", "task_name": "quote \" backslash \\ newline \n 导入任务", "resource": "知识库",
		"begin_time": 1744276967708, "task_type": 0, "total_count": 3, "success_count": 0, "failure_count": 0,
	})
	for id, f := range map[string]simulator.Fault{
		"bad_param": simulator.FaultInvalidParam(),
		"not_found": simulator.FaultNotFound(),
		"throttled": simulator.FaultThrottled(),
		"html_5xx":  simulator.FaultHTML(502),
		"malformed": simulator.FaultMalformed(),
		"slow":      simulator.FaultSlow(time.Minute),
	} {
		sim.SetTask(id, map[string]any{"task_id": id, "total_count": 1})
		sim.SetFault(id, f)
	}
	logs := &testkit.Buffer{}
	// The throttled task comes last: its 429 cuts the rate, and the others are called by then.
	h := exporterFor(t, url, e2eSK, []string{"good_numbers", "good_strings", "odd-names", "bad_param", "not_found",
		"html_5xx", "malformed", "slow", "throttled"}, logs)

	start := time.Now()
	families := scrape(t, h, "2") // Prometheus' timeout 2s: the scrape stops after 1.5s
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the scrape took %s: the slow task must be cut at the deadline", took)
	}

	want := strings.TrimSpace(`
metastudio_task_begin_timestamp_seconds{project="default",task_id="good_numbers"} 1.744276967708e+09
metastudio_task_begin_timestamp_seconds{project="default",task_id="good_strings"} 1.744276967708e+09
metastudio_task_begin_timestamp_seconds{project="default",task_id="odd-names"} 1.744276967708e+09
metastudio_task_data_age_seconds{project="default",task_id="good_numbers"} 0
metastudio_task_data_age_seconds{project="default",task_id="good_strings"} 0
metastudio_task_data_age_seconds{project="default",task_id="odd-names"} 0
metastudio_task_end_timestamp_seconds{project="default",task_id="good_numbers"} 1.744277967708e+09
metastudio_task_failed_items{project="default",task_id="good_numbers"} 10
metastudio_task_failed_items{project="default",task_id="good_strings"} 1
metastudio_task_failed_items{project="default",task_id="odd-names"} 0
metastudio_task_info{operator="",project="default",resource="知识库",task_id="odd-names",task_name="quote \" backslash \\ newline \n 导入任务",task_type="0",user_id=""} 1
metastudio_task_info{operator="ops",project="default",resource="intent",task_id="good_strings",task_name="intents",task_type="1",user_id=""} 1
metastudio_task_info{operator="ops",project="default",resource="qa_pair",task_id="good_numbers",task_name="FAQ import",task_type="0",user_id="u-1"} 1
metastudio_task_items{project="default",task_id="good_numbers"} 5000
metastudio_task_items{project="default",task_id="good_strings"} 42
metastudio_task_items{project="default",task_id="odd-names"} 3
metastudio_task_scrape_success{project="default",task_id="bad_param"} 0
metastudio_task_scrape_success{project="default",task_id="good_numbers"} 1
metastudio_task_scrape_success{project="default",task_id="good_strings"} 1
metastudio_task_scrape_success{project="default",task_id="html_5xx"} 0
metastudio_task_scrape_success{project="default",task_id="malformed"} 0
metastudio_task_scrape_success{project="default",task_id="not_found"} 0
metastudio_task_scrape_success{project="default",task_id="odd-names"} 1
metastudio_task_scrape_success{project="default",task_id="slow"} 0
metastudio_task_scrape_success{project="default",task_id="throttled"} 0
metastudio_task_status{project="default",status="1",task_id="good_strings"} 1
metastudio_task_status{project="default",status="succeeded",task_id="good_numbers"} 1
metastudio_task_succeeded_items{project="default",task_id="good_numbers"} 4990
metastudio_task_succeeded_items{project="default",task_id="good_strings"} 7
metastudio_task_succeeded_items{project="default",task_id="odd-names"} 0`)
	if got := taskSeries(families); got != want {
		t.Errorf("task series:\n%s\n\nwant:\n%s", got, want)
	}

	// The slow task's call goes on after the scrape (it has its own timeout), so it is not
	// counted yet; the throttled task stays queued and may be called again (429) in time.
	wantRequests := strings.TrimSpace(`
metastudio_api_requests_total{code="200",operation="ShowTask",project="default"} 4
metastudio_api_requests_total{code="400",operation="ShowTask",project="default"} 1
metastudio_api_requests_total{code="404",operation="ShowTask",project="default"} 1
metastudio_api_requests_total{code="502",operation="ShowTask",project="default"} 1`)
	requests := families["metastudio_api_requests_total"]
	throttled := regexp.MustCompile(`\nmetastudio_api_requests_total\{code="429",operation="ShowTask",project="default"\} \d+`)
	if f := throttled.ReplaceAllString(requests, ""); f != wantRequests || !throttled.MatchString(requests) {
		t.Errorf("API requests:\n%v\nwant:\n%s\nand at least one 429", requests, wantRequests)
	}
	if f := families["metastudio_api_request_duration_seconds"]; !strings.Contains(f, `metastudio_api_request_duration_seconds_count{operation="ShowTask",project="default"}`) {
		t.Errorf("API request durations: %v", f)
	}
	if families["metastudio_scrape_duration_seconds"] == "" || families["metastudio_exporter_build_info"] == "" {
		t.Error("metastudio_scrape_duration_seconds or metastudio_exporter_build_info is missing")
	}

	for name := range families {
		if strings.HasPrefix(name, "metastudio_") && !slices.Contains(collector.MetricNames, name) && !slices.Contains(auth.MetricNames, name) {
			t.Errorf("%s is exported but not listed in collector.MetricNames or auth.MetricNames", name)
		}
	}
	for _, name := range auth.MetricNames {
		if _, ok := families[name]; !ok {
			t.Errorf("%s is listed in auth.MetricNames but this scrape did not export it", name)
		}
	}
	for _, name := range collector.MetricNames {
		_, ok := families[name]
		if !ok && !strings.HasPrefix(name, "metastudio_discovery_") && !strings.HasPrefix(name, "metastudio_probe_") { // discovery is off; probes are elsewhere
			t.Errorf("%s is listed in collector.MetricNames but this scrape did not export it", name)
		}
	}

	out := logs.String()
	for _, want := range []string{
		`task_id=bad_param error_code=MSS.000000003 status=400`,
		`task_id=not_found error_code=APIGW.0101 status=404`,
		`task_id=throttled error_code=APIGW.0308 status=429`,
		`task_id=html_5xx error_code=http_502 status=502`,
		`task_id=malformed error_code=decode status=200`,
		`level=debug msg="Task not answered yet" project=default task_id=slow error_code=timeout`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "level=warn") != 5 { // the slow task's call goes on: not a failure yet
		t.Errorf("want one warn line per failing task, got:\n%s", out)
	}
	if n := strings.Count(out, "request_id="); n != 5 {
		t.Errorf("every failure that got an answer (5) should log the API's request id, %d do:\n%s", n, out)
	}
	if strings.Contains(out, e2eSK) {
		t.Error("the secret key appears in the logs")
	}

	// The next scrape logs the same failures at debug only, not at warn again.
	scrape(t, h, "2")
	if n := strings.Count(logs.String(), "level=warn"); n != 5 {
		t.Errorf("a second scrape with the same failures logged %d warn lines in all, want still 5:\n%s", n, logs.String())
	}
}

// TestEndToEndWrongKey: a wrong secret fails every task with scrape_success 0 and a 401,
// and never reveals the key.
func TestEndToEndWrongKey(t *testing.T) {
	sim, url := startSimulator(t)
	sim.SetTask("t1", map[string]any{"task_id": "t1", "total_count": 1})
	logs := &testkit.Buffer{}
	h := exporterFor(t, url, "not-the-right-secret-key", []string{"t1"}, logs)
	families := scrape(t, h, "5")
	if got := taskSeries(families); got != `metastudio_task_scrape_success{project="default",task_id="t1"} 0` {
		t.Errorf("task series with a wrong key:\n%s", got)
	}
	if f := families["metastudio_api_requests_total"]; f != `metastudio_api_requests_total{code="401",operation="ShowTask",project="default"} 1` {
		t.Errorf("API requests: %v", f)
	}
	if !strings.Contains(logs.String(), "error_code=APIGW.0301") || strings.Contains(logs.String(), "not-the-right-secret-key") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestPromtoolCheckMetrics runs the real promtool over a scrape of the simulator's seeded
// tasks (both field styles, one failing task): it must print nothing.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testkit.Need(t, "promtool")
	sim := simulator.New(simulator.Options{
		Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject, Tasks: 12, FieldStyle: "mixed",
	})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	sim.SetFault(sim.TaskIDs()[3], simulator.FaultThrottled())
	h := exporterFor(t, srv.URL, e2eSK, sim.TaskIDs(), &testkit.Buffer{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, "metastudio_task_items{project=\"default\",") || !strings.Contains(body, "metastudio_task_scrape_success{project=\"default\",task_id=\""+sim.TaskIDs()[3]+"\"} 0") {
		t.Fatalf("the scrape lacks task series:\n%s", body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestDiscoveryEndToEnd: discovery lists the simulator's tasks with SearchTask by time
// windows, whatever the server's paging, and the tasks in progress are kept fresh by
// listings, not by ShowTask calls.
func TestDiscoveryEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		paging, mode string
		perAnswer    int
	}{
		{simulator.PagingIgnored, "none", 10},
		{simulator.PagingRows, "rows", 100},
		{simulator.PagingPages, "pages", 100},
	} {
		t.Run(tc.paging, func(t *testing.T) { discoveryEndToEnd(t, tc.paging, tc.mode, tc.perAnswer) })
	}
}

func discoveryEndToEnd(t *testing.T, paging, mode string, perAnswer int) {
	sim := simulator.New(simulator.Options{
		Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject, Tasks: 250, FieldStyle: "mixed",
		SearchPaging: paging,
	})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	text := "region: cn-north-4\nproject_id: " + e2eProject + "\nendpoint: " + srv.URL +
		"\ncredentials: {access_key: " + e2eAK + ", secret_key: " + e2eSK + "}\n" +
		"scrape: {max_requests_per_second: 0}\ndiscovery: {enabled: true, lookback: 48h}\n"
	cfg, _, err := config.Parse([]byte(text), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := newHandler(ctx, cfg, "/metrics", log.NewNopLogger(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// The first listing, before any scrape: its calls stop once it is done.
	pages := int64(-1)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		n := sim.Requests(simulator.OpSearchTask)
		if n > 0 && n == pages {
			break
		}
		pages = n
		time.Sleep(300 * time.Millisecond)
	}
	var families map[string]string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		families = scrape(t, h, "5")
		if strings.Contains(families["metastudio_discovery_tasks"], `metastudio_discovery_tasks{project="default"} `) &&
			!strings.Contains(families["metastudio_discovery_tasks"], `metastudio_discovery_tasks{project="default"} 0`) {
			// The listing may have ended during that scrape, after it chose its tasks.
			families = scrape(t, h, "5")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	listed := families["metastudio_discovery_tasks"]
	success := strings.Count(families["metastudio_task_scrape_success"], "} 1")
	if listed == "" || success == 0 {
		t.Fatalf("discovery found nothing:\n%v", families)
	}
	n := strings.Fields(listed)[1]
	if success != atoi(t, n) {
		t.Errorf("%d tasks have values, discovery lists %s", success, n)
	}
	// Paging ignored (the simulator's default, the strictest reading of the docs): 10 rows
	// an answer, every task found by narrowing the time window. Paging honoured: proven,
	// then used.
	found := atoi(t, n)
	if bound := (found+perAnswer-1)/perAnswer*3/2 + 10; pages < int64(found/perAnswer) || pages > int64(bound) {
		t.Errorf("%d SearchTask calls for %d tasks at %d rows an answer, want %d to %d", pages, found, perAnswer, found/perAnswer, bound)
	}
	if !strings.Contains(families["metastudio_discovery_missed_tasks"], `metastudio_discovery_missed_tasks{project="default"} 0`) ||
		!strings.Contains(families["metastudio_discovery_paging"], `metastudio_discovery_paging{mode="`+mode+`",project="default"} 1`) {
		t.Errorf("discovery's figures:\n%s\n%s", families["metastudio_discovery_missed_tasks"], families["metastudio_discovery_paging"])
	}
	// A scrape of the running tasks is answered by listings, not by a ShowTask per task.
	before, searches := sim.Requests(simulator.OpShowTask), sim.Requests(simulator.OpSearchTask)
	families = scrape(t, h, "5")
	if calls := sim.Requests(simulator.OpShowTask) - before; calls != 0 {
		t.Errorf("a scrape made %d ShowTask calls; listings must answer for the running tasks", calls)
	}
	if calls := sim.Requests(simulator.OpSearchTask) - searches; calls == 0 || calls > int64((found+perAnswer-1)/perAnswer*3/2+10) {
		t.Errorf("a scrape made %d SearchTask calls", calls)
	}
	if got := strings.Count(families["metastudio_task_scrape_success"], "} 1"); got != success {
		t.Errorf("%d tasks have values in the second scrape, want %d", got, success)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
