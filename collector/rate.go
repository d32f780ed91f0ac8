package collector

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// The adaptive rate's constants. A simulation against a 30/s token bucket used 81–84 % of
// it with at most 1 % of calls throttled at ×0.7; ×0.5 used only 72–74 %.
const (
	cutFactor     = 0.7             // a 429 cuts the measured rate to this share of it
	cutEvery      = time.Second     // at most one cut a second: 429s of calls in flight together cut once
	measureWindow = 2 * time.Second // the rate that was sent is measured over this span
	growthTime    = 30 * time.Second
	maxRetryAfter = time.Minute // a Retry-After longer than this is taken as this
	// unlimitedCalm is how long a rate that a 429 set without any configured maximum
	// stays in force after the last 429.
	unlimitedCalm = time.Minute
)

var (
	rateLimitDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "api", "rate_limit_per_second"),
		"The rate of MetaStudio calls in force: scrape.max_requests_per_second, or less while the rate adapts after a 429 (never below scrape.min_requests_per_second); 0 means no limit.", nil, nil)
	throttledDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "api", "throttled_total"),
		"MetaStudio answers of 429 (APIGW.0308): each cuts the adaptive rate, at most once a second.", nil, nil)
)

// Rate is the process-wide adaptive limit on MetaStudio calls, shared by every scrape and
// by discovery. Its design is additive-increase/multiplicative-decrease (AIMD, as TCP
// congestion control and the AWS SDKs' "adaptive" retry mode do it):
//   - a 429 cuts the rate to cutFactor × what was actually sent over the last
//     measureWindow (not the limit, which may be far above what the gateway allows), at
//     most once every cutEvery, never below the floor (scrape.min_requests_per_second);
//   - without 429s the rate grows back linearly, reaching the maximum
//     (scrape.max_requests_per_second) within growthTime of the floor;
//   - a Retry-After pauses every call for as long as it says, up to maxRetryAfter, even
//     below the floor.
//
// A 429 is never retried by the caller: the refresher keeps the task queued. The state
// survives reloads that keep the limits.
type Rate struct {
	now func() time.Time

	mu        sync.Mutex
	max       float64 // 0: no limit
	floor     float64
	burst     int
	lim       *rate.Limiter
	cut       float64   // the rate right after the last cut; 0 while not adapting
	cutAt     time.Time // when it was cut
	holdUntil time.Time // Retry-After
	throttled float64
	sent      [20]struct{ slot, n int64 } // calls per 100 ms slot, for the measured rate
}

const slotLen = measureWindow / 20

// NewRate allows max calls per second (0: no limit), adapting down to floor, with bursts
// of burst.
func NewRate(max, floor float64, burst int, now func() time.Time) *Rate {
	r := &Rate{now: now, lim: rate.NewLimiter(rate.Inf, 1)}
	r.Configure(max, floor, burst)
	return r
}

// Configure sets the limits (at start and on reload). The adaptation in progress survives
// unless a limit changed.
func (r *Rate) Configure(max, floor float64, burst int) {
	if floor <= 0 { // config.Load always sets one; this keeps a cut from reaching 0
		floor = 1
		if max > 0 {
			floor = min(floor, max)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if max != r.max || floor != r.floor {
		r.cut = 0
	}
	r.max, r.floor, r.burst = max, floor, burst
	r.lim.SetBurst(burst)
}

// inForce is the rate at now; 0 means none. r.mu is held.
func (r *Rate) inForce(now time.Time) float64 {
	if r.cut == 0 {
		return r.max
	}
	since := now.Sub(r.cutAt).Seconds()
	if r.max == 0 { // no ceiling to grow to: double every 10 s, lifted after a calm minute
		if now.Sub(r.cutAt) >= unlimitedCalm {
			r.cut = 0
			return 0
		}
		return r.cut * (1 + since/10)
	}
	v := r.cut + (r.max-r.floor)/growthTime.Seconds()*since
	if v >= r.max {
		r.cut = 0
		return r.max
	}
	return v
}

// measured is the rate of calls sent over the last measureWindow. r.mu is held.
func (r *Rate) measured(now time.Time) float64 {
	cur := now.UnixNano() / int64(slotLen)
	var n int64
	for _, s := range r.sent {
		if cur-s.slot < int64(len(r.sent)) {
			n += s.n
		}
	}
	return float64(n) / measureWindow.Seconds()
}

// Wait blocks until one call may go out, or ctx ends.
func (r *Rate) Wait(ctx context.Context) error {
	for {
		if hold := r.turn(); hold > 0 {
			t := time.NewTimer(hold)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if err := r.lim.Wait(ctx); err != nil {
			return err
		}
		r.count()
		return nil
	}
}

// Now lets one call go out if it may at once (no Retry-After pause, a token at hand),
// and says whether it did; otherwise the call waits its turn with Wait.
func (r *Rate) Now() bool {
	if r.turn() > 0 || !r.lim.Allow() {
		return false
	}
	r.count()
	return true
}

// turn sets the limiter to the rate in force and returns how long a Retry-After still
// pauses every call.
func (r *Rate) turn() time.Duration {
	r.mu.Lock()
	now := r.now()
	hold := r.holdUntil.Sub(now)
	limit := r.inForce(now)
	r.mu.Unlock()
	if limit == 0 {
		r.lim.SetLimit(rate.Inf)
	} else {
		r.lim.SetLimit(rate.Limit(limit))
	}
	return hold
}

func (r *Rate) count() {
	r.mu.Lock()
	defer r.mu.Unlock()
	slot := r.now().UnixNano() / int64(slotLen)
	s := &r.sent[slot%int64(len(r.sent))]
	if s.slot != slot {
		s.slot, s.n = slot, 0
	}
	s.n++
}

// Throttled takes a 429: it cuts the rate (at most once every cutEvery) and honours
// retryAfter when the answer carried one.
func (r *Rate) Throttled(retryAfter time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.throttled++
	now := r.now()
	if retryAfter > 0 {
		if until := now.Add(min(retryAfter, maxRetryAfter)); until.After(r.holdUntil) {
			r.holdUntil = until
		}
	}
	if r.cut != 0 && now.Sub(r.cutAt) < cutEvery {
		return
	}
	sent := r.measured(now)
	if in := r.inForce(now); in > 0 {
		sent = min(sent, in)
	}
	r.cut, r.cutAt = max(sent*cutFactor, r.floor), now
	if r.max > 0 {
		r.cut = min(r.cut, r.max)
	}
}

// Limit is the rate in force; 0 means none.
func (r *Rate) Limit() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inForce(r.now())
}

// Describe implements prometheus.Collector.
func (r *Rate) Describe(ch chan<- *prometheus.Desc) {
	ch <- rateLimitDesc
	ch <- throttledDesc
}

// Collect implements prometheus.Collector.
func (r *Rate) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	limit, n := r.inForce(r.now()), r.throttled
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(rateLimitDesc, prometheus.GaugeValue, limit)
	ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, n)
}
