package load

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// Quick tests of the harness's helpers: `go test ./load/` runs these and no benchmark.

// TestRunningTasks asks an in-process simulator, as the exporter would, whether the
// configured tasks are running (begin_time, no end_time) from its start until well after
// the measurement (5 minutes), and whether the seeded tasks left out are not, at its start.
func TestRunningTasks(t *testing.T) {
	t.Parallel()
	ids := runningTasks()
	if len(ids) != numTasks {
		t.Fatalf("%d running tasks, want %d", len(ids), numTasks)
	}
	chosen := map[string]bool{}
	for _, id := range ids {
		chosen[id] = true
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start
	sim := simulator.New(simulator.Options{Tasks: simTasks, Tokens: []string{"tok"}, Now: func() time.Time { return now }})
	running := func(id string) bool {
		r := httptest.NewRequest(http.MethodGet, "/v2/p/ies/task/"+id, nil)
		r.Header.Set("X-Auth-Token", "tok")
		w := httptest.NewRecorder()
		sim.ServeHTTP(w, r)
		var task map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &task); err != nil || w.Code != http.StatusOK {
			t.Fatalf("ShowTask %s: %d %v", id, w.Code, err)
		}
		return task["begin_time"] != nil && task["begin_time"] != "" && task["end_time"] == nil
	}
	for _, at := range []time.Duration{0, 5 * time.Minute} {
		now = start.Add(at)
		for i := range simTasks {
			id := simulator.TaskID(i)
			// Left-out tasks that are waiting start 3 to 15 minutes in: check them at 0 only.
			if got := running(id); got != chosen[id] && (at == 0 || chosen[id]) {
				t.Errorf("at +%s: task %d running %v, chosen %v", at, i, got, chosen[id])
			}
		}
	}
}

func TestParseExposition(t *testing.T) {
	t.Parallel()
	text := `# TYPE metastudio_task_scrape_success gauge
metastudio_task_scrape_success{project="default",task_id="a"} 1
metastudio_task_scrape_success{project="default",task_id="b"} 0
metastudio_task_scrape_success{project="default",task_id="c"} 1
# TYPE metastudio_task_data_age_seconds gauge
metastudio_task_data_age_seconds{project="default",task_id="a"} 3.5
metastudio_task_data_age_seconds{project="default",task_id="c"} 41.25
# TYPE metastudio_task_end_timestamp_seconds gauge
metastudio_task_end_timestamp_seconds{project="default",task_id="c"} 1.7e9
# TYPE metastudio_api_rate_limit_per_second gauge
metastudio_api_rate_limit_per_second{project="default"} 12.5
`
	e, err := parseExposition(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if e.tasks != 3 || e.ok != 2 || e.finished != 1 || e.maxAge != 41.25 || e.rateLimit != 12.5 {
		t.Errorf("got %+v", e)
	}
	for name, text := range map[string]string{
		"without task series": "# TYPE go_goroutines gauge\ngo_goroutines 7\n",
		"broken":              "metastudio_task_scrape_success{project=\"default\",task_id=\"a\" 1\n",
	} {
		if e, err := parseExposition(strings.NewReader(text)); err == nil {
			t.Errorf("an exposition %s parsed: %+v", name, e)
		}
	}
}

// stats builds gateway counts: answered and throttled in total, ShowTask answers, repeats,
// and the answers of each task.
func stats(answered, throttled, show, repeats int64, tasks map[string]int64) simulator.GatewayStats {
	s := simulator.GatewayStats{Answered: answered, Throttled: throttled, Repeats: repeats,
		Operations: map[string]simulator.CallStats{simulator.OpShowTask: {Answered: show}},
		Tasks:      map[string]simulator.CallStats{}}
	for id, n := range tasks {
		s.Tasks[id] = simulator.CallStats{Answered: n}
	}
	return s
}

func ok(at, latency time.Duration, good int, age float64) scrape {
	return scrape{at: at, latency: latency, status: 200, expo: expo{tasks: numTasks, ok: good, maxAge: age}}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	ids := []string{"a", "b", "c"}
	first := snapshot{at: 0, stats: stats(0, 0, 0, 0, nil)}
	start := snapshot{at: 25 * time.Second, stats: stats(700, 50, 690, 300, map[string]int64{"a": 5, "b": 1})}
	// 50 s at 30/s: 1,500 allowed; 1,200 answered (80 %), 100 throttled (7.7 %), 10 repeats of 1,000.
	end := snapshot{at: 75 * time.Second, stats: stats(1900, 150, 1690, 310, map[string]int64{"a": 9, "b": 1, "c": 2})}
	records := []scrape{
		ok(10*time.Second, time.Second, 0, 99),                    // before the window: ignored
		ok(25*time.Second, 2*time.Second, numTasks, 12),           // in
		ok(30*time.Second, 4*time.Second, numTasks-4, 40),         // in: 99 % exactly, 40 s exactly
		ok(40*time.Second, 9*time.Second, numTasks-5, 41),         // in: below 99 %, over 40 s
		ok(50*time.Second, 11*time.Second, numTasks-8, 5),         // in: late, so 0 % (98 % in the exposition)
		{at: 60 * time.Second, latency: time.Second, err: "boom"}, // in: failed
		ok(75*time.Second, time.Second, 0, 99),                    // after: ignored
	}
	f := measure(records, 25*time.Second, 75*time.Second, first, start, end, ids)
	want := figures{scrapes: 5, failed: 1, late: 1, minSuccess: 0, minParsed: 0.98, belowSuccess: 3, maxAge: 41, overAge: 1,
		p50: 4, p99: 10.92, maxLatency: 11,
		calls:          calls{span: 50 * time.Second, answered: 1200, throttled: 100, showAnswered: 1000, repeat: 10},
		uncalledWindow: 1, uncalledRun: 0}
	if math.Abs(f.p99-want.p99) > 1e-9 {
		t.Errorf("p99 %v, want %v", f.p99, want.p99)
	}
	f.p99 = want.p99
	if f != want {
		t.Errorf("figures\n got %+v\nwant %+v", f, want)
	}
	if got := f.calls.allowanceUsed(); got != 0.8 {
		t.Errorf("allowance used %v, want 0.8", got)
	}
	if got := f.calls.throttledShare(); math.Abs(got-100.0/1300) > 1e-12 {
		t.Errorf("throttled share %v", got)
	}
	if got := f.calls.repeatShare(); got != 0.01 {
		t.Errorf("repeat share %v, want 0.01", got)
	}
	var verdicts []bool
	for _, tg := range f.targets() {
		verdicts = append(verdicts, tg.met)
	}
	// success missed, data_age missed, uncalled missed, allowance met, throttled met,
	// repeats met (1 % exactly), timeout missed.
	if want := []bool{false, false, false, true, true, true, false}; !equal(verdicts, want) {
		t.Errorf("verdicts %v, want %v:\n%v", verdicts, want, f.targets())
	}
}

func TestTargetsAllMetAndNaN(t *testing.T) {
	t.Parallel()
	good := figures{scrapes: 10, minSuccess: 1, minParsed: 1, maxAge: 9, p50: 1, p99: 2, maxLatency: 2,
		calls: calls{span: 50 * time.Second, answered: 1050, throttled: 10, showAnswered: 1050, repeat: 0}}
	for _, tg := range good.targets() {
		if !tg.met {
			t.Errorf("missed: %s", tg)
		}
		if !strings.HasPrefix(tg.String(), "met ") {
			t.Errorf("String() = %q", tg)
		}
	}
	// No calls at all: the shares are NaN, which meets nothing; no scrape meets nothing either.
	var none figures
	for _, tg := range none.targets() {
		if tg.met && !strings.Contains(tg.want, "uncalled") {
			t.Errorf("met with no data: %s", tg)
		}
		if tg.met != (tg.want == "no task left uncalled") {
			t.Errorf("%s: met %v", tg.want, tg.met)
		}
	}
}

func TestTimeline(t *testing.T) {
	t.Parallel()
	snaps := []snapshot{
		{at: 0, stats: stats(0, 0, 0, 0, nil)},
		{at: 5 * time.Second, stats: stats(150, 20, 150, 15, nil)},
		{at: 10 * time.Second, stats: stats(300, 20, 300, 15, nil)},
	}
	r1 := ok(time.Second, 3*time.Second, 200, 7) // ends at 4 s
	r1.expo.rateLimit = 25
	r2 := ok(2*time.Second, 4*time.Second, 400, 2) // ends at 6 s
	r2.expo.rateLimit = 50
	rows := timeline([]scrape{r1, r2}, snaps)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	if r := rows[0]; r.scrapes != 1 || r.minSuccess != 0.5 || r.maxAge != 7 || r.rateLimit != 25 ||
		r.calls.answered != 150 || r.calls.throttled != 20 || r.calls.repeatShare() != 0.1 {
		t.Errorf("row 0: %+v", r)
	}
	if r := rows[1]; r.scrapes != 1 || r.minSuccess != 1 || r.rateLimit != 50 || r.calls.answered != 150 || r.calls.repeat != 0 {
		t.Errorf("row 1: %+v", r)
	}
	if s := rows[0].String(); !strings.Contains(s, " 30.0 answered/s") || !strings.Contains(s, "min success  50.0 %") {
		t.Errorf("row 0 prints %q", s)
	}
}

func TestExporterConfig(t *testing.T) {
	t.Parallel()
	got := exporterConfig("127.0.0.1:1", "p", "AK", "/sk", []string{"x", "y"})
	want := "region: cn-north-4\nproject_id: p\nendpoint: http://127.0.0.1:1\n" +
		"credentials:\n  access_key: AK\n  secret_key_file: /sk\n" +
		"scrape:\n  concurrency: 8\n  max_requests_per_second: 50\n" +
		"tasks:\n  - x\n  - y\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
