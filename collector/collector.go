// Package collector turns MetaStudio tasks into Prometheus metrics: what one scrape
// fetches, how many calls run at once, under which deadline, and the series it emits.
package collector

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// timeoutOffset leaves Prometheus' scrape timeout some room for encoding and transfer.
const timeoutOffset = 500 * time.Millisecond

// Collector scrapes the tasks of one config: the configured ones and those discovery
// lists. One Collector lives as long as its config; the Fetcher and Discovery it uses
// outlive reloads. It remembers which tasks were failing so that a failure is logged once.
type Collector struct {
	cfg       *config.Config
	fetcher   *Fetcher
	discovery *Discovery // nil without discovery
	shard     Shard
	logger    log.Logger

	mu      sync.Mutex
	failing map[string]string // task id -> reason of its last failure
}

// New returns a Collector for cfg that exports the tasks of shard. discovery may be nil.
func New(cfg *config.Config, fetcher *Fetcher, discovery *Discovery, shard Shard, logger log.Logger) *Collector {
	return &Collector{cfg: cfg, fetcher: fetcher, discovery: discovery, shard: shard, logger: logger, failing: map[string]string{}}
}

// Config is the config this Collector scrapes with.
func (c *Collector) Config() *config.Config { return c.cfg }

// Shard selects the tasks one replica of several exports, without coordination: those
// whose id hashes (FNV-1a 64) to Index modulo Count.
type Shard struct {
	Index, Count int
}

// Owns reports whether id belongs to this shard.
func (s Shard) Owns(id string) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()%uint64(s.Count) == uint64(s.Index)
}

// result is what one scrape knows of one task.
type result struct {
	id   string
	task *metastudio.Task
	age  time.Duration // how old the values are; 0 for a call of this scrape
	err  error         // set when the scrape has no values to show
}

// Target is a watched task, as /sd lists it.
type Target struct {
	ID, Resource string
}

// Targets returns the tasks this config watches: the configured ones, then the discovered
// ones that began within the lookback, newest first, without repeats. all includes the
// tasks of other shards.
func (c *Collector) Targets(all bool) []Target {
	var out []Target
	seen := map[string]bool{}
	add := func(id, resource string) {
		if !seen[id] && (all || c.shard.Owns(id)) {
			seen[id] = true
			out = append(out, Target{ID: id, Resource: resource})
		}
	}
	for _, id := range c.cfg.Tasks {
		resource := ""
		if e, ok := c.fetcher.last(id); ok {
			resource = e.task.Resource.Text
		}
		add(id, resource)
	}
	if c.discovery != nil {
		for _, t := range c.discovery.Tasks() {
			add(t.ID, t.Resource)
		}
	}
	return out
}

// Watched returns the ids of this shard's targets.
func (c *Collector) Watched() []string {
	targets := c.Targets(false)
	ids := make([]string, len(targets))
	for i, t := range targets {
		ids[i] = t.ID
	}
	return ids
}

// scrape gets every watched task. A finished task within cache.finished_ttl, or one that
// discovery listed as finished, is served from memory. The others are fetched, stalest
// first, at most scrape.concurrency at a time, under the rate limit, until ctx ends. A
// task whose call was made and failed has no values; a task that the budget (rate limit,
// deadline) did not reach is served from its last known values, if any.
func (c *Collector) scrape(ctx context.Context, ids []string) []result {
	results := make([]result, len(ids))
	now := c.fetcher.now()
	var stale []int
	fetched := make([]time.Time, len(ids))
	for i, id := range ids {
		results[i].id = id
		e, ok := c.fetcher.last(id)
		if ok && c.fresh(e, now) {
			results[i].task, results[i].age = e.task, now.Sub(e.fetched)
			continue
		}
		fetched[i] = e.fetched
		stale = append(stale, i)
	}
	// Stalest first, never fetched before anything: over consecutive scrapes that the
	// budget cannot cover, every task is refreshed in turn.
	slices.SortStableFunc(stale, func(a, b int) int { return fetched[a].Compare(fetched[b]) })
	var g errgroup.Group
	g.SetLimit(c.cfg.Scrape.Concurrency)
	for k, i := range stale {
		// The budget is taken here, in order, so that the stalest tasks get it; during an
		// authentication cool-down no call will go out, so none is taken.
		if err := c.budget(ctx); err != nil {
			for _, j := range stale[k:] {
				results[j] = c.known(ids[j], err)
			}
			break
		}
		g.Go(func() error {
			results[i] = c.get(ctx, ids[i])
			return nil
		})
	}
	_ = g.Wait() // the goroutines never return an error: failures are per task
	return results
}

// budget waits for the rate limit, unless no call can go out anyway.
func (c *Collector) budget(ctx context.Context) error {
	if c.fetcher.guard.coolingDown() {
		return nil
	}
	return c.fetcher.wait(ctx)
}

// fresh reports whether a task's last values may be served without a call.
func (c *Collector) fresh(e entry, now time.Time) bool {
	if !e.task.Finished() {
		return false
	}
	ttl := c.cfg.Cache.FinishedTTL
	return e.listed || (ttl > 0 && now.Sub(e.fetched) < ttl)
}

// get fetches one task, or falls back on its last values when the call was not made for
// want of budget.
func (c *Collector) get(ctx context.Context, id string) result {
	o := c.fetcher.showTask(ctx, id)
	switch {
	case o.err == nil:
		return result{id: id, task: o.task}
	case !o.called && !errors.Is(o.err, ErrAuthBackoff):
		return c.known(id, o.err)
	}
	return result{id: id, err: o.err}
}

// known serves a task that was not called for want of budget from its last values; with
// none, the task fails with err.
func (c *Collector) known(id string, err error) result {
	if e, ok := c.fetcher.last(id); ok {
		return result{id: id, task: e.task, age: c.fetcher.now().Sub(e.fetched)}
	}
	return result{id: id, err: err}
}

// keeps tells which remembered tasks this config still needs.
func (c *Collector) keeps(targets []Target) func(string) bool {
	set := make(map[string]bool, len(targets))
	for _, t := range targets {
		set[t.ID] = true
	}
	return func(id string) bool { return set[id] }
}

// Collect runs one scrape of this shard's tasks under ctx and sends every series to ch.
func (c *Collector) Collect(ctx context.Context, ch chan<- prometheus.Metric) {
	start := time.Now()
	ids := c.Watched()
	for _, r := range c.scrape(ctx, ids) {
		c.emit(ch, r)
	}
	c.fetcher.forget(c.keeps(c.Targets(true)))
	ch <- prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, time.Since(start).Seconds())
}

// emit sends a task's series: its values, or scrape_success 0 alone.
func (c *Collector) emit(ch chan<- prometheus.Metric, r result) bool {
	c.track(r.id, r.err)
	if r.err != nil {
		ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 0, r.id)
		return false
	}
	ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 1, r.id)
	ch <- prometheus.MustNewConstMetric(dataAgeDesc, prometheus.GaugeValue, r.age.Seconds(), r.id)
	c.emitTask(ch, r.id, r.task)
	return true
}

// Listed reports whether id is configured or discovered (in any shard): what /probe may
// fetch unless probe.allow_unlisted is set.
func (c *Collector) Listed(id string) bool {
	return slices.ContainsFunc(c.Targets(true), func(t Target) bool { return t.ID == id })
}

// Probe fetches one task under ctx, sharing the cache, rate limit and AK guard with the
// scrapes, and sends its series with probe_success and probe_duration_seconds.
func (c *Collector) Probe(ctx context.Context, id string, ch chan<- prometheus.Metric) {
	start := time.Now()
	success := 0.0
	if c.emit(ch, c.scrape(ctx, []string{id})[0]) {
		success = 1
	}
	ch <- prometheus.MustNewConstMetric(probeSuccessDesc, prometheus.GaugeValue, success)
	ch <- prometheus.MustNewConstMetric(probeDurationDesc, prometheus.GaugeValue, time.Since(start).Seconds())
}

func (c *Collector) emitTask(ch chan<- prometheus.Metric, id string, t *metastudio.Task) {
	for _, s := range []struct {
		desc  *prometheus.Desc
		value func() (float64, bool)
	}{
		{itemsDesc, t.TotalCount.Number},
		{succeededDesc, t.SuccessCount.Number},
		{failedDesc, t.FailureCount.Number},
		{beginDesc, t.BeginTime.Seconds},
		{endDesc, t.EndTime.Seconds},
	} {
		if v, ok := s.value(); ok {
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, v, id)
		}
	}
	if t.TaskStatus.Set && t.TaskStatus.Text != "" {
		status := t.TaskStatus.Text
		if name, ok := c.cfg.StatusNames[status]; ok {
			status = name
		}
		emit(ch, statusDesc, 1, id, status)
	}
	emit(ch, infoDesc, 1, id, t.TaskName.Text, t.Resource.Text, t.TaskType.Text, t.Operator.Text, t.UserID.Text)
}

// emit sends a series whose label values come from the API. JSON decoding already
// guarantees valid UTF-8; should a value still be refused, the series is dropped rather
// than the scrape failed or the process panicking.
func emit(ch chan<- prometheus.Metric, desc *prometheus.Desc, v float64, labels ...string) {
	if m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, labels...); err == nil {
		ch <- m
	}
}

// track logs a task's failure at warn when it starts failing or its reason changes, at
// debug otherwise, and its recovery at info.
func (c *Collector) track(id string, err error) {
	c.mu.Lock()
	previous, wasFailing := c.failing[id]
	if err == nil {
		delete(c.failing, id)
	}
	reason := ""
	if err != nil {
		reason = Reason(err)
		c.failing[id] = reason
	}
	c.mu.Unlock()

	switch {
	case err == nil && wasFailing:
		level.Info(c.logger).Log("msg", "Task is scraped again", "task_id", id)
	case err == nil:
	case reason == reasonAuthBackoff: // the guard logged the cause once
		level.Debug(c.logger).Log(append([]any{"msg", "Task not fetched", "task_id", id}, errorKeys(err)...)...)
	case !wasFailing || previous != reason:
		level.Warn(c.logger).Log(append([]any{"msg", "Task scrape failed", "task_id", id}, errorKeys(err)...)...)
	default:
		level.Debug(c.logger).Log(append([]any{"msg", "Task scrape still failing", "task_id", id}, errorKeys(err)...)...)
	}
}

const reasonAuthBackoff = "auth_backoff"

// Reason is a short word for why a fetch failed, stable enough to compare scrapes.
func Reason(err error) string {
	if errors.Is(err, ErrAuthBackoff) {
		return reasonAuthBackoff
	}
	if errors.Is(err, ErrRateBudget) {
		return "rate_budget"
	}
	var apiErr *metastudio.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Reason()
	}
	return "error"
}

func errorKeys(err error) []any {
	keys := []any{"error_code", Reason(err)}
	var apiErr *metastudio.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode != 0 {
		keys = append(keys, "status", apiErr.StatusCode)
	}
	if errors.As(err, &apiErr) && apiErr.RequestID != "" {
		keys = append(keys, "request_id", apiErr.RequestID)
	}
	return append(keys, "err", err)
}

// ScrapeTimeout is the deadline of one scrape: scrape.timeout, lowered to Prometheus'
// X-Prometheus-Scrape-Timeout-Seconds minus half a second when that header is lower.
func ScrapeTimeout(r *http.Request, max time.Duration) time.Duration {
	header := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if header == "" {
		return max
	}
	seconds, err := strconv.ParseFloat(header, 64)
	if err != nil || seconds <= 0 || math.IsNaN(seconds) || math.IsInf(seconds, 0) || seconds >= max.Seconds() {
		return max // also before converting: a huge value would overflow the duration
	}
	t := time.Duration(seconds * float64(time.Second))
	if t > timeoutOffset {
		t -= timeoutOffset
	}
	return min(t, max)
}

// Handler serves /metrics: each request scrapes under its own deadline, then serves the
// scrape's series with the process-wide ones of global from a fresh registry, in one pass.
// The scrape goes first, so the API counters served with it include its calls. current
// returns the Collector of the running config.
func Handler(current func() *Collector, global *Set, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := current()
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r, c.cfg.Scrape.Timeout))
		defer cancel()
		ch := make(chan prometheus.Metric, 1024)
		go func() {
			c.Collect(ctx, ch)
			close(ch)
		}()
		var series replay
		for m := range ch {
			series = append(series, m)
		}
		reg := prometheus.NewRegistry()
		for _, c := range []prometheus.Collector{series, global} {
			if err := reg.Register(c); err != nil {
				level.Error(logger).Log("msg", "Registering the series of a scrape", "err", err)
			}
		}
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog:      errorLogger{logger},
			ErrorHandling: promhttp.ContinueOnError,
		}).ServeHTTP(w, r)
	})
}

// probeCollector binds one probe to the prometheus.Collector interface.
type probeCollector struct {
	ctx context.Context
	c   *Collector
	id  string
}

func (p probeCollector) Describe(chan<- *prometheus.Desc) {}

func (p probeCollector) Collect(ch chan<- prometheus.Metric) { p.c.Probe(p.ctx, p.id, ch) }

// ProbeHandler serves /probe?task=ID, blackbox style: one task's series in a registry of
// its own, without the exporter-wide metrics. A missing, malformed or refused id is a 400
// and costs no API call; an API failure is a 200 with metastudio_probe_success 0.
func ProbeHandler(current func() *Collector, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := current()
		id := r.URL.Query().Get("task")
		switch {
		case id == "":
			http.Error(w, "missing task parameter: use /probe?task=<task id>", http.StatusBadRequest)
			return
		case !config.ValidID(id):
			http.Error(w, "the task parameter is not a task id: want 1 to 64 of A-Z a-z 0-9 - _", http.StatusBadRequest)
			return
		case !c.cfg.Probe.AllowUnlisted && !c.Listed(id):
			http.Error(w, "the task is neither configured nor discovered; set probe.allow_unlisted: true to probe any task",
				http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r, c.cfg.Scrape.Timeout))
		defer cancel()
		reg := prometheus.NewRegistry()
		reg.MustRegister(probeCollector{ctx: ctx, c: c, id: id})
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errorLogger{logger}, ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
	})
}

// SDHandler serves /sd: Prometheus http_sd_configs JSON with one target per task of this
// shard. Only meta labels: a task_id target label would clash with /probe's own.
func SDHandler(current func() *Collector) http.Handler {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		groups := []group{}
		for _, t := range current().Targets(false) {
			groups = append(groups, group{Targets: []string{t.ID}, Labels: map[string]string{"__meta_metastudio_resource": t.Resource}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	})
}

// errorLogger adapts go-kit's logger to promhttp's error log.
type errorLogger struct{ logger log.Logger }

func (l errorLogger) Println(v ...any) {
	level.Error(l.logger).Log("msg", "Serving metrics", "err", v)
}
