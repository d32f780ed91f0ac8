package simulator

import (
	"encoding/json"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The throttling gateway. Huawei's API gateway throttles each API per user before it
// authenticates anything: over the limit it answers 429 APIGW.0308 at once, and the call
// never reaches MetaStudio. With Options.RateLimit set, the simulator does the same to
// ShowTask and SearchTask (IAM and the metadata service are other services, not throttled
// here) with a token bucket on Options.Now, and counts what it let through and what it
// refused, so that a load test can tell how much of the allowance an exporter used and how
// often it asked for a task it had just been given (GatewayStats, StatsPath).

// StatsPath is where StatsHandler is meant to be served (cmd/metastudio-sim does): a path
// no Huawei API has.
const StatsPath = "/-/sim/stats"

// RepeatWindow is how soon after its previous answer a ShowTask answer for the same task
// counts as a repeat: a call that a process-wide refresher should not have needed.
const RepeatWindow = time.Second

// GatewayStats is what the throttling gateway counted since the Server was built. A request
// is answered when it passed the gateway and its answer was written with the client still
// there, whatever the answer (a 401, a fault and a 404 count: they cost the allowance too);
// it is throttled when the gateway answered it 429. A snapshot: the maps are copies.
type GatewayStats struct {
	RateLimit float64 `json:"rate_limit"` // Options.RateLimit, per second
	RateBurst int     `json:"rate_burst"` // the bucket's size
	Answered  int64   `json:"answered"`   // ShowTask and SearchTask requests answered
	Throttled int64   `json:"throttled"`  // ... answered 429 by the gateway
	// Repeats counts the answered ShowTask requests whose task had been answered less than
	// RepeatWindow before.
	Repeats int64 `json:"repeats"`
	// Operations splits Answered and Throttled by operation (OpShowTask, OpSearchTask).
	Operations map[string]CallStats `json:"operations"`
	// Tasks has the ShowTask counts of every task id that was asked for at least once.
	Tasks map[string]CallStats `json:"tasks"`
}

// CallStats counts the calls of one operation or of one task.
type CallStats struct {
	Answered  int64 `json:"answered"`
	Throttled int64 `json:"throttled"`
	Repeats   int64 `json:"repeats,omitempty"` // ShowTask only
	// FirstAnswered and LastAnswered are the Now of the first and the latest answer (zero
	// when none).
	FirstAnswered time.Time `json:"first_answered"`
	LastAnswered  time.Time `json:"last_answered"`
}

// gateway is the token bucket and its counters. nil when Options.RateLimit is not positive.
type gateway struct {
	rate  float64 // tokens per second
	burst float64
	msg   string

	mu     sync.Mutex
	tokens float64
	last   time.Time // when tokens was last brought up to date
	stats  GatewayStats
}

// newGateway builds the gateway of rate requests per second with a full bucket of burst
// (default: rate rounded up, at least 1), or nil for a rate that is not positive.
func newGateway(rate float64, burst int, now time.Time) *gateway {
	if !(rate > 0) || math.IsInf(rate, 1) {
		return nil
	}
	if burst <= 0 {
		burst = int(min(math.Ceil(rate), math.MaxInt32))
	}
	limit := strconv.FormatFloat(rate, 'f', -1, 64)
	return &gateway{
		rate:   rate,
		burst:  float64(burst),
		msg:    "The throttling threshold has been reached: policy user over ratelimit,limit:" + limit + ",time:1 second",
		tokens: float64(burst),
		last:   now,
		stats: GatewayStats{
			RateLimit:  rate,
			RateBurst:  burst,
			Operations: map[string]CallStats{OpShowTask: {}, OpSearchTask: {}},
			Tasks:      map[string]CallStats{},
		},
	}
}

// admit takes a token for a request of rt at now, or counts it throttled.
func (g *gateway) admit(rt route, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := now.Sub(g.last); d > 0 {
		g.tokens = min(g.burst, g.tokens+d.Seconds()*g.rate)
		g.last = now
	}
	if g.tokens >= 1 {
		g.tokens--
		return true
	}
	g.stats.Throttled++
	g.count(rt, func(c *CallStats) { c.Throttled++ })
	return false
}

// answered counts the answer of an admitted request of rt, given at now.
func (g *gateway) answered(rt route, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.Answered++
	repeat := false
	if rt.op == OpShowTask {
		prev := g.stats.Tasks[rt.taskID].LastAnswered
		repeat = !prev.IsZero() && now.Sub(prev) < RepeatWindow
		if repeat {
			g.stats.Repeats++
		}
	}
	g.count(rt, func(c *CallStats) {
		c.Answered++
		if repeat {
			c.Repeats++
		}
		if c.FirstAnswered.IsZero() {
			c.FirstAnswered = now
		}
		c.LastAnswered = now
	})
}

// count applies f to the counters of rt's operation and, for ShowTask, of its task.
func (g *gateway) count(rt route, f func(*CallStats)) {
	op := g.stats.Operations[rt.op]
	f(&op)
	g.stats.Operations[rt.op] = op
	if rt.op == OpShowTask {
		t := g.stats.Tasks[rt.taskID]
		f(&t)
		g.stats.Tasks[rt.taskID] = t
	}
}

// throttle is the gateway's step in ServeHTTP, before authentication. For a ShowTask or
// SearchTask request over the limit it answers 429 APIGW.0308 and returns ok false.
// Otherwise the caller answers the request and then calls done, which counts the answer
// unless the client went away first.
func (s *Server) throttle(w http.ResponseWriter, r *http.Request, reqID string, rt route) (done func(), ok bool) {
	g := s.gate
	if g == nil || (rt.op != OpShowTask && rt.op != OpSearchTask) {
		return func() {}, true
	}
	if !g.admit(rt, s.now()) {
		s.writeJSONError(w, reqID, http.StatusTooManyRequests, CodeGatewayThrottled, g.msg)
		return nil, false
	}
	return func() {
		if r.Context().Err() == nil {
			g.answered(rt, s.now())
		}
	}, true
}

// GatewayStats returns what the throttling gateway counted so far; ok is false when
// Options.RateLimit is not set.
func (s *Server) GatewayStats() (stats GatewayStats, ok bool) {
	g := s.gate
	if g == nil {
		return GatewayStats{}, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	stats = g.stats
	stats.Operations = make(map[string]CallStats, len(g.stats.Operations))
	for k, v := range g.stats.Operations {
		stats.Operations[k] = v
	}
	stats.Tasks = make(map[string]CallStats, len(g.stats.Tasks))
	for k, v := range g.stats.Tasks {
		stats.Tasks[k] = v
	}
	return stats, true
}

// StatsHandler serves GatewayStats as JSON to GET requests from a loopback address, for
// load tests. It needs no authentication, which is why it refuses every other client, and
// why it answers the gateway's 404 APIGW.0101 (as for an unknown API) when the gateway is off.
func (s *Server) StatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerReqID, newRequestID())
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			s.writeJSONError(w, "", http.StatusForbidden, CodeGatewayBadRequest, "The statistics are served to loopback clients only")
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			s.writeJSONError(w, "", http.StatusMethodNotAllowed, CodeGatewayBadRequest, "Only GET is allowed")
			return
		}
		stats, ok := s.GatewayStats()
		if !ok {
			s.writeJSONError(w, "", http.StatusNotFound, CodeGatewayNotFound, "The throttling gateway is off (no rate limit)")
			return
		}
		b, err := json.Marshal(stats)
		if err != nil {
			s.writeJSONError(w, "", http.StatusInternalServerError, CodeInternal, msgInternal)
			return
		}
		s.writeBody(w, http.StatusOK, contentJSON, b)
	})
}
