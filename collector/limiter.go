package collector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// throttleFor is how long a 429 lowers the rate.
const throttleFor = time.Minute

// observeWindow is the span over which the rate of calls is measured when no limit is set.
const observeWindow = 10

// ErrRateBudget is the error of a task whose call would not fit in the scrape's deadline
// at the current rate limit; its last known values are served instead.
var ErrRateBudget = errors.New("the API budget does not reach this task before the deadline")

var (
	rateLimitDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "api", "rate_limit_per_second"),
		"The limit on MetaStudio calls per second in force (scrape.max_requests_per_second, halved for a minute after a 429); 0 means no limit.", nil, nil)
	throttledDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "api", "throttled_total"),
		"MetaStudio answers of 429 (APIGW.0308): each lowers the rate limit for a minute.", nil, nil)
)

// Limiter is the process-wide limit on MetaStudio calls, shared by every scrape. A 429 is
// never retried: it halves the rate in force for a minute (or, without a limit, sets
// half the rate observed over the last 10 seconds), then the configured rate returns.
type Limiter struct {
	now func() time.Time

	mu         sync.Mutex
	configured float64
	burst      int
	lim        *rate.Limiter // nil: no limit
	until      time.Time     // end of the throttled minute
	lastHalved time.Time
	throttled  float64
	calls      [observeWindow]struct{ second, n int64 } // calls per second, for the observed rate
}

// NewLimiter allows perSecond calls per second (0: no limit) with bursts of burst.
func NewLimiter(perSecond float64, burst int, now func() time.Time) *Limiter {
	l := &Limiter{now: now}
	l.Configure(perSecond, burst)
	return l
}

// Configure sets the configured rate and burst (at start and on reload).
func (l *Limiter) Configure(perSecond float64, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.configured, l.burst, l.until = perSecond, max(burst, 1), time.Time{}
	l.set(perSecond)
}

func (l *Limiter) set(perSecond float64) {
	switch {
	case perSecond <= 0:
		l.lim = nil
	case l.lim == nil:
		l.lim = rate.NewLimiter(rate.Limit(perSecond), l.burst)
	default:
		l.lim.SetLimit(rate.Limit(perSecond))
		l.lim.SetBurst(l.burst)
	}
}

// current returns the limiter in force, ending a throttled minute that is over.
func (l *Limiter) current() *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.until.IsZero() && !l.now().Before(l.until) {
		l.until = time.Time{}
		l.set(l.configured)
	}
	return l.lim
}

// Wait blocks until one call may go out. It fails at once with ErrRateBudget when the
// wait would outlast ctx's deadline.
func (l *Limiter) Wait(ctx context.Context) error {
	if lim := l.current(); lim != nil {
		if err := lim.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrRateBudget // rate's own "would exceed context deadline"
		}
	}
	l.count()
	return nil
}

func (l *Limiter) count() {
	sec := l.now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &l.calls[sec%observeWindow]
	if b.second != sec {
		b.second, b.n = sec, 0
	}
	b.n++
}

// observed is the rate of calls over the last observeWindow seconds.
func (l *Limiter) observed() float64 {
	sec := l.now().Unix()
	var n int64
	for _, b := range l.calls {
		if sec-b.second < observeWindow {
			n += b.n
		}
	}
	return float64(n) / observeWindow
}

// Throttled lowers the rate after a 429. Many 429s of calls that were in flight together
// lower it once a second at most.
func (l *Limiter) Throttled() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.throttled++
	now := l.now()
	if now.Sub(l.lastHalved) < time.Second {
		return
	}
	l.lastHalved = now
	in := l.configured
	if l.lim != nil {
		in = float64(l.lim.Limit())
	}
	if in <= 0 {
		in = l.observed()
	}
	l.set(max(in/2, 0.1))
	l.until = now.Add(throttleFor)
}

// Rate is the limit in force; 0 means none.
func (l *Limiter) Rate() float64 {
	if lim := l.current(); lim != nil {
		return float64(lim.Limit())
	}
	return 0
}

// Describe implements prometheus.Collector.
func (l *Limiter) Describe(ch chan<- *prometheus.Desc) {
	ch <- rateLimitDesc
	ch <- throttledDesc
}

// Collect implements prometheus.Collector.
func (l *Limiter) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(rateLimitDesc, prometheus.GaugeValue, l.Rate())
	l.mu.Lock()
	n := l.throttled
	l.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, n)
}
