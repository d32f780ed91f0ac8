package collector

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// authAPI answers every call with answer(), counting calls and noting whether any call
// started while another was in flight during the first one.
type authAPI struct {
	answer       func() error
	calls        atomic.Int64
	inFlight     atomic.Int64
	overlapFirst atomic.Bool
	firstDone    atomic.Bool
}

func (a *authAPI) SearchTask(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) {
	return nil, a.answer()
}

func (a *authAPI) ShowTask(ctx context.Context, id string) (*metastudio.Task, error) {
	n := a.calls.Add(1)
	if a.inFlight.Add(1) > 1 && !a.firstDone.Load() {
		a.overlapFirst.Store(true)
	}
	defer a.inFlight.Add(-1)
	if n == 1 {
		time.Sleep(5 * time.Millisecond) // give the others a chance to overlap, if they could
		defer a.firstDone.Store(true)
	}
	if err := a.answer(); err != nil {
		return nil, err
	}
	return &metastudio.Task{}, nil
}

var errUnauthorized = &metastudio.APIError{Operation: "ShowTask", StatusCode: 401, Code: "APIGW.0301", Message: "verify aksk signature fail"}

func manyTasks(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%03d", i)
	}
	return ids
}

func TestGuardProbesAloneThenFansOut(t *testing.T) {
	api := &authAPI{answer: func() error { return nil }}
	cfg := testConfig(manyTasks(50)...)
	cfg.Scrape.Concurrency = 8
	c := newTestCollector(cfg, api, log.NewNopLogger())
	for i, r := range c.scrape(context.Background(), c.Watched()) {
		if r.err != nil {
			t.Fatalf("task %d: %v", i, r.err)
		}
	}
	if api.overlapFirst.Load() {
		t.Error("a call started while the first call, which tests the credentials, was in flight")
	}
	if api.calls.Load() != 50 {
		t.Errorf("%d calls, want 50", api.calls.Load())
	}
}

func TestGuardCoolsDownAfterAuthFailure(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)}
	failing := atomic.Bool{}
	failing.Store(true)
	api := &authAPI{answer: func() error {
		if failing.Load() {
			return errUnauthorized
		}
		return nil
	}}
	cfg := testConfig(manyTasks(200)...)
	cfg.Scrape.Concurrency = 8
	guard := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
	c := New(cfg, NewFetcher(api, guard, NewLimiter(0, 1, clock.Now), clock.Now), nil, Shard{}, log.NewNopLogger())
	scrape := func() (failed int) {
		for _, r := range c.scrape(context.Background(), c.Watched()) {
			if r.err != nil {
				failed++
			}
		}
		return failed
	}
	callsAt := func() int64 { return api.calls.Load() }

	if failed := scrape(); failed != 200 || callsAt() != 1 {
		t.Fatalf("first scrape with a wrong key: %d failed, %d calls; want 200 failed and exactly 1 call", failed, callsAt())
	}
	if err := testutil.CollectAndCompare(guard, strings.NewReader(`
# HELP metastudio_auth_backoff_seconds Seconds left in the cool-down after an authentication failure, during which no API call is made.
# TYPE metastudio_auth_backoff_seconds gauge
metastudio_auth_backoff_seconds 60
# HELP metastudio_auth_ok 1 if the last API call authenticated, 0 if its credentials were refused or could not be had; absent until the first answer.
# TYPE metastudio_auth_ok gauge
metastudio_auth_ok 0
`)); err != nil {
		t.Error(err)
	}
	// The cool-down doubles while failures go on: 1m, 2m, 4m, 8m, then 10m at most.
	for _, backoff := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		before := callsAt()
		clock.Advance(backoff - time.Second)
		if scrape(); callsAt() != before {
			t.Fatalf("a call was made 1s before the end of a %s cool-down", backoff)
		}
		clock.Advance(time.Second)
		if scrape(); callsAt() != before+1 {
			t.Fatalf("after a %s cool-down: %d calls, want exactly one", backoff, callsAt()-before)
		}
	}
	// A success resets the cool-down and lets the scrape fan out again.
	failing.Store(false)
	clock.Advance(10 * time.Minute)
	before := callsAt()
	if failed := scrape(); failed != 0 || callsAt() != before+200 {
		t.Fatalf("after recovery: %d failed, %d calls", failed, callsAt()-before)
	}
	failing.Store(true)
	scrape()
	clock.Advance(time.Minute)
	before = callsAt()
	scrape()
	if callsAt() != before+1 {
		t.Errorf("after a success, the cool-down starts again at 1m: %d calls at 1m", callsAt()-before)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(guard)
	if n, err := testutil.GatherAndCount(reg, "metastudio_auth_ok"); err != nil || n != 1 {
		t.Errorf("auth_ok: %d series, %v", n, err)
	}
}

// versioned pretends to be credentials that get rotated.
type versioned struct{ gen atomic.Uint64 }

func (v *versioned) Authenticate(context.Context, *http.Request, []byte) error { return nil }
func (v *versioned) Generation() uint64                                        { return v.gen.Load() }

func TestGuardNewCredentialsEndTheCoolDown(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	creds := &versioned{}
	guard := NewGuard(time.Minute, creds, clock.Now, log.NewNopLogger())
	done, err := guard.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done(errUnauthorized)
	if _, err := guard.Acquire(context.Background()); err == nil || Reason(err) != "auth_backoff" {
		t.Fatalf("during the cool-down: %v", err)
	}
	creds.gen.Add(1) // a secret manager wrote new keys
	if _, err := guard.Acquire(context.Background()); err != nil {
		t.Fatalf("new credentials must be tried at once (alone): %v", err)
	}
}
