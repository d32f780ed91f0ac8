package load

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// Quick tests of the listing cases' helpers.

// TestListingConfigs: the exporter accepts each case's config, with discovery on, no
// configured task, the case's rate, min_refresh_interval 1900ms, a lookback that holds the
// spread and a max_tasks that holds every task.
func TestListingConfigs(t *testing.T) {
	t.Parallel()
	for _, c := range listCases {
		t.Run(c.name(), func(t *testing.T) {
			cfg, _, err := config.Parse([]byte(c.config("127.0.0.1:1", "/sk")), func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.Discovery.Enabled || len(cfg.Tasks) != 0 || cfg.Scrape.MaxRequestsPerSecond != c.rps() ||
				cfg.Scrape.MinRefreshInterval != 1900*time.Millisecond || cfg.Discovery.Lookback < listSpread ||
				cfg.Discovery.MaxTasks < c.tasks {
				t.Errorf("parsed as %+v", cfg)
			}
		})
	}
}

// TestListingSimulator asks an in-process simulator seeded as the flags of each case seed
// the binary, as discovery would, for the tasks begun within the default lookback: every
// task is listed, in pages of 100, and every one runs from the start until well after the
// measurement.
func TestListingSimulator(t *testing.T) {
	t.Parallel()
	for _, c := range listCases {
		t.Run(c.name(), func(t *testing.T) {
			t.Parallel()
			args := strings.Join(c.simArgs(), " ")
			for _, flag := range []string{"--tasks=" + strconv.Itoa(c.tasks), "--running=" + strconv.Itoa(c.tasks),
				"--spread=1h0m0s", "--search-paging=rows", "--rate-limit=30"} {
				if !strings.Contains(args, flag) {
					t.Fatalf("the simulator's flags %q lack %s", args, flag)
				}
			}
			start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			now := start
			sim := simulator.New(simulator.Options{Tasks: c.tasks, Running: c.tasks, Spread: listSpread,
				SearchPaging: simulator.PagingRows, Tokens: []string{"tok"}, Now: func() time.Time { return now }})
			for _, at := range []time.Duration{0, 5 * time.Minute} {
				now = start.Add(at)
				running := 0
				for offset := 0; ; offset += 100 {
					q := url.Values{"begin_time": {strconv.FormatInt(now.Add(-24*time.Hour).UnixMilli(), 10)},
						"end_time": {strconv.FormatInt(now.UnixMilli(), 10)}, "offset": {strconv.Itoa(offset)}, "limit": {"100"}}
					r := httptest.NewRequest(http.MethodGet, "/v2/p/ies/task?"+q.Encode(), nil)
					r.Header.Set("X-Auth-Token", "tok")
					w := httptest.NewRecorder()
					sim.ServeHTTP(w, r)
					var page struct {
						Count int              `json:"count"`
						Data  []map[string]any `json:"data"`
					}
					if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || w.Code != http.StatusOK {
						t.Fatalf("SearchTask: %d %v", w.Code, err)
					}
					if page.Count != c.tasks {
						t.Fatalf("at +%s: count %d, want %d", at, page.Count, c.tasks)
					}
					for _, task := range page.Data {
						if task["begin_time"] != nil && task["end_time"] == nil {
							running++
						}
					}
					if len(page.Data) < 100 {
						break
					}
				}
				if running != c.tasks {
					t.Errorf("at +%s: %d running tasks listed, want %d", at, running, c.tasks)
				}
			}
		})
	}
}

func TestShowTaskPerMinute(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		minRefresh time.Duration
		interval   time.Duration
		scrapers   int
		want       float64
	}{
		{"the setup: every 4th scrape of 0.5 s", 1900 * time.Millisecond, 2 * time.Second, 4, 30},
		{"exactly the interval", 2 * time.Second, 2 * time.Second, 4, 30},
		{"just over: the 5th scrape", 2100 * time.Millisecond, 2 * time.Second, 4, 24},
		{"one scraper", time.Second, 2 * time.Second, 1, 30},
		{"no min_refresh_interval: every scrape", 0, 2 * time.Second, 4, 120},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.minRefresh == 0 {
				c.minRefresh = time.Nanosecond // a scrape never finds a value of its own instant fresh
			}
			if got := showTaskPerMinute(c.minRefresh, c.interval, c.scrapers); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// listStats builds gateway counts: answered (of which ShowTask) and throttled.
func listStats(answered, show, throttled int64) simulator.GatewayStats {
	return simulator.GatewayStats{Answered: answered, Throttled: throttled,
		Operations: map[string]simulator.CallStats{simulator.OpShowTask: {Answered: show}}}
}

func TestMeasureListing(t *testing.T) {
	t.Parallel()
	c := listCase{tasks: 400, wantAge: 6, wantSeen: 0.25}
	fresh := func(at time.Duration) scrape {
		return scrape{at: at, latency: 300 * time.Millisecond, status: 200, expo: expo{tasks: 400, ok: 400, maxAge: 2.5}}
	}
	start := snapshot{at: 20 * time.Second, stats: listStats(100, 0, 0)}
	// 40 s at 30/s: 1,200 allowed.
	under := snapshot{at: 60 * time.Second, stats: listStats(340, 10, 50)} // 240 + 50 seen: 24.2 %
	over := snapshot{at: 60 * time.Second, stats: listStats(360, 10, 50)}  // 260 + 50 seen: 25.8 %
	cases := []struct {
		name     string
		change   func(*scrape) // applied to the scrape sent at 30 s
		end      snapshot
		verdicts []bool
	}{
		{"all fresh, under the allowance", nil, under, []bool{true, true}},
		{"over the allowance", nil, over, []bool{true, false}},
		{"a task missing", func(s *scrape) { s.expo.tasks, s.expo.ok = 399, 399 }, under, []bool{false, true}},
		{"a task failed", func(s *scrape) { s.expo.ok = 399 }, under, []bool{false, true}},
		{"data_age over 6 s", func(s *scrape) { s.expo.maxAge = 6.01 }, under, []bool{false, true}},
		{"data_age 6 s exactly", func(s *scrape) { s.expo.maxAge = 6 }, under, []bool{true, true}},
		{"no data_age at all", func(s *scrape) { s.expo.maxAge = math.NaN() }, under, []bool{false, true}},
		{"late", func(s *scrape) { s.latency = 11 * time.Second }, under, []bool{false, true}},
		{"failed", func(s *scrape) { s.err = "status 500" }, under, []bool{false, true}},
		{"sent before the window", func(s *scrape) { s.at = 19 * time.Second; s.expo.maxAge = 60 }, under, []bool{true, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			records := []scrape{fresh(25 * time.Second), fresh(30 * time.Second), fresh(35 * time.Second)}
			if tc.change != nil {
				tc.change(&records[1])
			}
			f := measureListing(c, records, listWarmUp, listRunFor, start, tc.end)
			var verdicts []bool
			for _, tg := range f.targets() {
				verdicts = append(verdicts, tg.met)
			}
			if !equal(verdicts, tc.verdicts) {
				t.Errorf("verdicts %v, want %v:\n%v", verdicts, tc.verdicts, f.targets())
			}
		})
	}
	f := measureListing(c, []scrape{fresh(25 * time.Second)}, listWarmUp, listRunFor, start, under)
	if got := f.perTaskPerMinute(); math.Abs(got-240.0/400/(40.0/60)) > 1e-12 {
		t.Errorf("calls per task per minute %v, want 0.9", got)
	}
	if f.calls.answered-f.calls.showAnswered != 230 || f.showTaskMin != 30 {
		t.Errorf("SearchTask answers %d, per-task ShowTask %v; want 230, 30", f.calls.answered-f.calls.showAnswered, f.showTaskMin)
	}
	// Without a share target, one target only.
	if n := len(measureListing(listCase{tasks: 4000, wantAge: 10}, nil, listWarmUp, listRunFor, start, under).targets()); n != 1 {
		t.Errorf("%d targets without wantSeen, want 1", n)
	}
}

func TestAgeRows(t *testing.T) {
	t.Parallel()
	s := func(at time.Duration, age float64, ok int) scrape {
		return scrape{at: at, latency: time.Second, status: 200, expo: expo{tasks: 400, ok: ok, maxAge: age}}
	}
	late := s(22*time.Second, 3, 400)
	late.latency = 12 * time.Second
	records := []scrape{s(10*time.Second, 9, 400), s(20*time.Second, 2.5, 400), s(21*time.Second, 4, 399), late,
		{at: 23 * time.Second, err: "boom"}}
	got := ageRows(records, 20*time.Second, 60*time.Second, 3)
	want := []string{" 20.0s:  2.5s/400   21.0s:  4.0s/399   22.0s:  3.0s/400 late", " 23.0s: failed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestShowTaskRanks(t *testing.T) {
	t.Parallel()
	a := snapshot{stats: simulator.GatewayStats{Tasks: map[string]simulator.CallStats{
		simulator.TaskID(0): {Answered: 2}, simulator.TaskID(7): {Answered: 1}}}}
	b := snapshot{stats: simulator.GatewayStats{Tasks: map[string]simulator.CallStats{
		simulator.TaskID(0): {Answered: 2}, simulator.TaskID(7): {Answered: 4}, simulator.TaskID(399): {Answered: 1},
		simulator.TaskID(12): {Answered: 1}}}}
	ranks, calls := showTaskRanks(a, b)
	if fmt.Sprint(ranks) != "[7 12 399]" || calls != 5 {
		t.Errorf("ranks %v, calls %d; want [7 12 399], 5", ranks, calls)
	}
	if got := rankSummary(ranks); got != "3 tasks, ranks (0 the newest) min 7, median 12, max 399" {
		t.Errorf("summary %q", got)
	}
	if got := rankSummary(nil); got != "none" {
		t.Errorf("summary of none %q", got)
	}
}
