package refresh

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// plain429 is a 429 that states no quota: the adaptive rate answers it.
var plain429 = &metastudio.APIError{Operation: "ShowTask", StatusCode: 429, Code: "APIGW.0308", Message: "The request is throttled."}

// quota429 is the gateway's 429 stating the quota that was hit, in its words.
func quota429(limitTime string) *metastudio.APIError {
	return &metastudio.APIError{Operation: "ShowTask", StatusCode: 429, Code: "APIGW.0308",
		Message: "The throttling threshold has been reached: policy user over ratelimit," + limitTime}
}

// usedUp is the gateway's answer once a call quota is used up.
var usedUp = &metastudio.APIError{Operation: "ShowTask", StatusCode: 405, Code: "APIGW.0501", Message: "The app quota has been used up."}

// TestRateAdapts pins the adaptive rate: a 429 cuts what was sent to 0.7 of it (at most
// once a second, never below the floor), calm grows it back to the maximum within 30 s,
// Retry-After holds every call, and a reload that keeps the limits keeps the state.
func TestRateAdapts(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := NewRate(50, 1, 8, clock.Now)
	for range 60 { // 30 calls a second over the last 2 s
		r.count()
	}
	r.Throttled(plain429)
	if got := r.Limit(); math.Abs(got-21) > 1e-9 {
		t.Errorf("after a 429 at 30/s sent: %g/s, want 21 (0.7 × 30)", got)
	}
	r.Throttled(plain429) // a second 429 of the same burst does not cut again
	if got := r.Limit(); math.Abs(got-21) > 1e-9 {
		t.Errorf("a second 429 within a second: %g/s, want 21 still", got)
	}
	clock.Advance(10 * time.Second)
	if got, want := r.Limit(), 21+49.0/3; math.Abs(got-want) > 1e-9 {
		t.Errorf("10 s of calm: %g/s, want %g (growing by (50-1)/30 a second)", got, want)
	}
	r.Configure(50, 1, 8) // a reload that keeps the limits keeps the state
	if got := r.Limit(); got >= 50 {
		t.Errorf("a reload ended the adaptation: %g/s", got)
	}
	clock.Advance(30 * time.Second)
	if got := r.Limit(); got != 50 {
		t.Errorf("40 s of calm: %g/s, want the maximum 50", got)
	}
	clock.Advance(5 * time.Second) // nothing sent over the last 2 s: the floor
	r.Throttled(plain429)
	if got := r.Limit(); got != 1 {
		t.Errorf("a 429 with nothing sent: %g/s, want the floor 1", got)
	}
	clock.Advance(time.Second)
	r.Throttled(&metastudio.APIError{StatusCode: 429, Code: "APIGW.0308", RetryAfter: 90 * time.Second})
	r.mu.Lock()
	hold := r.holdUntil.Sub(clock.Now())
	r.mu.Unlock()
	if hold != time.Minute {
		t.Errorf("Retry-After 90 s holds calls for %s, want the cap of 1m", hold)
	}
	if err := testutil.CollectAndCompare(r, strings.NewReader(`
# HELP metastudio_api_throttled_total MetaStudio answers of 429 (APIGW.0308) or of a used-up quota (APIGW.0501): each slows or pauses the calls.
# TYPE metastudio_api_throttled_total counter
metastudio_api_throttled_total 4
`), "metastudio_api_throttled_total"); err != nil {
		t.Error(err)
	}

	// Without a maximum, a 429 sets 0.7 of what was sent; calm lifts the limit.
	off := NewRate(0, 1, 4, clock.Now)
	for range 80 {
		off.count()
	}
	off.Throttled(plain429)
	if got := off.Limit(); math.Abs(got-28) > 1e-9 {
		t.Errorf("no maximum, after a 429 at 40/s: %g/s, want 28", got)
	}
	clock.Advance(unlimitedCalm)
	if got := off.Limit(); got != 0 {
		t.Errorf("no maximum, a calm minute later: %g/s, want 0 (no limit)", got)
	}
}

// TestRateQuotaPaces: a 429 that states its quota paces calls to it, counting the calls
// sent before the 429, whatever scrape.min_requests_per_second says: no window of the
// stated period ever holds more calls than the quota, and the pace uses it.
func TestRateQuotaPaces(t *testing.T) {
	for _, tc := range []struct {
		name       string
		quota      string
		before     int           // calls sent before the 429, one every beforeGap
		beforeGap  time.Duration //
		limit      float64       // the quota's calls per period
		period     time.Duration
		step, span time.Duration // how often a call is tried after the 429, and for how long
		firstAfter time.Duration // when the first call after the 429 may go
		minCalls   int           // calls after the 429, at least
	}{
		{name: "20 a minute, after a burst at the maximum", quota: "limit:20,time:1 minute",
			before: 21, beforeGap: 100 * time.Millisecond, limit: 20, period: time.Minute,
			step: 100 * time.Millisecond, span: 5 * time.Minute,
			firstAfter: 58100 * time.Millisecond, // the 2nd call (at 0.1 s) leaves the window at 60.1 s; the 429 came at 2.0 s
			minCalls:   5*20 - 20 - 1},
		{name: "20 a minute, shared: fewer calls of ours than the quota", quota: "limit:20,time:1 minute",
			before: 5, beforeGap: time.Second, limit: 20, period: time.Minute,
			step: 100 * time.Millisecond, span: 5 * time.Minute,
			firstAfter: time.Minute, // the gateway counted calls we did not send: the window is full
			minCalls:   4*20 - 1},
		{name: "20 a second, spaces as the simulator writes them", quota: " limit:20, time:1 second",
			before: 50, beforeGap: 20 * time.Millisecond, limit: 20, period: time.Second,
			step: 10 * time.Millisecond, span: 10 * time.Second,
			firstAfter: 620 * time.Millisecond, // the 20th last call, at 0.60 s, leaves the window at 1.60 s; the 429 came at 0.98 s
			minCalls:   10*20 - 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
			start := clock.Now()
			// A maximum of 100/s and a floor of 1/s, with a burst that the test cannot use up
			// in real time: only the stated quota paces the calls below.
			r := NewRate(100, 1, 100_000, clock.Now)
			var sent []time.Time
			for i := range tc.before {
				if i > 0 {
					clock.Advance(tc.beforeGap)
				}
				if !r.Now() {
					t.Fatalf("call %d before the 429 was held", i)
				}
				sent = append(sent, clock.Now())
			}
			throttledAt := clock.Now()
			r.Throttled(quota429(tc.quota))
			if got, want := r.Limit(), tc.limit/tc.period.Seconds(); math.Abs(got-want) > 1e-9 {
				t.Errorf("Limit() = %g/s, want the quota's %g/s (below the floor of 1/s too)", got, want)
			}
			after := 0
			for clock.Now().Sub(throttledAt) < tc.span {
				clock.Advance(tc.step)
				if r.Now() {
					if after == 0 {
						if got := clock.Now().Sub(throttledAt); got < tc.firstAfter || got >= tc.firstAfter+tc.step {
							t.Errorf("the first call after the 429 went %s after it, want %s", got, tc.firstAfter)
						}
					}
					sent = append(sent, clock.Now())
					after++
				}
			}
			for i, at := range sent {
				n := 0
				for _, s := range sent[:i+1] {
					if at.Sub(s) < tc.period {
						n++
					}
				}
				if at.After(throttledAt) && float64(n) > tc.limit {
					t.Fatalf("%d calls in the %s up to %s, want at most %g", n, tc.period, at.Sub(start), tc.limit)
				}
			}
			if after < tc.minCalls {
				t.Errorf("%d calls in %s after the 429, want at least %d: the pace does not use the quota", after, tc.span, tc.minCalls)
			}
		})
	}
}

// TestRateQuotaExpires: a stated quota stays in force for quotaMemory, over a reload that
// changes the limits too, and then the configured rate is back until the next 429.
func TestRateQuotaExpires(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := NewRate(10, 1, 8, clock.Now)
	r.Throttled(quota429("limit:30,time:1 minute"))
	r.Configure(20, 2, 8)
	clock.Advance(quotaMemory - time.Second)
	if got := r.Limit(); got != 0.5 {
		t.Errorf("%s after the 429 and a reload: %g/s, want the quota's 0.5", quotaMemory-time.Second, got)
	}
	clock.Advance(time.Second)
	if got := r.Limit(); got != 20 {
		t.Errorf("%s after the 429: %g/s, want the maximum 20 again", quotaMemory, got)
	}
}

// TestRateQuotaPauses: a quota used up for longer pauses every call (Wait and Now) for 5
// minutes, doubling on each further answer up to an hour, until a call succeeds; answers of
// calls that were in flight together count once, and a reload does not end the pause.
func TestRateQuotaPauses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer *metastudio.APIError
	}{
		{"APIGW.0501", usedUp},
		{"a per-hour quota", quota429("limit:1000,time:1 hour")},
		{"a daily quota", quota429("limit:10000,time:1 day")},
		{"the used-up wording on a 429", &metastudio.APIError{StatusCode: 429, Code: "APIGW.0308", Message: "The quota has been used up"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
			r := NewRate(10, 1, 1000, clock.Now)
			r.Throttled(tc.answer)
			r.Throttled(tc.answer) // a call that was in flight together: no second pause
			if got := r.Held(); got != pauseFirst {
				t.Fatalf("paused for %s, want %s", got, pauseFirst)
			}
			if r.Now() {
				t.Error("a call went out at once during the pause")
			}
			if wait, ok := r.Try(); ok || wait != pauseFirst {
				t.Errorf("Try during the pause: a call (%v), or a wait of %s; want no call and the pause's %s", ok, wait, pauseFirst)
			}
			r.Configure(20, 2, 1000) // a reload
			clock.Advance(time.Minute)
			r.Answered() // a call in flight when the pause began: the pause stands
			if got := r.Held(); got != pauseFirst-time.Minute {
				t.Errorf("after a reload and a minute: paused for %s, want %s", got, pauseFirst-time.Minute)
			}
			want := pauseFirst
			for _, next := range []time.Duration{10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour} {
				clock.Advance(r.Held())
				if !r.Now() {
					t.Fatalf("no call after a pause of %s", want)
				}
				r.Throttled(tc.answer)
				if got := r.Held(); got != next {
					t.Errorf("after a pause of %s, the next answer pauses for %s, want %s", want, got, next)
				}
				want = next
			}
			clock.Advance(r.Held())
			if !r.Now() {
				t.Fatal("no call after the last pause")
			}
			r.Answered()
			r.Throttled(tc.answer)
			if got := r.Held(); got != pauseFirst {
				t.Errorf("after a call succeeded, the next answer pauses for %s, want %s again", got, pauseFirst)
			}
		})
	}
}

// TestRateQuotaMetrics: the rate in force, the 429s, the used-up quota and its pause, as
// Prometheus sees them.
func TestRateQuotaMetrics(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := NewRate(10, 1, 8, clock.Now)
	names := []string{"metastudio_api_rate_limit_per_second", "metastudio_api_throttled_total",
		"metastudio_api_quota_exhausted", "metastudio_api_quota_pause_seconds"}
	expo := func(limit, throttled, exhausted, pause string) string {
		return `
# HELP metastudio_api_quota_exhausted 1 if the API gateway's last word on the call quota is that it is used up (APIGW.0501, or a 429 stating a quota over more than a minute), until a call succeeds again; else 0.
# TYPE metastudio_api_quota_exhausted gauge
metastudio_api_quota_exhausted ` + exhausted + `
# HELP metastudio_api_quota_pause_seconds Seconds left of the pause of every MetaStudio call that a used-up quota began; 0 when calls are not paused.
# TYPE metastudio_api_quota_pause_seconds gauge
metastudio_api_quota_pause_seconds ` + pause + `
# HELP metastudio_api_rate_limit_per_second The rate of MetaStudio calls in force: scrape.max_requests_per_second, or less while the rate adapts after a 429 (never below scrape.min_requests_per_second), or the quota a 429 stated (its limit per time, even below the minimum) when that is lower; 0 means no limit.
# TYPE metastudio_api_rate_limit_per_second gauge
metastudio_api_rate_limit_per_second ` + limit + `
# HELP metastudio_api_throttled_total MetaStudio answers of 429 (APIGW.0308) or of a used-up quota (APIGW.0501): each slows or pauses the calls.
# TYPE metastudio_api_throttled_total counter
metastudio_api_throttled_total ` + throttled + `
`
	}
	for _, step := range []struct {
		name                               string
		do                                 func()
		limit, throttled, exhausted, pause string
	}{
		{"at start", func() {}, "10", "0", "0", "0"},
		{"a per-minute quota", func() { r.Throttled(quota429("limit:20,time:1 minute")) }, "0.3333333333333333", "1", "0", "0"},
		{"used up, a minute later", func() { r.Throttled(usedUp); clock.Advance(time.Minute) }, "0.3333333333333333", "2", "1", "240"},
		{"the pause over", func() { clock.Advance(4 * time.Minute) }, "0.3333333333333333", "2", "1", "0"},
		{"a call succeeded", func() { r.Answered() }, "0.3333333333333333", "2", "0", "0"},
	} {
		step.do()
		if err := testutil.CollectAndCompare(r, strings.NewReader(expo(step.limit, step.throttled, step.exhausted, step.pause)), names...); err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}
}
