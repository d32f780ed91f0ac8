package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// slowAPI answers every ShowTask after latency; hang, if set, holds the calls it selects
// until their deadline or release.
type slowAPI struct {
	latency time.Duration
	hang    func(n int64, id string) bool
	release chan struct{}
	calls   atomic.Int64
	mu      sync.Mutex
	perTask map[string]int
}

func (a *slowAPI) ShowTask(ctx context.Context, id string) (*metastudio.Task, error) {
	n := a.calls.Add(1)
	a.mu.Lock()
	if a.perTask == nil {
		a.perTask = map[string]int{}
	}
	a.perTask[id]++
	a.mu.Unlock()
	wait := a.latency
	if a.hang != nil && a.hang(n, id) {
		wait = time.Hour
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.release:
	case <-ctx.Done():
		return nil, &metastudio.APIError{Operation: "ShowTask", Err: ctx.Err()}
	}
	return task(id, false), nil
}

func (a *slowAPI) SearchTask(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) {
	return &metastudio.TaskPage{}, nil
}

func (a *slowAPI) maxPerTask() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := 0
	for _, n := range a.perTask {
		m = max(m, n)
	}
	return m
}

// TestHangingFirstCall: the API's very first call hangs. The probe has a deadline of its
// own (min(5 s, scrape.timeout)), so a scrape that cannot wait that long answers at its
// deadline with what is known; once the probe has timed out, the next probe verifies the
// credentials and a later scrape gets every task.
func TestHangingFirstCall(t *testing.T) {
	api := &slowAPI{hang: func(n int64, _ string) bool { return n == 1 }}
	cfg := testConfig(manyTasks(12)...)
	cfg.Scrape.Concurrency = 4
	cfg.Scrape.Timeout = 10 * time.Second
	c := newTestCollector(t, cfg, api, log.NewNopLogger())
	h := Handler(func() *Collector { return c }, NewSet(), log.NewNopLogger())
	scrape := func(timeout string) string {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	start := time.Now()
	body := scrape("2")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the first scrape took %s; it must answer at its own deadline (1.5 s)", took)
	}
	if n := len(regexp.MustCompile(`metastudio_task_scrape_success\{[^}]*\} 0\n`).FindAllString(body, -1)); n != 12 {
		t.Errorf("%d of 12 tasks failed in the first scrape; nothing is known yet, want all 12:\n%s", n, body)
	}
	body = scrape("10")
	if ok := len(regexp.MustCompile(`metastudio_task_scrape_success\{[^}]*\} 1\n`).FindAllString(body, -1)); ok < 11 {
		t.Errorf("%d of 12 tasks successful after the probe's timeout, want at least 11:\n%s", ok, body)
	}
}

// TestProbeHonoursItsOwnTimeout: a /probe whose deadline is shorter than a call in flight
// for its task answers while that call is still held, from the last values.
func TestProbeHonoursItsOwnTimeout(t *testing.T) {
	api := &slowAPI{}
	cfg := testConfig("a", "b")
	cfg.Scrape.Concurrency = 2
	// A probe that ignored its header would wait scrape.timeout, past the held calls' own
	// timeout: they would fail, and so would the probe.
	cfg.Scrape.Timeout = time.Minute
	r := startRefresher(t, api, time.Now, 0, 2, 10*time.Second)
	c := New(cfg, r, nil, Shard{}, log.NewNopLogger())
	c.scrape(context.Background(), []string{"a"}) // "a" has values; "b" has none
	api.hang = func(int64, string) bool { return true }
	api.release = make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.scrape(context.Background(), []string{"a", "b"}) }) // holds a call for each
	waitFor(t, "the held calls", func() bool { return api.calls.Load() == 3 })

	probe := ProbeHandler(func() *Collector { return c }, log.NewNopLogger())
	for _, tc := range []struct{ id, want string }{
		{"a", "metastudio_probe_success 1"},
		{"b", "metastudio_probe_success 0"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/probe?task="+tc.id, nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "0.7")
		rec := httptest.NewRecorder()
		probe.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("/probe?task=%s while its call is held: want %q in\n%s", tc.id, tc.want, rec.Body.String())
		}
		if tc.id == "a" && !strings.Contains(rec.Body.String(), `metastudio_task_data_age_seconds{task_id="a"}`) {
			t.Errorf("the last values must come with their age:\n%s", rec.Body.String())
		}
	}
	if n := api.calls.Load(); n != 3 {
		t.Errorf("%d calls; the probes must wait on the calls in flight, not make their own", n)
	}
	close(api.release)
	wg.Wait()
}

// TestWaiterLeavingDoesNotCancelTheCall: the scrape that asked first leaves; the call
// goes on and answers the next one.
func TestWaiterLeavingDoesNotCancelTheCall(t *testing.T) {
	api := &slowAPI{latency: 300 * time.Millisecond}
	r := startRefresher(t, api, time.Now, 0, 1, 10*time.Second)
	r.Get(context.Background(), []string{"verified"}, Policy{}) // the credentials are verified: no probe deadline
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r.Get(ctx, []string{"a"}, Policy{}) // leaves long before the answer
	res := r.Get(context.Background(), []string{"a"}, Policy{})
	if res[0].err != nil || api.calls.Load() != 2 {
		t.Errorf("second scrape: %v after %d calls; want the first call's answer", res[0].err, api.calls.Load())
	}
}

// TestOverlappingScrapesShareCalls: 1,000 running tasks, 32 calls in flight, 50 ms per
// call. Five scrapes started within 100 ms cost at most 1.1 calls per task; with
// min_refresh_interval 5 s, five scrapes spread over 2 s cost at most one.
func TestOverlappingScrapesShareCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of 50 ms calls")
	}
	for _, tc := range []struct {
		name       string
		minRefresh time.Duration
		spread     time.Duration
		maxCalls   float64
	}{
		{"within 100 ms", 0, 25 * time.Millisecond, 1.1},
		{"min_refresh_interval 5s over 2 s", 5 * time.Second, 500 * time.Millisecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &slowAPI{latency: 50 * time.Millisecond}
			cfg := testConfig(manyTasks(1000)...)
			cfg.Scrape.Concurrency = 32
			cfg.Scrape.Timeout = 30 * time.Second
			cfg.Scrape.MinRefreshInterval = tc.minRefresh
			c := newTestCollector(t, cfg, api, log.NewNopLogger())
			c.scrape(context.Background(), manyTasks(1)) // the credentials are verified
			api.calls.Store(0)
			api.perTask = nil
			var wg sync.WaitGroup
			for i := range 5 {
				wg.Go(func() { c.scrape(context.Background(), c.Watched()) })
				if i < 4 {
					time.Sleep(tc.spread)
				}
			}
			wg.Wait()
			if per := float64(api.calls.Load()) / 1000; per > tc.maxCalls {
				t.Errorf("%.2f calls per task (max %d for one task), want at most %g", per, api.maxPerTask(), tc.maxCalls)
			}
		})
	}
}

// TestGoroutinesAreBounded: 50 concurrent scrapes of 500 tasks run on the refresher's
// fixed pool: no goroutine per task.
func TestGoroutinesAreBounded(t *testing.T) {
	api := &slowAPI{latency: 5 * time.Millisecond}
	cfg := testConfig(manyTasks(500)...)
	cfg.Scrape.Concurrency = 8
	c := newTestCollector(t, cfg, api, log.NewNopLogger())
	c.scrape(context.Background(), manyTasks(1))
	idle := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var peak atomic.Int64
	stop := make(chan struct{})
	sampler := make(chan struct{})
	go func() {
		defer close(sampler)
		for {
			if n := int64(runtime.NumGoroutine()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	for range 50 {
		wg.Go(func() { c.scrape(context.Background(), c.Watched()) })
	}
	wg.Wait()
	close(stop)
	<-sampler
	// The idle count already holds the refresher's workers; the scrapes, the sampler and
	// a few of the runtime's own may come on top.
	if limit := int64(idle + 50 + 1 + 10); peak.Load() > limit {
		t.Errorf("peak of %d goroutines during 50 scrapes of 500 tasks, want at most %d (idle %d)", peak.Load(), limit, idle)
	}
}

// TestUnlistedProbesAreCapped: probing 100,000 distinct unlisted ids leaves the table at
// its cap, and idle ones go.
func TestUnlistedProbesAreCapped(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &countingAPI{}
	r := startRefresher(t, api, clock.Now, 0, 8, 5*time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 100_000; i += 8 {
				r.Get(context.Background(), []string{fmt.Sprintf("u%d", i)}, Policy{Unlisted: true})
			}
		})
	}
	wg.Wait()
	if n := r.size(); n != maxUnlisted {
		t.Errorf("%d tasks in the table after 100,000 unlisted probes, want the cap %d", n, maxUnlisted)
	}
	r.Get(context.Background(), []string{"listed"}, Policy{})
	clock.Advance(unlistedIdle)
	r.Prune(func(id string) bool { return id == "listed" })
	if n := r.size(); n != 1 {
		t.Errorf("%d tasks after the unlisted ones were idle for %s, want only the listed one", n, unlistedIdle)
	}
}

// TestPruneDropsUnwatchedTasks: housekeeping drops what no config lists, also when only
// /probe is used.
func TestPruneDropsUnwatchedTasks(t *testing.T) {
	api := &countingAPI{}
	r := startRefresher(t, api, time.Now, 0, 2, 5*time.Second)
	r.Get(context.Background(), []string{"a", "b"}, Policy{})
	r.SetWatched(func(id string) bool { return id == "a" })
	r.Prune(nil)
	if _, ok := r.last("b"); ok || r.size() != 1 {
		t.Errorf("after b stopped being watched: %d tasks, b known %v", r.size(), ok)
	}
}

// TestDiscoveryNeverOverwritesNewerValues: a listing that started before a ShowTask
// answer does not replace it.
func TestDiscoveryNeverOverwritesNewerValues(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := startRefresher(t, &countingAPI{}, clock.Now, 0, 2, 5*time.Second)
	listedAt := Stamp{seq: uint64(r.Mark()), at: clock.Now()}
	clock.Advance(time.Second)
	r.Get(context.Background(), []string{"run1"}, Policy{}) // answered after the listing began
	r.list([]*metastudio.Task{task("run1", true)}, listedAt)
	if got, _ := r.last("run1"); got.finished {
		t.Error("the older listing overwrote the newer ShowTask answer")
	}
	clock.Advance(time.Second)
	r.list([]*metastudio.Task{task("run1", true)}, Stamp{seq: uint64(r.Mark()), at: clock.Now()})
	if got, _ := r.last("run1"); !got.finished {
		t.Error("a newer listing must replace the values")
	}
}

// TestMinRefreshInterval: values younger than min_refresh_interval need no call; older
// ones do.
func TestMinRefreshInterval(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &countingAPI{}
	cfg := testConfig("a")
	cfg.Scrape.MinRefreshInterval = 15 * time.Second
	c := scaleCollector(t, cfg, api, clock, 0)
	c.scrape(context.Background(), c.Watched())
	clock.Advance(14 * time.Second)
	res := c.scrape(context.Background(), c.Watched())
	if api.total() != 1 || res[0].age != 14*time.Second {
		t.Errorf("14 s later: %d calls, age %s; want 1 call and the values with age 14s", api.total(), res[0].age)
	}
	clock.Advance(time.Second)
	if c.scrape(context.Background(), c.Watched()); api.total() != 2 {
		t.Errorf("15 s later: %d calls, want a new call", api.total())
	}
}

// TestFailedCallHidesOldValues: a task whose call for this scrape failed reports the
// failure, whatever is known of it; one not reached keeps its last values.
func TestFailedCallHidesOldValues(t *testing.T) {
	var fail atomic.Bool
	api := &authAPI{answer: func() error {
		if fail.Load() {
			return &metastudio.APIError{Operation: "ShowTask", StatusCode: 500, Code: "MSS.000000002"}
		}
		return nil
	}}
	r := startRefresher(t, api, time.Now, 0, 1, 5*time.Second)
	r.Get(context.Background(), []string{"a"}, Policy{})
	fail.Store(true)
	if res := r.Get(context.Background(), []string{"a"}, Policy{}); Reason(res[0].err) != "MSS.000000002" {
		t.Errorf("a failed call: %+v, want its error and no values", res[0])
	}
}

// gatedAPI reports each ShowTask's id on called, then holds it until a value on release
// (or its deadline). It answers with the task, or with fail when set.
type gatedAPI struct {
	called  chan string
	release chan struct{}
	fail    error
	calls   atomic.Int64
	mu      sync.Mutex
	left    []time.Duration // each call's time to its deadline, at its start
}

func newGatedAPI() *gatedAPI {
	return &gatedAPI{called: make(chan string, 10_000), release: make(chan struct{})}
}

func (g *gatedAPI) ShowTask(ctx context.Context, id string) (*metastudio.Task, error) {
	g.calls.Add(1)
	if d, ok := ctx.Deadline(); ok {
		g.mu.Lock()
		g.left = append(g.left, time.Until(d))
		g.mu.Unlock()
	}
	g.called <- id
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, &metastudio.APIError{Operation: "ShowTask", Err: ctx.Err()}
	}
	if g.fail != nil {
		return nil, g.fail
	}
	return task(id, false), nil
}

func (g *gatedAPI) SearchTask(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) {
	return &metastudio.TaskPage{}, nil
}

// verify makes r's guard take the credentials as verified, so that calls fan out.
func verify(t *testing.T, r *Refresher) {
	t.Helper()
	r.guard.done(admitted(t, r.guard), nil)
}

// TestProbeDeadlineIsItsOwn: the guard's probe has the deadline min(5 s, scrape.timeout),
// however little time the scrapes that wait for it have left.
func TestProbeDeadlineIsItsOwn(t *testing.T) {
	for _, tc := range []struct {
		callTimeout time.Duration
		want        time.Duration
	}{
		{10 * time.Second, 5 * time.Second},
		{2 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.callTimeout.String(), func(t *testing.T) {
			api := newGatedAPI()
			close(api.release)
			r := startRefresher(t, api, time.Now, 0, 4, tc.callTimeout)
			var wg sync.WaitGroup
			for i := range 4 { // scrapes with 100 ms left wait for the probe
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					defer cancel()
					r.Get(ctx, []string{fmt.Sprint("t", i)}, Policy{})
				})
			}
			<-api.called
			wg.Wait()
			api.mu.Lock()
			left := api.left[0]
			api.mu.Unlock()
			if left > tc.want || left < tc.want-time.Second {
				t.Errorf("the probe's deadline was %s away, want %s (never derived from the waiting scrapes)", left, tc.want)
			}
		})
	}
}

// TestNewClientAnswersWaitsAfterASwap: after SetAPI (a reload to a new endpoint), a scrape
// is answered by the new client even while the old one's call for the same task hangs,
// and the old call's late answer is discarded.
func TestNewClientAnswersWaitsAfterASwap(t *testing.T) {
	old := newGatedAPI()
	old.fail = &metastudio.APIError{Operation: "ShowTask", StatusCode: 500, Code: "MSS.000000002"}
	r := startRefresher(t, old, time.Now, 0, 2, 10*time.Second)
	verify(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	r.Get(ctx, []string{"x"}, Policy{}) // leaves the old client's call hanging
	cancel()
	<-old.called

	fresh := newGatedAPI()
	close(fresh.release)
	r.SetAPI(fresh)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res := r.Get(ctx, []string{"x"}, Policy{}); res[0].err != nil || res[0].vals == nil {
		t.Fatalf("after the swap: %v; want the new client's answer", res[0].err)
	}
	if n := fresh.calls.Load(); n != 1 {
		t.Fatalf("the new client was called %d times, want 1", n)
	}
	close(old.release) // the old call fails late
	waitFor(t, "the old call's end", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.inflight == 0
	})
	if res := r.Get(ctx, []string{"x"}, Policy{MinRefresh: time.Hour}); res[0].err != nil {
		t.Errorf("the old client's late failure was recorded: %v", res[0].err)
	}
}

// TestUnlistedProbesTakeAtMostHalf: probes of ever new unlisted ids do not starve a
// configured task: while it waits, they take at most every other call.
func TestUnlistedProbesTakeAtMostHalf(t *testing.T) {
	api := newGatedAPI()
	r := startRefresher(t, api, time.Now, 0, 1, 10*time.Second)
	verify(t, r)
	go r.Get(context.Background(), []string{"c1"}, Policy{})
	<-api.called
	api.release <- struct{}{} // c1 has values now
	waitFor(t, "c1's answer", func() bool { _, ok := r.last("c1"); return ok })

	go r.Get(context.Background(), []string{"block"}, Policy{}) // holds the only worker
	<-api.called
	for i := range 6 {
		go r.Get(context.Background(), []string{fmt.Sprint("u", i)}, Policy{Unlisted: true})
	}
	waitFor(t, "the probes' waits", func() bool { return r.waiting() == 7 })
	go r.Get(context.Background(), []string{"c1"}, Policy{}) // stale: queued behind the probes
	waitFor(t, "c1's wait", func() bool { return r.waiting() == 8 })
	var order []string
	for range 7 {
		api.release <- struct{}{}
		order = append(order, <-api.called)
	}
	close(api.release)
	if i := slices.Index(order, "c1"); i < 0 || i > 1 {
		t.Errorf("calls after the held one: %v; the configured task must come within 2 calls", order)
	}
}

// TestEvictionSparesWaitedTasks: the cap on unlisted tasks never drops one that a probe
// waits for: the queued probe is answered, by one call.
func TestEvictionSparesWaitedTasks(t *testing.T) {
	api := newGatedAPI()
	r := startRefresher(t, api, time.Now, 0, 1, 10*time.Second)
	verify(t, r)
	go r.Get(context.Background(), []string{"block"}, Policy{})
	<-api.called
	res := make(chan []result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res <- r.Get(ctx, []string{"w"}, Policy{Unlisted: true})
	}()
	waitFor(t, "the probe's wait", func() bool { return r.waiting() == 2 })
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range maxUnlisted + 10 { // probes that leave at once
		r.Get(gone, []string{fmt.Sprint("u", i)}, Policy{Unlisted: true})
	}
	close(api.release)
	got := <-res
	if got[0].err != nil {
		t.Fatalf("the waited-for probe: %v; want its answer", got[0].err)
	}
	if n := r.size(); n > maxUnlisted+2 {
		t.Errorf("%d tasks in the table; the cap must still hold for tasks nobody waits for", n)
	}
}

// slowStat is credentials whose Generation (a stat of the key files) hangs once, when
// armed, until released: a slow NFS.
type slowStat struct {
	versioned
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *slowStat) Generation() uint64 {
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return s.gen.Load()
}

// TestSlowKeyFileStatHoldsUpOnlyItsCall: looking for changed key files (a stat, slow on
// NFS) holds no lock: while one hangs, the table answers and the other calls go on.
func TestSlowKeyFileStatHoldsUpOnlyItsCall(t *testing.T) {
	api := &slowAPI{latency: 5 * time.Millisecond}
	creds := &slowStat{entered: make(chan struct{}), release: make(chan struct{})}
	guard := NewGuard(time.Minute, creds, time.Now, log.NewNopLogger())
	r := NewRefresher(api, guard, NewRate(0, 1, 4, time.Now), time.Now, log.NewNopLogger())
	r.Configure(4, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	defer func() { cancel(); r.Wait() }()
	verify(t, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Get(context.Background(), manyTasks(200), Policy{})
	}()
	waitFor(t, "the first calls", func() bool { return api.calls.Load() >= 2 })
	creds.armed.Store(true)
	select {
	case <-creds.entered:
	case <-done:
		t.Fatal("the scrape ended before any stat was slow")
	}
	held := api.calls.Load()
	answered := make(chan int, 1)
	go func() { answered <- r.size() }()
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Error("the refresher's table is locked while a key file stat hangs")
	}
	deadline := time.Now().Add(5 * time.Second)
	for api.calls.Load() < held+4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := api.calls.Load() - held; n < 4 {
		t.Errorf("%d calls went out while a key file stat hung, want the others to go on", n)
	}
	close(creds.release)
	<-done
}

// lockProbe is credentials whose Generation (a stat of the key files) reports whether
// its caller holds the refresher's lock: another holder lets go within milliseconds (the
// calls take 5 ms, so the lock is mostly free), the caller never.
type lockProbe struct {
	versioned
	r       *Refresher
	underMu atomic.Int64
}

func (l *lockProbe) Generation() uint64 {
	if r := l.r; r != nil {
		for range 1000 {
			if r.mu.TryLock() {
				r.mu.Unlock()
				return l.gen.Load()
			}
			time.Sleep(time.Millisecond)
		}
		l.underMu.Add(1)
	}
	return l.gen.Load()
}

// TestKeyFilesAreNotStatedUnderTheLock: no path looks for changed key files while the
// refresher's table is locked (a worker going from call to call included).
func TestKeyFilesAreNotStatedUnderTheLock(t *testing.T) {
	api := &slowAPI{latency: 5 * time.Millisecond}
	creds := &lockProbe{}
	guard := NewGuard(time.Minute, creds, time.Now, log.NewNopLogger())
	r := NewRefresher(api, guard, NewRate(0, 1, 4, time.Now), time.Now, log.NewNopLogger())
	r.Configure(4, 5*time.Second)
	creds.r = r
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	defer func() { cancel(); r.Wait() }()
	r.Get(context.Background(), manyTasks(40), Policy{})
	if n := creds.underMu.Load(); n > 0 {
		t.Errorf("the key files were looked at %d times under the refresher's lock", n)
	}
}
