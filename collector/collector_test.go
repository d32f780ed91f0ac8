package collector

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// startRefresher runs a Refresher for api with its own guard and rate (perSecond, 0 for
// no limit) until the test ends.
func startRefresher(t testing.TB, api TaskAPI, now func() time.Time, perSecond float64, concurrency int, timeout time.Duration) *refresh.Refresher {
	return startWithRate(t, api, now, refresh.NewRate(perSecond, min(1, max(perSecond, 1)), concurrency, now), concurrency, timeout)
}

// startWithRate is startRefresher with a rate of the test's own.
func startWithRate(t testing.TB, api TaskAPI, now func() time.Time, rate *refresh.Rate, concurrency int, timeout time.Duration) *refresh.Refresher {
	t.Helper()
	guard := refresh.NewGuard(time.Minute, nil, now, log.NewNopLogger())
	r := refresh.NewRefresher(now, log.NewNopLogger())
	r.SetProject(DefaultProject, NewAPI(api), guard, rate)
	r.Configure(concurrency, timeout)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	t.Cleanup(func() {
		cancel()
		r.Wait()
	})
	return r
}

// newTestCollector wires a Collector to a running Refresher for api with no rate limit
// and a real clock.
func newTestCollector(t testing.TB, cfg *config.Config, api TaskAPI, logger log.Logger) *Collector {
	r := startRefresher(t, api, time.Now, 0, cfg.Scrape.Concurrency, cfg.Scrape.Timeout)
	return New(cfg, projectsOf(cfg, nil), r, Shard{}, logger)
}

func manyTasks(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%03d", i)
	}
	return ids
}

var waitFor = testkit.WaitFor

func testConfig(tasks ...string) *config.Config {
	return &config.Config{
		Tasks:       tasks,
		Scrape:      config.Scrape{Timeout: 5 * time.Second, Concurrency: 3},
		Cache:       config.Cache{FinishedTTL: 10 * time.Minute},
		StatusNames: map[string]string{"2": "succeeded"},
	}
}

// scrapeCollector runs one scrape as a prometheus.Collector, for a test registry.
type scrapeCollector struct {
	ctx context.Context
	c   *Collector
}

func (s scrapeCollector) Describe(chan<- *prometheus.Desc) {}

func (s scrapeCollector) Collect(ch chan<- prometheus.Metric) { s.c.Collect(s.ctx, ch) }

func gather(t *testing.T, c *Collector, ctx context.Context, want string, names ...string) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(scrapeCollector{ctx: ctx, c: c})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

var taskMetricNames = []string{
	"metastudio_task_items", "metastudio_task_succeeded_items", "metastudio_task_failed_items",
	"metastudio_task_status", "metastudio_task_info", "metastudio_task_begin_timestamp_seconds",
	"metastudio_task_end_timestamp_seconds", "metastudio_task_scrape_success",
}

func TestExposition(t *testing.T) {
	api := &fakeapi.API{
		Bodies: map[string]string{
			"numbers": `{"task_id":"numbers","task_name":"FAQ import","resource":"qa_pair","begin_time":1744276967708,
				"end_time":1744277967708,"task_type":0,"operator":"ops","total_count":5000,"success_count":4990,
				"failure_count":10,"task_status":2,"user_id":"u1"}`,
			"strings": `{"task_id":"strings","task_name":"意图 \"导入\"\\ line1\nline2","resource":"intent","begin_time":"1744276967708",
				"end_time":null,"task_type":"1","total_count":"42","success_count":"7","failure_count":"0","task_status":"RUNNING"}`,
			"sparse":      `{"begin_time":0,"end_time":"","total_count":-1,"success_count":"NaN","failure_count":{"x":1},"task_status":""}`,
			"null_status": `{"task_status":null,"task_name":7}`,
		},
		Errs: map[string]error{
			"broken": &metastudio.APIError{Operation: "ShowTask", StatusCode: 400, Code: "MSS.000000003", Message: "Invalid parameter"},
		},
	}
	c := newTestCollector(t, testConfig("numbers", "strings", "sparse", "null_status", "broken"), api, log.NewNopLogger())
	gather(t, c, context.Background(), `
# HELP metastudio_task_begin_timestamp_seconds When the task began, in seconds since the epoch: begin_time of ShowTask / 1000.
# TYPE metastudio_task_begin_timestamp_seconds gauge
metastudio_task_begin_timestamp_seconds{project="default",task_id="numbers"} 1.744276967708e+09
metastudio_task_begin_timestamp_seconds{project="default",task_id="strings"} 1.744276967708e+09
# HELP metastudio_task_end_timestamp_seconds When the task ended, in seconds since the epoch: end_time of ShowTask / 1000.
# TYPE metastudio_task_end_timestamp_seconds gauge
metastudio_task_end_timestamp_seconds{project="default",task_id="numbers"} 1.744277967708e+09
# HELP metastudio_task_failed_items Items of the task that failed so far: failure_count of ShowTask. A finished task's values may come from the cache for up to cache.finished_ttl (see metastudio_task_data_age_seconds).
# TYPE metastudio_task_failed_items gauge
metastudio_task_failed_items{project="default",task_id="numbers"} 10
metastudio_task_failed_items{project="default",task_id="strings"} 0
# HELP metastudio_task_info Always 1; the labels carry task_name, resource, task_type, operator and user_id of ShowTask.
# TYPE metastudio_task_info gauge
metastudio_task_info{operator="",project="default",resource="",task_id="null_status",task_name="7",task_type="",user_id=""} 1
metastudio_task_info{operator="",project="default",resource="",task_id="sparse",task_name="",task_type="",user_id=""} 1
metastudio_task_info{operator="",project="default",resource="intent",task_id="strings",task_name="意图 \"导入\"\\ line1\nline2",task_type="1",user_id=""} 1
metastudio_task_info{operator="ops",project="default",resource="qa_pair",task_id="numbers",task_name="FAQ import",task_type="0",user_id="u1"} 1
# HELP metastudio_task_items Items in the task: total_count of ShowTask. A finished task's values may come from the cache for up to cache.finished_ttl (see metastudio_task_data_age_seconds).
# TYPE metastudio_task_items gauge
metastudio_task_items{project="default",task_id="numbers"} 5000
metastudio_task_items{project="default",task_id="strings"} 42
# HELP metastudio_task_scrape_success 1 if this scrape has the task's values (from ShowTask, or known ones as metastudio_task_data_age_seconds tells), 0 if its call failed or nothing is known (then its other series are absent).
# TYPE metastudio_task_scrape_success gauge
metastudio_task_scrape_success{project="default",task_id="broken"} 0
metastudio_task_scrape_success{project="default",task_id="null_status"} 1
metastudio_task_scrape_success{project="default",task_id="numbers"} 1
metastudio_task_scrape_success{project="default",task_id="sparse"} 1
metastudio_task_scrape_success{project="default",task_id="strings"} 1
# HELP metastudio_task_status Always 1; status is task_status of ShowTask as text, or its name from status_names.
# TYPE metastudio_task_status gauge
metastudio_task_status{project="default",status="RUNNING",task_id="strings"} 1
metastudio_task_status{project="default",status="succeeded",task_id="numbers"} 1
# HELP metastudio_task_succeeded_items Items of the task that succeeded so far: success_count of ShowTask. A finished task's values may come from the cache for up to cache.finished_ttl (see metastudio_task_data_age_seconds).
# TYPE metastudio_task_succeeded_items gauge
metastudio_task_succeeded_items{project="default",task_id="numbers"} 4990
metastudio_task_succeeded_items{project="default",task_id="strings"} 7
`, taskMetricNames...)
}

// TestConcurrencyIsBounded: scrape.concurrency bounds the calls in flight in the whole
// process, however many scrapes run.
func TestConcurrencyIsBounded(t *testing.T) {
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%d", i)
	}
	api := &fakeapi.API{Latency: 2 * time.Millisecond}
	c := newTestCollector(t, testConfig(ids...), api, log.NewNopLogger())
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			for i, r := range c.scrape(context.Background(), c.Watched("")) {
				if r.err != nil {
					t.Errorf("task %d: %v", i, r.err)
				}
			}
		})
	}
	wg.Wait()
	if got := api.MaxInFlight(); got > 3 || got < 1 {
		t.Errorf("5 scrapes put %d calls in flight, want at most scrape.concurrency = 3", got)
	}
	if got := api.Total(); got < 40 || got > 5*40 {
		t.Errorf("made %d calls, want 40 to 200", got)
	}
}

// TestDeadlineServesWhatIsKnown: when no answer comes before the scrape's deadline, the
// scrape ends on its deadline with what is known; calls do not pile up behind a probe
// that hangs.
func TestDeadlineServesWhatIsKnown(t *testing.T) {
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%d", i)
	}
	api := &fakeapi.API{Latency: time.Hour} // every call hangs until its own timeout
	c := newTestCollector(t, testConfig(ids...), api, log.NewNopLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	results := c.scrape(ctx, c.Watched(""))
	for i, r := range results {
		if r.err == nil {
			t.Errorf("task %d has values, but nothing was ever answered", i)
		}
	}
	// The credentials were never verified: one probe alone, with a deadline of its own,
	// and the scrape answers at its own deadline.
	if got := api.Total(); got != 1 {
		t.Errorf("%d calls were started; before the credentials are verified one probe goes out alone", got)
	}
	if Reason(results[0].err) != "timeout" {
		t.Errorf("the probed task: %v, want its own timeout", results[0].err)
	}
}

func TestScrapeTimeout(t *testing.T) {
	cases := []struct {
		header string
		max    time.Duration
		want   time.Duration
	}{
		{"", 10 * time.Second, 10 * time.Second},
		{"5", 10 * time.Second, 4500 * time.Millisecond},
		{"30", 10 * time.Second, 10 * time.Second},
		{"10", 10 * time.Second, 9500 * time.Millisecond}, // Prometheus' timeout equal to scrape.timeout
		{"10.3", 10 * time.Second, 9800 * time.Millisecond},
		{"0.4", 10 * time.Second, 400 * time.Millisecond},
		{"abc", 10 * time.Second, 10 * time.Second},
		{"-3", 10 * time.Second, 10 * time.Second},
		{"NaN", 10 * time.Second, 10 * time.Second},
		{"1e10", 10 * time.Second, 10 * time.Second}, // would overflow a time.Duration
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := ScrapeTimeout(r, tc.max); got != tc.want {
			t.Errorf("header %q max %s: got %s, want %s", tc.header, tc.max, got, tc.want)
		}
	}
}

func TestFailureIsLoggedOnChange(t *testing.T) {
	buf := &testkit.Buffer{}
	api := &fakeapi.API{Errs: map[string]error{}}
	c := newTestCollector(t, testConfig("a", "b"), api, log.NewLogfmtLogger(buf))
	scrape := func() string {
		c.Collect(context.Background(), make(chan prometheus.Metric, 100))
		return buf.Take()
	}
	if out := scrape(); out != "" {
		t.Errorf("healthy scrape logged %q", out)
	}
	api.Errs["a"] = &metastudio.APIError{Operation: "ShowTask", StatusCode: 404, Code: "APIGW.0101", RequestID: "r1"}
	out := scrape()
	if !strings.Contains(out, "level=warn") || !strings.Contains(out, "task_id=a") ||
		!strings.Contains(out, "error_code=APIGW.0101") || !strings.Contains(out, "status=404") || !strings.Contains(out, "request_id=r1") {
		t.Errorf("turning to failing: want one warn line with task, code, status and request id, got %q", out)
	}
	if out := scrape(); strings.Contains(out, "level=warn") || !strings.Contains(out, "level=debug") {
		t.Errorf("still failing with the same code: want debug only, got %q", out)
	}
	api.Errs["a"] = &metastudio.APIError{Operation: "ShowTask", StatusCode: 500, Code: "MSS.000000002"}
	if out := scrape(); strings.Count(out, "level=warn") != 1 || !strings.Contains(out, "MSS.000000002") {
		t.Errorf("new error code: want a warn line, got %q", out)
	}
	delete(api.Errs, "a")
	if out := scrape(); !strings.Contains(out, "level=info") || !strings.Contains(out, "task_id=a") {
		t.Errorf("recovery: want an info line, got %q", out)
	}
}

func BenchmarkScrape1000Tasks(b *testing.B) {
	ids, bodies := benchTasks(1000)
	cfg := testConfig(ids...)
	cfg.Scrape.Concurrency = 8
	c := newTestCollector(b, cfg, &fakeapi.API{Bodies: bodies}, log.NewNopLogger())
	reg := prometheus.NewRegistry()
	reg.MustRegister(scrapeCollector{ctx: context.Background(), c: c})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// projectsOf is the one project that cfg's top-level keys describe (the shorthand), with
// discovery d (nil for none).
func projectsOf(cfg *config.Config, d *Discovery) []Project {
	return []Project{{Project: &config.Project{Name: DefaultProject, Tasks: cfg.Tasks, StatusNames: cfg.StatusNames, Discovery: cfg.Discovery}, Discovery: d}}
}
