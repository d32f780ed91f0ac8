package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

func decodeTask(t *testing.T, body string) *metastudio.Task {
	t.Helper()
	var task metastudio.Task
	if err := json.Unmarshal([]byte(body), &task); err != nil {
		t.Fatal(err)
	}
	return &task
}

// renderFixture is a config and an API whose tasks cover every shape a series can take:
// numbers and strings (with spaces), nulls and absent fields, a zero time, a mapped and an
// unmapped status, label values that need escaping or are not UTF-8, and failed tasks.
func renderFixture(t *testing.T) ([]string, *fakeapi.API) {
	tasks := map[string]*metastudio.Task{
		"full": decodeTask(t, `{"task_id":"full","task_name":"导入问答 2026","resource":"qa_pair","task_type":0,"operator":"ops",
			"user_id":"u1","begin_time":1744276967708,"end_time":"1744277967708","total_count":"5000","success_count":4990,
			"failure_count":10,"task_status":2}`),
		"spaced":  decodeTask(t, `{"total_count":" 42 ","success_count":"1e3","failure_count":"-1","begin_time":"0","task_status":"RUNNING"}`),
		"nulls":   decodeTask(t, `{"total_count":null,"success_count":"","failure_count":"NaN","begin_time":null,"end_time":0,"task_status":null}`),
		"escapes": decodeTask(t, `{"task_name":"a \"quoted\" back\\slash\nnew line","operator":"o\\","task_status":"x\"y","total_count":0.5}`),
		"empty":   decodeTask(t, `{}`),
		"bad-utf8": {TaskName: metastudio.Value{Text: "bad \xff name", Set: true}, TaskStatus: metastudio.Value{Text: "\xfe", Set: true},
			TotalCount: metastudio.Value{Text: "7", Set: true}},
		"big": decodeTask(t, `{"total_count":12345678901234567890,"success_count":1e21,"failure_count":1,"begin_time":1,"task_status":0}`),
	}
	errs := map[string]error{
		"fails":     &metastudio.APIError{Operation: "ShowTask", StatusCode: 404, Code: "MSS.00000003"},
		"transport": errors.New("connection refused"),
	}
	ids := []string{"spaced", "full", "fails", "nulls", "escapes", "empty", "bad-utf8", "transport", "big"}
	return ids, &fakeapi.API{Tasks: tasks, Errs: errs}
}

// renderedAndGathered runs one scrape and returns the exposition of its results twice:
// pre-rendered (writeExposition) and through client_golang (the series' registry and
// the text encoder), both with the same process-wide family.
func renderedAndGathered(t *testing.T, statusNames map[string]string) (rendered, gathered string) {
	ids, api := renderFixture(t)
	cfg := testConfig(ids...)
	cfg.StatusNames = statusNames
	c := newTestCollector(t, cfg, api, log.NewNopLogger())
	results, duration := c.run(context.Background(), "")
	global := prometheus.NewGauge(prometheus.GaugeOpts{Name: "metastudio_zz_global", Help: "A process-wide family."})
	global.Set(3)

	series := replay{duration, global}
	ch := make(chan prometheus.Metric, 256)
	for _, r := range results {
		c.emitValues(ch, r)
	}
	close(ch)
	for m := range ch {
		series = append(series, m)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(series)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}

	req := httptest.NewRequest("GET", "/metrics", nil)
	rec := httptest.NewRecorder()
	format, _ := textFormat(req)
	writeExposition(rec, req, format, results, c.statusNames,
		gatherExtra(log.NewNopLogger(), replay{duration, global}), log.NewNopLogger())
	return rec.Body.String(), buf.String()
}

// familiesOf parses an exposition and gives each family as its sorted lines: the text
// format's order of series within a family carries no meaning.
func familiesOf(t *testing.T, text string) map[string]string {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	out := map[string]string{}
	for name, mf := range parsed {
		var buf bytes.Buffer
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		sort.Strings(lines)
		out[name] = strings.Join(lines, "\n")
	}
	return out
}

// TestRenderedEqualsClientGolang: the pre-rendered exposition says exactly what
// client_golang says for the same results, family by family, HELP and TYPE included.
func TestRenderedEqualsClientGolang(t *testing.T) {
	checkRenderedEqualsClientGolang(t)
}

// checkRenderedEqualsClientGolang compares the two expositions of renderFixture's tasks,
// with and without status_names, and returns the pre-rendered one with status_names.
func checkRenderedEqualsClientGolang(t *testing.T) string {
	t.Helper()
	var last string
	// A name that is not UTF-8 cannot come from YAML, but leaves the series out on both
	// paths all the same.
	for _, names := range []map[string]string{nil, {"0": "not \xffUTF-8"}, {"2": "succeeded", "RUNNING": "running \"now\""}} {
		rendered, gathered := renderedAndGathered(t, names)
		last = rendered
		got, want := familiesOf(t, rendered), familiesOf(t, gathered)
		if len(want) < 10 {
			t.Fatalf("the client_golang side has only %d families:\n%s", len(want), gathered)
		}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("family %s:\nrendered:\n%s\nclient_golang:\n%s", name, got[name], w)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("family %s is rendered, and client_golang has none", name)
			}
		}
		// Each family once, and families in the order of their names.
		var order []string
		for _, line := range strings.Split(rendered, "\n") {
			if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
				order = append(order, strings.Fields(name)[0])
			}
		}
		if !sort.StringsAreSorted(order) || len(order) != len(want) {
			t.Errorf("families out of order or repeated: %v", order)
		}
	}
	return last
}

// TestRenderedSpotChecks pins a few lines written out by hand, so that a bug shared by
// both paths of TestRenderedEqualsClientGolang cannot hide.
func TestRenderedSpotChecks(t *testing.T) {
	rendered, _ := renderedAndGathered(t, map[string]string{"2": "succeeded"})
	for _, want := range []string{
		`metastudio_task_items{project="default",task_id="full"} 5000`,
		`metastudio_task_items{project="default",task_id="spaced"} 42`,
		`metastudio_task_succeeded_items{project="default",task_id="spaced"} 1000`,
		`metastudio_task_begin_timestamp_seconds{project="default",task_id="full"} 1.744276967708e+09`,
		`metastudio_task_end_timestamp_seconds{project="default",task_id="full"} 1.744277967708e+09`,
		`metastudio_task_failed_items{project="default",task_id="full"} 10`,
		`metastudio_task_succeeded_items{project="default",task_id="full"} 4990`,
		`metastudio_task_info{operator="ops",project="default",resource="qa_pair",task_id="full",task_name="导入问答 2026",task_type="0",user_id="u1"} 1`,
		`metastudio_task_items{project="default",task_id="big"} 1.2345678901234567e+19`,
		`metastudio_task_status{project="default",status="succeeded",task_id="full"} 1`,
		`metastudio_task_status{project="default",status="x\"y",task_id="escapes"} 1`,
		`metastudio_task_info{operator="o\\",project="default",resource="",task_id="escapes",task_name="a \"quoted\" back\\slash\nnew line",task_type="",user_id=""} 1`,
		`metastudio_task_items{project="default",task_id="bad-utf8"} 7`,
		`metastudio_task_scrape_success{project="default",task_id="fails"} 0`,
		`metastudio_task_scrape_success{project="default",task_id="full"} 1`,
		`metastudio_task_data_age_seconds{project="default",task_id="full"} 0`,
		"# HELP metastudio_task_items Items in the task: total_count of ShowTask. A finished task's values may come from the cache for up to cache.finished_ttl (see metastudio_task_data_age_seconds).",
		"# TYPE metastudio_task_items gauge",
	} {
		if !strings.Contains(rendered, want+"\n") {
			t.Errorf("missing line %s", want)
		}
	}
	for _, unwanted := range []string{`task_id="bad-utf8",task_name`, "\xff", "\xfe", `data_age_seconds{project="default",task_id="fails"}`,
		`begin_timestamp_seconds{project="default",task_id="spaced"}`, `metastudio_task_items{project="default",task_id="nulls"}`} {
		if strings.Contains(rendered, unwanted) {
			t.Errorf("unwanted %q in:\n%s", unwanted, rendered)
		}
	}
}

// TestProtobufEqualsText: a client that asks for protobuf (served through client_golang
// from the same values) gets the same task series as one that asks for text.
func TestProtobufEqualsText(t *testing.T) {
	checkProtobufEqualsText(t)
}

// checkProtobufEqualsText scrapes renderFixture's tasks in both formats and compares the
// task families.
func checkProtobufEqualsText(t *testing.T) {
	t.Helper()
	ids, api := renderFixture(t)
	cfg := testConfig(ids...)
	cfg.Cache.FinishedTTL = 0 // every scrape fetches: data_age 0 on both
	cfg.StatusNames["RUNNING"] = "running"
	c := newTestCollector(t, cfg, api, log.NewNopLogger())
	h := Handler(func() *Collector { return c }, NewSet(), log.NewNopLogger())
	scrape := func(accept string) map[string]string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		dec := expfmt.NewDecoder(rec.Body, expfmt.ResponseFormat(rec.Header()))
		out := map[string]string{}
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("Accept %s: %v", accept, err)
			}
			if !strings.HasPrefix(mf.GetName(), "metastudio_task_") {
				continue
			}
			var buf bytes.Buffer
			if _, err := expfmt.MetricFamilyToText(&buf, &mf); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			sort.Strings(lines)
			out[mf.GetName()] = strings.Join(lines, "\n")
		}
		return out
	}
	text := scrape("text/plain;version=0.0.4")
	proto := scrape("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	if len(text) != len(families.all) {
		t.Fatalf("text: %d task families, want %d", len(text), len(families.all))
	}
	for name, want := range text {
		if proto[name] != want {
			t.Errorf("family %s:\nprotobuf:\n%s\ntext:\n%s", name, proto[name], want)
		}
	}
	if len(proto) != len(text) {
		t.Errorf("protobuf: %d task families, text %d", len(proto), len(text))
	}
}

// TestRenderedFollowsValuesAndStatusNames: a task's lines change when its values do, and a
// new config (a reload changing status_names) renders afresh.
func TestRenderedFollowsValuesAndStatusNames(t *testing.T) {
	task := decodeTask(t, `{"total_count":1,"task_status":2}`)
	api := &fakeapi.API{Tasks: map[string]*metastudio.Task{"a": task}}
	cfg := testConfig("a")
	cfg.Cache.FinishedTTL = 0
	r := startRefresher(t, api, time.Now, 0, 2, 5*time.Second)
	scrape := func(c *Collector) string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		rec := httptest.NewRecorder()
		Handler(func() *Collector { return c }, NewSet(), log.NewNopLogger()).ServeHTTP(rec, req)
		return rec.Body.String()
	}
	c := New(cfg, projectsOf(cfg, nil), r, Shard{}, log.NewNopLogger())
	if got := scrape(c); !strings.Contains(got, `metastudio_task_status{project="default",status="succeeded",task_id="a"} 1`) ||
		!strings.Contains(got, `metastudio_task_items{project="default",task_id="a"} 1`) {
		t.Fatalf("first scrape:\n%s", got)
	}
	*task = *decodeTask(t, `{"total_count":2,"task_status":2}`)
	if got := scrape(c); !strings.Contains(got, `metastudio_task_items{project="default",task_id="a"} 2`) {
		t.Errorf("new values are not rendered:\n%s", got)
	}
	reloaded := testConfig("a")
	reloaded.Cache.FinishedTTL = 0
	reloaded.StatusNames = map[string]string{"2": "done"}
	if got := scrape(New(reloaded, projectsOf(reloaded, nil), r, Shard{}, log.NewNopLogger())); !strings.Contains(got, `metastudio_task_status{project="default",status="done",task_id="a"} 1`) {
		t.Errorf("a reload's status_names are not rendered:\n%s", got)
	}
}

// TestRenderedPassesPromtool runs the real promtool over the pre-rendered exposition.
func TestRenderedPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); .ci/run installs it")
	}
	rendered, _ := renderedAndGathered(t, map[string]string{"2": "succeeded"})
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(rendered)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, rendered)
	}
}

// TestAcceptsGzip: the encoding is negotiated as promhttp does.
func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                              false,
		"gzip":                          true,
		"gzip, deflate":                 true,
		"identity":                      false,
		"*":                             false,
		"gzip;q=0":                      false,
		"identity;q=1, gzip;q=0.5":      false,
		"identity;q=0.5, gzip;q=1":      true,
		"deflate, gzip ; q=0.8":         true,
		"br;q=1.0, gzip;q=0.8, *;q=0.1": true,
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if header != "" {
			req.Header.Set("Accept-Encoding", header)
		}
		if got := acceptsGzip(req); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", header, got, want)
		}
	}
}
