package load

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// Quick tests of the probe-churn case's helpers.

func TestChurnTasks(t *testing.T) {
	t.Parallel()
	configured, unlisted := churnTasks()
	if len(configured) != churnConfigured || len(unlisted) != churnUnlisted {
		t.Fatalf("%d configured, %d unlisted; want %d, %d", len(configured), len(unlisted), churnConfigured, churnUnlisted)
	}
	seen := map[string]bool{}
	for _, id := range append(append([]string{}, configured...), unlisted...) {
		if seen[id] {
			t.Errorf("%s is chosen twice", id)
		}
		seen[id] = true
	}
	running := map[string]bool{}
	for i := range churnSimTasks {
		running[simulator.TaskID(i)] = isRunning(i)
	}
	for _, id := range configured {
		if !running[id] {
			t.Errorf("configured task %s is not running", id)
		}
	}
	for _, id := range unlisted {
		if _, seeded := running[id]; !seeded {
			t.Errorf("unlisted id %s is not seeded", id)
		}
	}
}

func TestDecodeChurnStats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		body     string
		overlaps int64 // -1: absent
	}{
		{"with overlaps", `{"answered": 7, "overlaps": 3, "tasks": {"a": {"answered": 2}}}`, 3},
		{"zero overlaps", `{"answered": 7, "overlaps": 0}`, 0},
		{"without the field", `{"answered": 7}`, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decodeStats[churnStats](strings.NewReader(tc.body))
			if err != nil || s.Answered != 7 {
				t.Fatalf("%+v, %v", s, err)
			}
			switch {
			case tc.overlaps < 0 && s.Overlaps != nil:
				t.Errorf("overlaps %d, want absent", *s.Overlaps)
			case tc.overlaps >= 0 && (s.Overlaps == nil || *s.Overlaps != tc.overlaps):
				t.Errorf("overlaps %v, want %d", s.Overlaps, tc.overlaps)
			}
		})
	}
}

func TestParseTaskSeries(t *testing.T) {
	t.Parallel()
	text := `# TYPE metastudio_task_scrape_success gauge
metastudio_task_scrape_success{project="default",task_id="a"} 1
metastudio_task_scrape_success{project="default",task_id="b"} 0
# TYPE metastudio_task_data_age_seconds gauge
metastudio_task_data_age_seconds{project="default",task_id="a"} 0.25
`
	age, success, err := parseTaskSeries(strings.NewReader(text))
	if err != nil || len(age) != 1 || age["a"] != 0.25 || len(success) != 2 || success["a"] != 1 || success["b"] != 0 {
		t.Errorf("age %v, success %v, %v", age, success, err)
	}
	for name, text := range map[string]string{
		"broken":              "metastudio_task_scrape_success{project=\"default\",task_id=\"a\" 1\n",
		"without task series": "# TYPE go_goroutines gauge\ngo_goroutines 7\n",
		"a task_id in two projects": "# TYPE metastudio_task_scrape_success gauge\n" +
			"metastudio_task_scrape_success{project=\"p1\",task_id=\"a\"} 1\nmetastudio_task_scrape_success{project=\"p2\",task_id=\"a\"} 1\n",
	} {
		if age, success, err := parseTaskSeries(strings.NewReader(text)); err == nil {
			t.Errorf("%s: parsed as age %v, success %v", name, age, success)
		}
	}
	for _, tc := range []struct {
		name, body string
		want       float64
		ok         bool
	}{
		{"success", "# TYPE metastudio_probe_success gauge\nmetastudio_probe_success 1\n", 1, true},
		{"failure", "metastudio_probe_duration_seconds 0.5\nmetastudio_probe_success 0\n", 0, true},
		{"with a project label", "# TYPE metastudio_probe_success gauge\nmetastudio_probe_success{project=\"default\"} 1\n", 1, true},
		{"absent", "metastudio_probe_duration_seconds 0.5\n", 0, false},
		{"twice", "metastudio_probe_success{project=\"a\"} 1\nmetastudio_probe_success{project=\"b\"} 1\n", 0, false},
		{"broken", "metastudio_probe_success{project=\"a\" 1\n", 0, false},
	} {
		if got, ok := probeSuccess([]byte(tc.body)); got != tc.want || ok != tc.ok {
			t.Errorf("%s: probeSuccess %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMeasureChurn(t *testing.T) {
	t.Parallel()
	configured := []string{"c1", "c2"}
	unlisted := []string{"u1", "u2"}
	counts := func(overlaps int64, tasks map[string]int64) churnStats {
		s := churnStats{GatewayStats: simulator.GatewayStats{Tasks: map[string]simulator.CallStats{}}}
		if overlaps >= 0 {
			s.Overlaps = &overlaps
		}
		for id, n := range tasks {
			s.Tasks[id] = simulator.CallStats{Answered: n}
		}
		return s
	}
	goodProbes := func() []probeRecord {
		var ps []probeRecord
		for i := range churnUnlisted {
			ps = append(ps, probeRecord{at: time.Duration(i) * time.Millisecond, latency: time.Second, status: 200, success: float64(i % 2)})
		}
		return ps
	}
	scrapeAt := func(at time.Duration, age1, age2 float64) taskScrape {
		return taskScrape{at: at, latency: 100 * time.Millisecond,
			age: map[string]float64{"c1": age1, "c2": age2}, success: map[string]float64{"c1": 1, "c2": 1}}
	}
	goodScrapes := func() []taskScrape {
		return []taskScrape{
			scrapeAt(0, 99, 99), // warm-up: not judged
			scrapeAt(2*time.Second, 1, 4),
			scrapeAt(3*time.Second, 0.5, 2),
		}
	}
	first, last := counts(5, map[string]int64{"c1": 1, "u1": 0}), counts(5, map[string]int64{"c1": 9, "c2": 8, "u1": 1, "u2": 1})
	storm, stormEnd := counts(5, map[string]int64{"c1": 2, "c2": 1}), counts(5, map[string]int64{"c1": 7, "c2": 4})

	for _, tc := range []struct {
		name    string
		probes  func([]probeRecord) []probeRecord
		scrapes func([]taskScrape) []taskScrape
		last    churnStats
		want    []bool // probes in time, no overlaps, data_age
	}{
		{name: "all met", want: []bool{true, true, true}},
		{name: "a probe past its timeout and grace", want: []bool{false, true, true},
			probes: func(ps []probeRecord) []probeRecord {
				ps[7].latency = churnProbeTimeout + churnGrace + time.Millisecond
				return ps
			}},
		{name: "a probe that failed", want: []bool{false, true, true},
			probes: func(ps []probeRecord) []probeRecord { ps[3].err, ps[3].status = "status 500", 500; return ps }},
		{name: "a probe never sent", want: []bool{false, true, true},
			probes: func(ps []probeRecord) []probeRecord { return ps[1:] }},
		{name: "an overlap", last: counts(6, nil), want: []bool{true, false, true}},
		{name: "overlaps not counted", last: counts(-1, nil), want: []bool{true, false, true}},
		{name: "a data_age over 4 s", want: []bool{true, true, false},
			scrapes: func(ss []taskScrape) []taskScrape { ss[2].age["c2"] = 4.5; return ss }},
		{name: "a data_age missing", want: []bool{true, true, false},
			scrapes: func(ss []taskScrape) []taskScrape { delete(ss[1].age, "c1"); return ss }},
		{name: "a scrape that failed", want: []bool{true, true, false},
			scrapes: func(ss []taskScrape) []taskScrape { ss[1] = taskScrape{at: 2 * time.Second, err: "boom"}; return ss }},
		{name: "no scrape after the warm-up", want: []bool{true, true, false},
			scrapes: func(ss []taskScrape) []taskScrape { return ss[:1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			probes, scrapes, end := goodProbes(), goodScrapes(), last
			if tc.probes != nil {
				probes = tc.probes(probes)
			}
			if tc.scrapes != nil {
				scrapes = tc.scrapes(scrapes)
			}
			if tc.last.Tasks != nil {
				end = tc.last
			}
			f := measureChurn(probes, scrapes, 2*time.Second, configured, unlisted, first, storm, stormEnd, end)
			var got []bool
			for _, tg := range f.targets() {
				got = append(got, tg.met)
			}
			if !equal(got, tc.want) {
				t.Errorf("verdicts %v, want %v:\n%v", got, tc.want, f.targets())
			}
		})
	}

	f := measureChurn(goodProbes(), goodScrapes(), 2*time.Second, configured, unlisted, first, storm, stormEnd, last)
	if f.probes != churnUnlisted || f.probesOK != churnUnlisted/2 || f.scrapes != 2 || f.maxAge != 4 || f.minSuccess != 2 ||
		f.minCalls != 3 || f.unlistedCalls != 2 || f.overlaps == nil || *f.overlaps != 0 || f.p50 != 1 || math.IsNaN(f.p99) {
		t.Errorf("figures %+v", f)
	}
}
