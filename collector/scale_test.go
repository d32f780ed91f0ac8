package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// countingAPI answers ShowTask with a task per id (finished when the id starts with "done")
// and SearchTask with pages, counting calls per id.
type countingAPI struct {
	mu       sync.Mutex
	calls    map[string]int
	searches []metastudio.SearchParams
	pages    func(p metastudio.SearchParams) (*metastudio.TaskPage, error)
	gate     chan struct{} // if set, calls wait until it is closed
}

func (a *countingAPI) ShowTask(ctx context.Context, id string) (*metastudio.Task, error) {
	a.mu.Lock()
	if a.calls == nil {
		a.calls = map[string]int{}
	}
	a.calls[id]++
	gate := a.gate
	a.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return task(id, strings.HasPrefix(id, "done")), nil
}

func (a *countingAPI) SearchTask(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error) {
	a.mu.Lock()
	a.searches = append(a.searches, p)
	a.mu.Unlock()
	return a.pages(p)
}

func (a *countingAPI) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		n += c
	}
	return n
}

func task(id string, finished bool) *metastudio.Task {
	body := fmt.Sprintf(`{"task_id":%q,"total_count":10,"success_count":4,"failure_count":1,"begin_time":1744276967708}`, id)
	if finished {
		body = fmt.Sprintf(`{"task_id":%q,"total_count":10,"success_count":9,"failure_count":1,"begin_time":1744276967708,"end_time":1744277967708}`, id)
	}
	var t metastudio.Task
	if err := json.Unmarshal([]byte(body), &t); err != nil {
		panic(err)
	}
	return &t
}

func scaleCollector(cfg *config.Config, api API, clock *fakeClock, perSecond float64) *Collector {
	guard := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
	limiter := NewLimiter(perSecond, cfg.Scrape.Concurrency, clock.Now)
	return New(cfg, NewFetcher(api, guard, limiter, clock.Now), nil, Shard{}, log.NewNopLogger())
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
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	api := &countingAPI{}
	cfg := testConfig("done1", "running1")
	cfg.Cache.FinishedTTL = 10 * time.Minute
	c := scaleCollector(cfg, api, clock, 0)
	c.scrape(context.Background(), c.Watched())
	clock.Advance(9 * time.Minute)
	results := c.scrape(context.Background(), c.Watched())
	if api.calls["done1"] != 1 || api.calls["running1"] != 2 {
		t.Fatalf("within the TTL: calls %v, want done1 once and running1 every scrape", api.calls)
	}
	if results[0].age != 9*time.Minute || results[0].err != nil {
		t.Errorf("the cached task: age %s, err %v; want 9m and its values", results[0].age, results[0].err)
	}
	clock.Advance(time.Minute)
	c.scrape(context.Background(), c.Watched())
	if api.calls["done1"] != 2 {
		t.Errorf("after the TTL the finished task must be fetched again: %v", api.calls)
	}
	cfg.Cache.FinishedTTL = 0
	c.scrape(context.Background(), c.Watched())
	if api.calls["done1"] != 3 {
		t.Errorf("finished_ttl 0 disables the cache: %v", api.calls)
	}
}

// TestBudgetServesStalestFirst: when the rate limit cannot cover every task before the
// deadline, the stalest are fetched and the others keep their last values, so that over
// consecutive scrapes every task is refreshed in turn.
func TestBudgetServesStalestFirst(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	api := &countingAPI{}
	ids := manyTasks(20)
	cfg := testConfig(ids...)
	cfg.Scrape.Concurrency = 5
	c := scaleCollector(cfg, api, clock, 0)
	scrape := func() []result {
		// A fresh limiter with a burst of 5 and next to no refill: 5 calls fit per scrape.
		c.fetcher.limiter = NewLimiter(0.001, 5, clock.Now)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		clock.Advance(time.Minute)
		return c.scrape(ctx, c.Watched())
	}
	ok, _ := successes(scrape())
	if ok != 5 || api.total() != 5 {
		t.Fatalf("first scrape: %d tasks with values, %d calls; want 5 and 5 (nothing else is known)", ok, api.total())
	}
	for round := 2; round <= 4; round++ {
		ok, ages := successes(scrape())
		if ok != 5*round || api.total() != 5*round {
			t.Fatalf("scrape %d: %d tasks with values, %d calls; want %d and %d", round, ok, api.total(), 5*round, 5*round)
		}
		stale := 0
		for _, a := range ages {
			if a > 0 {
				stale++
			}
		}
		if stale != 5*(round-1) {
			t.Errorf("scrape %d: %d tasks served from their last values, want %d", round, stale, 5*(round-1))
		}
	}
	for _, id := range ids {
		if api.calls[id] != 1 {
			t.Fatalf("after 4 scrapes every task should have been fetched once: %v", api.calls)
		}
	}
	scrape()
	for _, id := range ids[:5] { // the stalest again
		if api.calls[id] != 2 {
			t.Errorf("the fifth scrape should refresh the stalest tasks first: %v", api.calls)
		}
	}
}

func TestThrottleHalvesTheRate(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewLimiter(10, 4, clock.Now)
	l.Throttled()
	l.Throttled() // a second 429 of the same burst does not halve again
	if got := l.Rate(); got != 5 {
		t.Errorf("after a 429: %g/s, want 5", got)
	}
	clock.Advance(time.Second)
	l.Throttled()
	if got := l.Rate(); got != 2.5 {
		t.Errorf("after another 429 a second later: %g/s, want 2.5", got)
	}
	clock.Advance(throttleFor)
	if got := l.Rate(); got != 10 {
		t.Errorf("a minute later: %g/s, want the configured 10", got)
	}
	if err := testutil.CollectAndCompare(l, strings.NewReader(`
# HELP metastudio_api_throttled_total MetaStudio answers of 429 (APIGW.0308): each lowers the rate limit for a minute.
# TYPE metastudio_api_throttled_total counter
metastudio_api_throttled_total 3
`), "metastudio_api_throttled_total"); err != nil {
		t.Error(err)
	}

	// Without a limit, a 429 sets half the rate observed over the last 10 seconds.
	off := NewLimiter(0, 4, clock.Now)
	for i := 0; i < 40; i++ {
		if err := off.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	off.Throttled()
	if got := off.Rate(); got != 2 { // 40 calls in 10 s = 4/s, halved
		t.Errorf("limit off, after a 429: %g/s, want 2", got)
	}
	clock.Advance(throttleFor)
	if got := off.Rate(); got != 0 {
		t.Errorf("limit off, a minute later: %g/s, want 0 (no limit)", got)
	}
}

// TestConcurrentScrapesShareCalls: an HA pair scraping at the same moment costs one call
// per task.
func TestConcurrentScrapesShareCalls(t *testing.T) {
	api := &countingAPI{}
	cfg := testConfig(manyTasks(12)...)
	cfg.Scrape.Concurrency = 12
	c := newTestCollector(cfg, api, log.NewNopLogger())
	c.scrape(context.Background(), c.Watched()) // the credentials have authenticated: both scrapes fan out
	before := api.total()
	api.mu.Lock()
	api.gate = make(chan struct{}) // every call now waits until the gate opens
	api.mu.Unlock()
	var wg sync.WaitGroup
	scrape := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.scrape(context.Background(), c.Watched())
		}()
	}
	scrape()
	deadline := time.Now().Add(10 * time.Second)
	for api.total()-before < 12 && time.Now().Before(deadline) { // the first scrape's calls are all in flight
		time.Sleep(time.Millisecond)
	}
	scrape()
	time.Sleep(200 * time.Millisecond) // the second scrape joins the calls in flight
	close(api.gate)
	wg.Wait()
	if n := api.total() - before; n != 12 {
		t.Errorf("two concurrent scrapes of 12 tasks made %d calls, want 12", n)
	}
}

func page(offset, count int, ids ...string) *metastudio.TaskPage {
	var p metastudio.TaskPage
	p.Offset = metastudio.Value{Text: fmt.Sprint(offset), Set: true}
	p.Count = metastudio.Value{Text: fmt.Sprint(count), Set: true}
	for _, id := range ids {
		p.Data = append(p.Data, *task(id, strings.HasPrefix(id, "done")))
	}
	return &p
}

func discoveryConfig() *config.Config {
	cfg := testConfig()
	cfg.Discovery = config.Discovery{Enabled: true, Resources: []string{"qa_pair", "intent"}, Lookback: 24 * time.Hour,
		RefreshInterval: time.Minute, MaxTasks: 100}
	return cfg
}

func discoveryCollector(cfg *config.Config, api *countingAPI, clock *fakeClock) (*Collector, *Discovery) {
	guard := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
	f := NewFetcher(api, guard, NewLimiter(0, 4, clock.Now), clock.Now)
	d := NewDiscovery(cfg.Discovery, f, log.NewNopLogger())
	return New(cfg, f, d, Shard{}, log.NewNopLogger()), d
}

func TestDiscovery(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1744276967708 + 3600_000)} // an hour after the tasks began
	cases := []struct {
		name  string
		pages func(p metastudio.SearchParams) (*metastudio.TaskPage, error)
		want  int // tasks found
		calls int // SearchTask calls
	}{
		{"follows count", func(p metastudio.SearchParams) (*metastudio.TaskPage, error) {
			if p.Offset == 0 {
				return page(0, 3, "done1", "run1"), nil
			}
			return page(p.Offset, 3, "done2"), nil
		}, 3, 2},
		{"ignores offset", func(p metastudio.SearchParams) (*metastudio.TaskPage, error) {
			return page(0, 50, "done1", "run1"), nil
		}, 2, 2},
		{"count lies", func(p metastudio.SearchParams) (*metastudio.TaskPage, error) {
			if p.Offset == 0 {
				return page(0, 1000, "done1"), nil
			}
			return page(p.Offset, 1000), nil
		}, 1, 2},
		{"duplicates across pages", func(p metastudio.SearchParams) (*metastudio.TaskPage, error) {
			if p.Offset == 0 {
				return page(0, 4, "done1", "run1"), nil
			}
			return page(p.Offset, 4, "run1", "done2"), nil
		}, 3, 2},
		{"bad ids are skipped", func(p metastudio.SearchParams) (*metastudio.TaskPage, error) {
			return page(0, 2, "done1", "../x"), nil
		}, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &countingAPI{pages: tc.pages}
			c, d := discoveryCollector(discoveryConfig(), api, clock)
			d.Refresh(context.Background())
			if got := len(d.Tasks()); got != tc.want || len(api.searches) != tc.calls {
				t.Fatalf("found %d tasks with %d calls, want %d with %d", got, len(api.searches), tc.want, tc.calls)
			}
			p := api.searches[0]
			if p.Limit != 100 || p.BeginTime != clock.Now().Add(-24*time.Hour).UnixMilli() || strings.Join(p.Resources, ",") != "qa_pair,intent" {
				t.Errorf("search parameters %+v", p)
			}
			// Listed finished tasks need no ShowTask call; tasks in progress get one.
			results := c.scrape(context.Background(), c.Watched())
			if ok, _ := successes(results); ok != tc.want {
				t.Errorf("%d of %d discovered tasks have values", ok, tc.want)
			}
			for id, n := range api.calls {
				if strings.HasPrefix(id, "done") && n > 0 {
					t.Errorf("finished task %s found by discovery was fetched with ShowTask", id)
				}
			}
			if strings.Contains(strings.Join(d.taskIDs(), ","), "run1") && api.calls["run1"] != 1 {
				t.Errorf("the task in progress must be refreshed by ShowTask: %v", api.calls)
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
	clock := &fakeClock{t: time.UnixMilli(1744276967708 + 3600_000)}
	fail := atomic.Bool{}
	api := &countingAPI{pages: func(p metastudio.SearchParams) (*metastudio.TaskPage, error) {
		if fail.Load() {
			return nil, &metastudio.APIError{Operation: "SearchTask", StatusCode: 500, Code: "MSS.000000002"}
		}
		return page(0, 3, "run1", "run2", "run3"), nil
	}}
	cfg := discoveryConfig()
	cfg.Discovery.MaxTasks = 2
	_, d := discoveryCollector(cfg, api, clock)
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
# HELP metastudio_discovery_tasks Tasks that discovery's last good SearchTask listing found (begun within discovery.lookback, at most discovery.max_tasks).
# TYPE metastudio_discovery_tasks gauge
metastudio_discovery_tasks 2
`), "metastudio_discovery_tasks"); err != nil {
		t.Error(err)
	}
	// Tasks drop out lookback after they began.
	clock.Advance(24 * time.Hour)
	if got := d.taskIDs(); len(got) != 0 {
		t.Errorf("a day later the tasks must drop out: %v", got)
	}
}
