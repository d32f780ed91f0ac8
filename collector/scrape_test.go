package collector

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// TestHangingFirstCall: the API's very first call hangs. The probe has a deadline of its
// own (min(5 s, scrape.timeout)), so a scrape that cannot wait that long answers at its
// deadline with what is known; once the probe has timed out, the next probe verifies the
// credentials and a later scrape gets every task.
func TestHangingFirstCall(t *testing.T) {
	api := &fakeapi.API{Gate: make(chan struct{}), Hold: func(n int, _ string) bool { return n == 1 }}
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
	api := &fakeapi.API{}
	cfg := testConfig("a", "b")
	cfg.Scrape.Concurrency = 2
	// A probe that ignored its header would wait scrape.timeout, past the held calls' own
	// timeout: they would fail, and so would the probe.
	cfg.Scrape.Timeout = time.Minute
	r := startRefresher(t, api, time.Now, 0, 2, 10*time.Second)
	c := New(cfg, projectsOf(cfg, nil), r, Shard{}, log.NewNopLogger())
	c.scrape(context.Background(), keysOf("a")) // "a" has values; "b" has none
	// From now on every call is held until the gate closes.
	api.Gate = make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.scrape(context.Background(), keysOf("a", "b")) }) // holds a call for each
	waitFor(t, "the held calls", func() bool { return api.Total() == 3 })

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
		if tc.id == "a" && !strings.Contains(rec.Body.String(), `metastudio_task_data_age_seconds{project="default",task_id="a"}`) {
			t.Errorf("the last values must come with their age:\n%s", rec.Body.String())
		}
	}
	if n := api.Total(); n != 3 {
		t.Errorf("%d calls; the probes must wait on the calls in flight, not make their own", n)
	}
	close(api.Gate)
	wg.Wait()
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
			api := &fakeapi.API{Latency: 50 * time.Millisecond}
			cfg := testConfig(manyTasks(1000)...)
			cfg.Scrape.Concurrency = 32
			cfg.Scrape.Timeout = 30 * time.Second
			cfg.Scrape.MinRefreshInterval = tc.minRefresh
			c := newTestCollector(t, cfg, api, log.NewNopLogger())
			c.scrape(context.Background(), keysOf(manyTasks(1)...)) // the credentials are verified
			api.Reset()
			var wg sync.WaitGroup
			for i := range 5 {
				wg.Go(func() { c.scrape(context.Background(), c.Watched("")) })
				if i < 4 {
					time.Sleep(tc.spread)
				}
			}
			wg.Wait()
			if per := float64(api.Total()) / 1000; per > tc.maxCalls {
				most := 0
				for _, n := range api.PerID() {
					most = max(most, n)
				}
				t.Errorf("%.2f calls per task (max %d for one task), want at most %g", per, most, tc.maxCalls)
			}
		})
	}
}

// TestGoroutinesAreBounded: 50 concurrent scrapes of 500 tasks run on the refresher's
// fixed pool: no goroutine per task.
func TestGoroutinesAreBounded(t *testing.T) {
	api := &fakeapi.API{Latency: 5 * time.Millisecond}
	cfg := testConfig(manyTasks(500)...)
	cfg.Scrape.Concurrency = 8
	c := newTestCollector(t, cfg, api, log.NewNopLogger())
	c.scrape(context.Background(), keysOf(manyTasks(1)...))
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
		wg.Go(func() { c.scrape(context.Background(), c.Watched("")) })
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

// TestMinRefreshInterval: values younger than min_refresh_interval need no call; older
// ones do.
func TestMinRefreshInterval(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &fakeapi.API{}
	cfg := testConfig("a")
	cfg.Scrape.MinRefreshInterval = 15 * time.Second
	c := scaleCollector(t, cfg, api, clock, 0)
	c.scrape(context.Background(), c.Watched(""))
	clock.Advance(14 * time.Second)
	res := c.scrape(context.Background(), c.Watched(""))
	if api.Total() != 1 || res[0].age != 14*time.Second {
		t.Errorf("14 s later: %d calls, age %s; want 1 call and the values with age 14s", api.Total(), res[0].age)
	}
	clock.Advance(time.Second)
	if c.scrape(context.Background(), c.Watched("")); api.Total() != 2 {
		t.Errorf("15 s later: %d calls, want a new call", api.Total())
	}
}

// keysOf are the refresher's keys of the shorthand project's tasks ids.
func keysOf(ids ...string) []refresh.Key {
	keys := make([]refresh.Key, len(ids))
	for i, id := range ids {
		keys[i] = taskKey(DefaultProject, id)
	}
	return keys
}
