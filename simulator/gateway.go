package simulator

import (
	"encoding/json"
	"maps"
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
// here) with a token bucket on Options.Now. With Options.QuotaPerMinute or Options.Quota it
// also keeps the gateway's call quotas, charged after authentication. Whenever one of the
// three is set, it counts what it let through and what it refused, so that a load test can
// tell how much of the allowance an exporter used, how often it asked for a task it had
// just been given, and whether it asked for a task while its previous call of that task
// was still being answered (GatewayStats, StatsPath).

// StatsPath is where StatsHandler is meant to be served (cmd/metastudio-sim does): a path
// no Huawei API has.
const StatsPath = "/-/sim/stats"

// RepeatWindow is how soon after its previous answer a ShowTask answer for the same task
// counts as a repeat: a call that a process-wide refresher should not have needed.
const RepeatWindow = time.Second

// GatewayStats is what the gateway counted since the Server was built. A request is
// answered when it passed the token bucket and its answer was written with the client still
// there, whatever the answer (a 401, a fault, a 404 and a quota's refusal count: they cost
// the allowance too); it is throttled when the token bucket answered it 429. A snapshot:
// the maps are copies.
type GatewayStats struct {
	RateLimit      float64 `json:"rate_limit"`       // Options.RateLimit, per second (0: no bucket)
	RateBurst      int     `json:"rate_burst"`       // the bucket's size
	QuotaPerMinute int     `json:"quota_per_minute"` // Options.QuotaPerMinute (0: none)
	Quota          int64   `json:"quota"`            // Options.Quota (0: none)
	Answered       int64   `json:"answered"`         // ShowTask and SearchTask requests answered
	Throttled      int64   `json:"throttled"`        // ... answered 429 by the token bucket
	// Repeats counts the answered ShowTask requests whose task had been answered less than
	// RepeatWindow before.
	Repeats int64 `json:"repeats"`
	// Overlaps counts the ShowTask requests that arrived while another ShowTask request of
	// the same task id with the same credentials (the AK of its Authorization header, or
	// its X-Auth-Token) was still being answered, from its arrival to its last byte.
	Overlaps int64 `json:"overlaps"`
	// QuotaCalls counts the calls charged to the quotas: authenticated ShowTask and
	// SearchTask requests that no quota refused.
	QuotaCalls int64 `json:"quota_calls"`
	// MinuteRefused counts the calls answered 429 APIGW.0308 by QuotaPerMinute;
	// UsedUpRefused those answered 405 APIGW.0501 once Quota was used up.
	MinuteRefused int64 `json:"minute_refused"`
	UsedUpRefused int64 `json:"used_up_refused"`
	// Operations splits Answered and Throttled by operation (OpShowTask, OpSearchTask).
	Operations map[string]CallStats `json:"operations"`
	// Tasks has the ShowTask counts of every task id that was asked for at least once.
	Tasks map[string]CallStats `json:"tasks"`
	// Projects splits Answered and Throttled (ShowTask and SearchTask together, with
	// ShowTask's repeats and overlaps) by the project the path names, by name
	// (DefaultProject or a Project.Name), for every project the handler serves; a path
	// naming none is counted in no project.
	Projects map[string]CallStats `json:"projects"`
}

// CallStats counts the calls of one operation or of one task.
type CallStats struct {
	Answered  int64 `json:"answered"`
	Throttled int64 `json:"throttled"`
	Repeats   int64 `json:"repeats,omitempty"`  // ShowTask only
	Overlaps  int64 `json:"overlaps,omitempty"` // ShowTask only
	// FirstAnswered and LastAnswered are the Now of the first and the latest answer (zero
	// when none).
	FirstAnswered time.Time `json:"first_answered"`
	LastAnswered  time.Time `json:"last_answered"`
}

// gateway is the token bucket, the quotas and their counters. nil when Options sets none
// of RateLimit, QuotaPerMinute and Quota.
type gateway struct {
	rate      float64 // tokens per second; 0: no bucket
	burst     float64
	msg       string
	perMinute int
	quota     int64

	mu       sync.Mutex
	tokens   float64
	last     time.Time         // when tokens was last brought up to date
	minutes  map[string]minute // credentials -> their calls in the current minute
	inflight map[flight]int    // ShowTask requests being answered
	stats    GatewayStats
}

// minute is the count of one credential's calls in the minute that began at start.
type minute struct {
	start time.Time
	calls int
}

// flight is a ShowTask request being answered: its credentials and task id.
type flight struct {
	who, taskID string
}

// newGateway builds the gateway of o (its token bucket: RateLimit requests per second with
// a full bucket of RateBurst, default the rate rounded up, at least 1), or nil when o sets
// no rate and no quota.
func newGateway(o Options, now time.Time) *gateway {
	rate, burst := o.RateLimit, o.RateBurst
	if !(rate > 0) || math.IsInf(rate, 1) {
		rate, burst = 0, 0
	}
	perMinute, quota := max(o.QuotaPerMinute, 0), max(o.Quota, 0)
	if rate == 0 && perMinute == 0 && quota == 0 {
		return nil
	}
	if rate > 0 && burst <= 0 {
		burst = int(min(math.Ceil(rate), math.MaxInt32))
	}
	return &gateway{
		rate:      rate,
		burst:     float64(burst),
		msg:       ratelimitMsg(strconv.FormatFloat(rate, 'f', -1, 64), "second"),
		perMinute: perMinute,
		quota:     quota,
		tokens:    float64(burst),
		last:      now,
		minutes:   map[string]minute{},
		inflight:  map[flight]int{},
		stats: GatewayStats{
			RateLimit:      rate,
			RateBurst:      burst,
			QuotaPerMinute: perMinute,
			Quota:          quota,
			Operations:     map[string]CallStats{OpShowTask: {}, OpSearchTask: {}},
			Tasks:          map[string]CallStats{},
			Projects:       map[string]CallStats{},
		},
	}
}

// admit takes a token for a request of rt at now, or counts it throttled.
func (g *gateway) admit(rt route, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rate == 0 {
		return true
	}
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

// charge counts an authenticated call of who at now against the quotas. A call over a
// quota is not charged, and refused with the gateway's answer: 405 APIGW.0501 once Quota
// calls were charged in all (every credential together), else 429 APIGW.0308 once
// QuotaPerMinute calls of who were charged in the current minute of the clock (a fixed
// minute, from hh:mm:00 to hh:mm:59.999).
func (g *gateway) charge(who string, now time.Time) (status int, code, msg string, refused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.quota > 0 && g.stats.QuotaCalls >= g.quota {
		g.stats.UsedUpRefused++
		return http.StatusMethodNotAllowed, CodeGatewayQuotaUsedUp, msgQuotaUsedUp, true
	}
	if g.perMinute > 0 {
		start := now.Truncate(time.Minute)
		m := g.minutes[who]
		if !m.start.Equal(start) {
			m = minute{start: start}
		}
		if m.calls >= g.perMinute {
			g.stats.MinuteRefused++
			return http.StatusTooManyRequests, CodeGatewayThrottled, ratelimitMsg(strconv.Itoa(g.perMinute), "minute"), true
		}
		m.calls++
		g.minutes[who] = m
	}
	g.stats.QuotaCalls++
	return 0, "", "", false
}

// arrive counts a ShowTask request of who for taskID of project (its name, "" for none)
// that is now being answered, and an overlap when another one of the same who and taskID
// is; leave ends it.
func (g *gateway) arrive(who, taskID, project string) (leave func()) {
	key := flight{who, taskID}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[key] > 0 {
		g.stats.Overlaps++
		t := g.stats.Tasks[taskID]
		t.Overlaps++
		g.stats.Tasks[taskID] = t
		if project != "" {
			p := g.stats.Projects[project]
			p.Overlaps++
			g.stats.Projects[project] = p
		}
	}
	g.inflight[key]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.inflight[key]--; g.inflight[key] <= 0 {
			delete(g.inflight, key)
		}
	}
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

// count applies f to the counters of rt's operation, of its project and, for ShowTask, of
// its task.
func (g *gateway) count(rt route, f func(*CallStats)) {
	op := g.stats.Operations[rt.op]
	f(&op)
	g.stats.Operations[rt.op] = op
	if rt.name != "" {
		p := g.stats.Projects[rt.name]
		f(&p)
		g.stats.Projects[rt.name] = p
	}
	if rt.op == OpShowTask {
		t := g.stats.Tasks[rt.taskID]
		f(&t)
		g.stats.Tasks[rt.taskID] = t
	}
}

// gated says whether the gateway counts and limits requests of rt.
func (g *gateway) gated(rt route) bool {
	return g != nil && (rt.op == OpShowTask || rt.op == OpSearchTask)
}

// throttle is the gateway's step in ServeHTTP, before authentication. For a ShowTask or
// SearchTask request over the rate limit it answers 429 APIGW.0308 and returns ok false.
// Otherwise the caller answers the request and then calls done, which counts the answer
// unless the client went away first.
func (s *Server) throttle(w http.ResponseWriter, r *http.Request, reqID string, rt route) (done func(), ok bool) {
	g := s.gate
	if !g.gated(rt) {
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

// chargeQuota is the gateway's step in ServeHTTP after authentication: it charges a
// ShowTask or SearchTask call of who to the quotas, or answers the quota's refusal and
// returns false.
func (s *Server) chargeQuota(w http.ResponseWriter, reqID string, rt route, who string) bool {
	g := s.gate
	if !g.gated(rt) || (g.quota == 0 && g.perMinute == 0) {
		return true
	}
	status, code, msg, refused := g.charge(who, s.now())
	if refused {
		s.writeJSONError(w, reqID, status, code, msg)
	}
	return !refused
}

// GatewayStats returns what the gateway counted so far; ok is false when Options sets none
// of RateLimit, QuotaPerMinute and Quota.
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
	stats.Tasks = maps.Clone(g.stats.Tasks)
	stats.Projects = maps.Clone(g.stats.Projects)
	return stats, true
}

// StatsHandler serves GatewayStats as JSON to GET requests from a loopback address, for
// load tests. It needs no authentication, which is why it refuses every other client, and
// why it answers the gateway's 404 APIGW.0101 (as for an unknown API) when the gateway is
// off (no rate limit and no quota).
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
			s.writeJSONError(w, "", http.StatusNotFound, CodeGatewayNotFound, "The gateway is off (no rate limit and no quota)")
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
