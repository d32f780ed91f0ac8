package refresh

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
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

// The gateway's stated quotas. A 429 whose message states "limit:N,time:P" with P up to
// maxPacedPeriod paces calls to N per P. The quota is the gateway's configuration, which
// changes seldom, and pacing to it draws no further 429 to confirm it: it stays in force
// for quotaMemory after the 429 that stated it, and is then learnt again at the cost of
// one 429 (a few, for the calls in flight together). A quota raised in the console thus
// takes effect within quotaMemory; MetaStudioAPIThrottled (a 429 in every 5 minutes for
// 10 minutes) does not fire on it. A quota used up for longer (a longer P, or APIGW.0501)
// pauses every call: pauseFirst, doubling on each further such answer up to pauseMax,
// back to pauseFirst once a call succeeds.
const (
	quotaMemory    = 30 * time.Minute
	maxPacedPeriod = time.Minute
	pauseFirst     = 5 * time.Minute
	pauseMax       = time.Hour
	// recentCalls is how many of the last calls are remembered to count them against a
	// stated quota; a quota of more calls per period is counted over a proportionally
	// shorter window.
	recentCalls = 1024
)

var (
	rateLimitDesc      = newDesc("api", "rate_limit_per_second", "The rate of MetaStudio calls in force: scrape.max_requests_per_second, or less while the rate adapts after a 429 (never below scrape.min_requests_per_second), or the quota a 429 stated (its limit per time, even below the minimum) when that is lower; 0 means no limit.")
	throttledDesc      = newDesc("api", "throttled_total", "MetaStudio answers of 429 (APIGW.0308) or of a used-up quota (APIGW.0501): each slows or pauses the calls.")
	quotaExhaustedDesc = newDesc("api", "quota_exhausted", "1 if the API gateway's last word on the call quota is that it is used up (APIGW.0501, or a 429 stating a quota over more than a minute), until a call succeeds again; else 0.")
	quotaPauseDesc     = newDesc("api", "quota_pause_seconds", "Seconds left of the pause of every MetaStudio call that a used-up quota began; 0 when calls are not paused.")
)

// Rate is the adaptive limit on the MetaStudio calls of one AK at one API host, shared by
// every scrape and by discovery of the projects on them (Refresher.SetProject): the
// gateway throttles per AK. Its design is additive-increase/multiplicative-decrease
// (AIMD, as TCP congestion control and the AWS SDKs' "adaptive" retry mode do it):
//   - a 429 cuts the rate to cutFactor × what was actually sent over the last
//     measureWindow (not the limit, which may be far above what the gateway allows), at
//     most once every cutEvery, never below the floor (scrape.min_requests_per_second);
//   - without 429s the rate grows back linearly, reaching the maximum
//     (scrape.max_requests_per_second) within growthTime of the floor;
//   - a Retry-After pauses every call for as long as it says, up to maxRetryAfter, even
//     below the floor.
//
// A 429 that states its quota is not guessed at: calls are paced to it, whatever the
// floor, and a quota used up for longer pauses them all (see quotaMemory).
//
// A 429 is never retried by the caller: the refresher keeps the task queued. The state
// survives reloads that keep the limits; the stated quota and a pause survive every
// reload, as they are the gateway's.
type Rate struct {
	now func() time.Time

	mu        sync.Mutex
	max       float64 // 0: no limit
	floor     float64
	burst     int
	lim       *rate.Limiter
	cut       float64   // the rate right after the last cut; 0 while not adapting
	cutAt     time.Time // when it was cut
	holdUntil time.Time // Retry-After, or a stated quota that our own calls do not explain
	throttled float64
	sent      [20]struct{ slot, n int64 } // calls per 100 ms slot, for the measured rate

	quota      metastudio.Quota // the stated quota paced to (Limit > 0), until quotaUntil
	quotaUntil time.Time
	recent     [recentCalls]time.Time // when the last calls went out, a ring
	calls      int                    // calls recorded in recent, in all
	pauseUntil time.Time              // a used-up quota pauses every call until then
	nextPause  time.Duration          // the next pause; 0 means pauseFirst
	exhausted  bool                   // a used-up quota and no call succeeded since
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

// Try lets one call go out if it may at once, as Now does; otherwise it says how long
// until it may (a hold, or the adaptive rate's next token), so that a dispatcher serves
// the projects on other rates meanwhile instead of blocking.
func (r *Rate) Try() (time.Duration, bool) {
	if hold := r.turn(); hold > 0 {
		return hold, false
	}
	if !r.lim.Allow() {
		limit, tokens := float64(r.lim.Limit()), r.lim.Tokens()
		return max(time.Duration((1-tokens)/limit*float64(time.Second)), time.Millisecond), false
	}
	if r.take() {
		return 0, true
	}
	// Another call took the quota's last room, or a pause began, meanwhile.
	return max(r.Held(), time.Millisecond), false
}

// Now lets one call go out if it may at once (no pause, room in a stated quota, a token
// at hand), and says whether it did.
func (r *Rate) Now() bool {
	if r.turn() > 0 || !r.lim.Allow() {
		return false
	}
	return r.take()
}

// turn sets the limiter to the adaptive rate in force and returns how long every call is
// still held: by a Retry-After, a pause, or a stated quota.
func (r *Rate) turn() time.Duration {
	r.mu.Lock()
	now := r.now()
	hold := r.heldUntil(now).Sub(now)
	limit := r.inForce(now)
	r.mu.Unlock()
	if limit == 0 {
		r.lim.SetLimit(rate.Inf)
	} else {
		r.lim.SetLimit(rate.Limit(limit))
	}
	return hold
}

// take records a call that goes out now, unless a hold began since turn. The check and the
// record are one step, so that calls that go out together cannot overrun a stated quota.
func (r *Rate) take() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.heldUntil(now).After(now) {
		return false
	}
	r.record(now)
	return true
}

func (r *Rate) count() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(r.now())
}

// record counts a call sent at now. r.mu is held.
func (r *Rate) record(now time.Time) {
	slot := now.UnixNano() / int64(slotLen)
	s := &r.sent[slot%int64(len(r.sent))]
	if s.slot != slot {
		s.slot, s.n = slot, 0
	}
	s.n++
	r.recent[r.calls%len(r.recent)] = now
	r.calls++
}

// heldUntil is when the next call may go out: after a Retry-After, after a pause, and, under
// a stated quota, once the quota's window has room and the pace allows. r.mu is held.
func (r *Rate) heldUntil(now time.Time) time.Time {
	t := r.holdUntil
	if r.pauseUntil.After(t) {
		t = r.pauseUntil
	}
	k, window, gap, ok := r.pacing(now)
	if !ok || r.calls == 0 {
		return t
	}
	if next := r.recent[(r.calls-1)%len(r.recent)].Add(gap); next.After(t) {
		t = next
	}
	if r.calls >= k {
		if free := r.recent[(r.calls-k)%len(r.recent)].Add(window); free.After(t) {
			t = free
		}
	}
	return t
}

// pacing is the stated quota in force as at most k calls in any window, each at least gap
// after the one before; ok is false when no quota is stated. r.mu is held.
func (r *Rate) pacing(now time.Time) (k int, window, gap time.Duration, ok bool) {
	if r.quota.Limit <= 0 || !now.Before(r.quotaUntil) {
		return 0, 0, 0, false
	}
	k = int(min(max(r.quota.Limit, 1), recentCalls))
	period := float64(r.quota.Period)
	// A limit far below one call per period would overflow a Duration: an hour is plenty.
	window = time.Duration(min(period*float64(k)/r.quota.Limit, float64(pauseMax)))
	gap = time.Duration(min(period/r.quota.Limit, float64(pauseMax)))
	return k, window, gap, true
}

// since counts the recorded calls sent after t. r.mu is held.
func (r *Rate) since(t time.Time) int {
	n := 0
	for i := r.calls - 1; i >= 0 && i >= r.calls-len(r.recent) && r.recent[i%len(r.recent)].After(t); i-- {
		n++
	}
	return n
}

// Throttled takes a throttling answer (metastudio.APIError.Throttled). Its Retry-After
// holds every call. A quota it states paces calls to that quota; a quota used up for
// longer than maxPacedPeriod pauses them all; any other 429 cuts the adaptive rate (at
// most once every cutEvery). e may be nil: a 429 that says nothing more.
func (r *Rate) Throttled(e *metastudio.APIError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.throttled++
	now := r.now()
	var q metastudio.Quota
	stated := false
	if e != nil {
		if e.RetryAfter > 0 {
			r.hold(now.Add(min(e.RetryAfter, maxRetryAfter)))
		}
		q, stated = e.Quota()
	}
	switch {
	case stated && (q.UsedUp || q.Period > maxPacedPeriod):
		r.pause(now)
	case stated:
		r.pace(q, now)
	default:
		r.cutRate(now)
	}
}

// hold holds every call until until, unless a longer hold is on. r.mu is held.
func (r *Rate) hold(until time.Time) {
	if until.After(r.holdUntil) {
		r.holdUntil = until
	}
}

// pause stops every call for the next pause, unless one is on: the answers of calls that
// were in flight together extend nothing. r.mu is held.
func (r *Rate) pause(now time.Time) {
	r.exhausted = true
	if now.Before(r.pauseUntil) {
		return
	}
	d := r.nextPause
	if d == 0 {
		d = pauseFirst
	}
	r.pauseUntil, r.nextPause = now.Add(d), min(2*d, pauseMax)
}

// pace paces calls to the stated quota q from now on, counting the calls already sent in
// its window. If they are fewer than it allows, someone else shares the quota (another
// exporter, another program with the same account): the window is taken as full, and
// every call waits for it to pass. r.mu is held.
func (r *Rate) pace(q metastudio.Quota, now time.Time) {
	r.quota, r.quotaUntil = q, now.Add(quotaMemory)
	if k, window, _, _ := r.pacing(now); r.since(now.Add(-window)) < k {
		r.hold(now.Add(window))
	}
}

// cutRate cuts the adaptive rate after a 429 that states no quota. r.mu is held.
func (r *Rate) cutRate(now time.Time) {
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

// Answered takes a call that the gateway let through (a 2xx, or an answer of the service
// itself): the quota is not used up (any more), and the next used-up answer pauses for
// pauseFirst again. Such an answer during a pause (a call that was in flight when it
// began) changes nothing.
func (r *Rate) Answered() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exhausted && !r.now().Before(r.pauseUntil) {
		r.exhausted, r.nextPause = false, 0
	}
}

// Held is how long every call is still held: by a pause, a Retry-After or a stated
// quota's pace; 0 when a call may go out as far as they are concerned (the adaptive
// rate's tokens aside).
func (r *Rate) Held() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	return max(r.heldUntil(now).Sub(now), 0)
}

// Limit is the rate in force: the adaptive rate, or a stated quota's limit per period
// when that is lower; 0 means none.
func (r *Rate) Limit() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limit(r.now())
}

// limit is Limit at now. r.mu is held.
func (r *Rate) limit(now time.Time) float64 {
	limit := r.inForce(now)
	if _, _, _, ok := r.pacing(now); ok {
		if q := r.quota.Limit / r.quota.Period.Seconds(); limit == 0 || q < limit {
			limit = q
		}
	}
	return limit
}

// Describe implements prometheus.Collector.
func (r *Rate) Describe(ch chan<- *prometheus.Desc) {
	ch <- rateLimitDesc
	ch <- throttledDesc
	ch <- quotaExhaustedDesc
	ch <- quotaPauseDesc
}

// Collect implements prometheus.Collector.
func (r *Rate) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	now := r.now()
	limit, n := r.limit(now), r.throttled
	exhausted := 0.0
	if r.exhausted {
		exhausted = 1
	}
	pause := max(r.pauseUntil.Sub(now), 0).Seconds()
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(rateLimitDesc, prometheus.GaugeValue, limit)
	ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, n)
	ch <- prometheus.MustNewConstMetric(quotaExhaustedDesc, prometheus.GaugeValue, exhausted)
	ch <- prometheus.MustNewConstMetric(quotaPauseDesc, prometheus.GaugeValue, pause)
}
