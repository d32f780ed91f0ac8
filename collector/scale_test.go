package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
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

func scaleCollector(t *testing.T, cfg *config.Config, api TaskAPI, clock *testkit.Clock, perSecond float64) *Collector {
	return New(cfg, projectsOf(cfg, nil), startRefresher(t, api, clock.Now, perSecond, cfg.Scrape.Concurrency, cfg.Scrape.Timeout), Shard{}, log.NewNopLogger())
}

func successes(results []result) (ok int, ages []time.Duration) {
	for _, r := range results {
		if r.err == nil {
			ok++
			ages = append(ages, r.age)
		}
	}
	return ok, ages
}

func TestFinishedTasksAreCached(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &fakeapi.API{}
	cfg := testConfig("done1", "running1")
	cfg.Cache.FinishedTTL = 10 * time.Minute
	c := scaleCollector(t, cfg, api, clock, 0)
	c.scrape(context.Background(), c.Watched(""))
	clock.Advance(9 * time.Minute)
	results := c.scrape(context.Background(), c.Watched(""))
	if calls := api.PerID(); calls["done1"] != 1 || calls["running1"] != 2 {
		t.Fatalf("within the TTL: calls %v, want done1 once and running1 every scrape", calls)
	}
	if results[0].age != 9*time.Minute || results[0].err != nil {
		t.Errorf("the cached task: age %s, err %v; want 9m and its values", results[0].age, results[0].err)
	}
	clock.Advance(time.Minute)
	c.scrape(context.Background(), c.Watched(""))
	if calls := api.PerID(); calls["done1"] != 2 {
		t.Errorf("after the TTL the finished task must be fetched again: %v", calls)
	}
	cfg.Cache.FinishedTTL = 0
	c.scrape(context.Background(), c.Watched(""))
	if calls := api.PerID(); calls["done1"] != 3 {
		t.Errorf("finished_ttl 0 disables the cache: %v", calls)
	}
}

// TestBudgetServesLastValues: the tasks a scrape cannot reach before its deadline at the
// rate in force are served from their last values, with their age.
func TestBudgetServesLastValues(t *testing.T) {
	api := &fakeapi.API{}
	ids := manyTasks(20)
	cfg := testConfig(ids...)
	cfg.Scrape.Concurrency = 5
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	rate := refresh.NewRate(0, 1, 5, clock.Now)
	r := startWithRate(t, api, clock.Now, rate, 5, 5*time.Second)
	c := New(cfg, projectsOf(cfg, nil), r, Shard{}, log.NewNopLogger())
	c.scrape(context.Background(), c.Watched("")) // every task has values
	clock.Advance(time.Minute)
	rate.Configure(0.01, 0.01, 5) // a burst of 5, then one call every 100 s
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	results := c.scrape(ctx, c.Watched(""))
	ok, ages := successes(results)
	if ok != 20 {
		t.Fatalf("%d of 20 tasks with values; a task the budget does not reach keeps its last values", ok)
	}
	stale := 0
	for _, a := range ages {
		if a == time.Minute {
			stale++
		}
	}
	if called := api.Total() - 20; stale != 20-called || called > 6 {
		t.Errorf("%d calls and %d tasks a minute old; want at most the burst (and one more) called, the rest served with their age", called, stale)
	}
}

func page(offset, count int, ids ...string) *metastudio.TaskPage {
	var p metastudio.TaskPage
	p.Offset = metastudio.Value{Text: fmt.Sprint(offset), Set: true}
	p.Count = metastudio.Value{Text: fmt.Sprint(count), Set: true}
	for _, id := range ids {
		p.Data = append(p.Data, *fakeapi.Task(id, strings.HasPrefix(id, "done")))
	}
	return &p
}

func discoveryConfig() *config.Config {
	cfg := testConfig()
	cfg.Discovery = config.Discovery{Enabled: true, Resources: []string{"qa_pair", "intent"}, Lookback: 24 * time.Hour,
		RefreshInterval: time.Minute, MaxTasks: 100}
	return cfg
}

func discoveryCollector(t *testing.T, cfg *config.Config, api *fakeapi.API, clock *testkit.Clock) (*Collector, *Discovery) {
	r := startRefresher(t, api, clock.Now, 0, 4, 5*time.Second)
	d := NewDiscovery(DefaultProject, cfg.Discovery, r, log.NewNopLogger())
	return New(cfg, projectsOf(cfg, d), r, Shard{}, log.NewNopLogger()), d
}

func TestDiscovery(t *testing.T) {
	clock := testkit.NewClock(time.UnixMilli(1744276967708 + 3600_000)) // an hour after the tasks began
	cases := []struct {
		name     string
		count    int      // the answer's count
		ids      []string // the tasks it lists, the same at every call
		want     int      // tasks found
		maxCalls int      // SearchTask calls
	}{
		{"one answer", 2, []string{"done1", "run1"}, 2, 1},
		{"the server ignores the time filter", 50, []string{"done1", "run1"}, 2, 6},
		{"bad ids are skipped", 2, []string{"done1", "../x"}, 1, 1},
		{"the same task twice is malformed", 2, []string{"done1", "done1"}, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeapi.API{Search: func(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) {
				return page(0, tc.count, tc.ids...), nil
			}}
			c, d := discoveryCollector(t, discoveryConfig(), api, clock)
			d.Refresh(context.Background())
			searches := api.Searches()
			if got := len(d.Tasks()); got != tc.want || len(searches) > tc.maxCalls {
				t.Fatalf("found %d tasks with %d calls, want %d with at most %d", got, len(searches), tc.want, tc.maxCalls)
			}
			// Only the documented parameters: the time window, the resources; no paging.
			p := searches[0]
			if p.Limit != 0 || p.Offset != 0 || p.BeginTime != clock.Now().Add(-24*time.Hour).UnixMilli() ||
				p.EndTime != clock.Now().UnixMilli() || strings.Join(p.Resources, ",") != "qa_pair,intent" {
				t.Errorf("search parameters %+v", p)
			}
			// Listed finished tasks need no ShowTask call; tasks in progress get one.
			results := c.scrape(context.Background(), c.Watched(""))
			if ok, _ := successes(results); ok != tc.want {
				t.Errorf("%d of %d discovered tasks have values", ok, tc.want)
			}
			calls := api.PerID()
			for id, n := range calls {
				if strings.HasPrefix(id, "done") && n > 0 {
					t.Errorf("finished task %s found by discovery was fetched with ShowTask", id)
				}
			}
			if strings.Contains(strings.Join(d.taskIDs(), ","), "run1") && calls["run1"] != 1 {
				t.Errorf("the task in progress must be refreshed by ShowTask: %v", calls)
			}
		})
	}
}

// TestListingFreshensRunningTasks: 50 running discovered tasks are refreshed for a scrape
// by one listing, not by 50 ShowTask calls; a task the listing no longer returns gets its
// ShowTask.
func TestListingFreshensRunningTasks(t *testing.T) {
	for _, mode := range []string{pagingRows, pagingPages, "ignored"} {
		t.Run(mode, func(t *testing.T) {
			clock := testkit.NewClock(time.UnixMilli(1_800_000_000_000))
			srv := &pagingServer{mode: mode, begins: spread(50, clock.Now().UnixMilli()-1000, 3_600_000)}
			api := &fakeapi.API{Search: srv.search}
			c, d := discoveryCollector(t, discoveryConfig(), api, clock)
			d.Refresh(context.Background())
			if n := len(d.Tasks()); n != 50 {
				t.Fatalf("discovery found %d of 50", n)
			}
			before := len(api.Searches())
			clock.Advance(time.Second)
			delete(srv.begins, "t00007") // gone from the listing
			results := c.scrape(context.Background(), c.Watched(""))
			if ok, _ := successes(results); ok != 50 {
				t.Errorf("%d of 50 tasks have values", ok)
			}
			for _, r := range results {
				if r.err == nil && r.age != 0 {
					t.Errorf("task %s is %s old; want values listed for this scrape", r.id, r.age)
				}
			}
			if n, calls := api.Total(), api.PerID(); n != 1 || calls["t00007"] != 1 {
				t.Errorf("%d ShowTask calls (%v); want one, for the task no longer listed", n, calls)
			}
			if n := len(api.Searches()) - before; n > 7 {
				t.Errorf("%d listing calls for 50 running tasks", n)
			}
		})
	}
}

func (d *Discovery) taskIDs() []string {
	var ids []string
	for _, t := range d.Tasks() {
		ids = append(ids, t.ID)
	}
	return ids
}

func TestDiscoveryKeepsTheLastListAndBoundsIt(t *testing.T) {
	clock := testkit.NewClock(time.UnixMilli(1744276967708 + 3600_000))
	fail := atomic.Bool{}
	api := &fakeapi.API{Search: func(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) {
		if fail.Load() {
			return nil, &metastudio.APIError{Operation: "SearchTask", StatusCode: 500, Code: "MSS.000000002"}
		}
		return page(0, 3, "run1", "done1", "done2"), nil
	}}
	cfg := discoveryConfig()
	cfg.Discovery.MaxTasks = 2
	_, d := discoveryCollector(t, cfg, api, clock)
	d.Refresh(context.Background())
	if got := d.taskIDs(); len(got) != 2 {
		t.Fatalf("max_tasks 2: kept %v", got)
	}
	fail.Store(true)
	d.Refresh(context.Background())
	if got := d.taskIDs(); len(got) != 2 {
		t.Errorf("a failed refresh must keep the last list, got %v", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(d)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP metastudio_discovery_tasks Tasks that discovery's last SearchTask listing found (begun within discovery.lookback, at most discovery.max_tasks), and running tasks found before.
# TYPE metastudio_discovery_tasks gauge
metastudio_discovery_tasks 2
`), "metastudio_discovery_tasks"); err != nil {
		t.Error(err)
	}
	// Finished tasks drop out lookback after they began; a running one stays until it ends,
	// also when a listing no longer returns it.
	clock.Advance(24 * time.Hour)
	if got := d.taskIDs(); len(got) != 1 || got[0] != "run1" {
		t.Errorf("a day later the finished task must drop out and the running one stay: %v", got)
	}
	fail.Store(false)
	api.Search = func(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) { return page(0, 0), nil }
	d.Refresh(context.Background())
	if got := d.taskIDs(); len(got) != 1 || got[0] != "run1" {
		t.Errorf("after a listing that no longer returns it, the running task must stay: %v", got)
	}
}

// TestDiscoveryKeepsTheNewest: over max_tasks, discovery keeps the tasks that began last,
// newest first.
func TestDiscoveryKeepsTheNewest(t *testing.T) {
	clock := testkit.NewClock(time.UnixMilli(1744276967708 + 3600_000))
	begun := func(id string, minutesAgo int) metastudio.Task {
		var tk metastudio.Task
		body := fmt.Sprintf(`{"task_id":%q,"total_count":1,"begin_time":%d}`, id, clock.Now().Add(-time.Duration(minutesAgo)*time.Minute).UnixMilli())
		if err := json.Unmarshal([]byte(body), &tk); err != nil {
			t.Fatal(err)
		}
		return tk
	}
	api := &fakeapi.API{Search: func(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) {
		pg := page(0, 4)
		pg.Data = []metastudio.Task{begun("old", 50), begun("newest", 5), begun("oldest", 90), begun("mid", 20)}
		return pg, nil
	}}
	cfg := discoveryConfig()
	cfg.Discovery.MaxTasks = 2
	_, d := discoveryCollector(t, cfg, api, clock)
	d.Refresh(context.Background())
	if got := strings.Join(d.taskIDs(), " "); got != "newest mid" {
		t.Errorf("kept %q, want the two newest, newest first: \"newest mid\"", got)
	}
}

// TestHousekeepingSparesALongListing: the tasks a listing in progress has stored are
// watched before it ends; housekeeping does not drop them.
func TestHousekeepingSparesALongListing(t *testing.T) {
	clock := testkit.NewClock(time.UnixMilli(1_800_000_000_000))
	srv := &pagingServer{mode: "ignored", begins: spread(30, clock.Now().UnixMilli()-1000, 3_600_000)}
	gate := make(chan struct{})
	var calls atomic.Int64
	api := &fakeapi.API{Search: func(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error) {
		if calls.Add(1) == 2 {
			<-gate // the pass goes on slowly
		}
		return srv.search(ctx, p)
	}}
	c, d := discoveryCollector(t, discoveryConfig(), api, clock)
	done := make(chan struct{})
	go func() { defer close(done); d.Refresh(context.Background()) }()
	waitFor(t, "the first answer stored", func() bool { return c.refresher.Len() >= 10 })
	c.refresher.Prune(func(k refresh.Key) bool { return c.Listed(k.Project, k.ID) })
	if n := c.refresher.Len(); n < 10 {
		t.Errorf("housekeeping during the listing left %d of its 10 stored tasks", n)
	}
	close(gate)
	<-done
	if n := len(d.Tasks()); n != 30 {
		t.Errorf("the listing found %d of 30", n)
	}
}
