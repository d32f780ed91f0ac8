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
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// timeoutOffset leaves Prometheus' scrape timeout some room for encoding and transfer.
const timeoutOffset = 500 * time.Millisecond

// Collector serves the tasks of one config from the process-wide Refresher: the
// configured ones and those discovery lists. It makes no API call itself. One Collector
// lives as long as its config; the Refresher and Discovery outlive reloads.
type Collector struct {
	cfg       *config.Config
	refresher *refresh.Refresher
	discovery *Discovery // nil without discovery
	shard     Shard
	logger    log.Logger

	mu      sync.Mutex
	targets targetCache

	// unavailable, when set, is the error of every task: there is no API client yet, and
	// the Collector asks the refresher for nothing.
	unavailable error
}

// targetCache holds the targets of one discovery list and second (the lookback moves).
type targetCache struct {
	version uint64
	second  int64
	all     []Target
	set     map[string]bool
}

// New returns a Collector for cfg that exports the tasks of shard. discovery may be nil.
func New(cfg *config.Config, refresher *refresh.Refresher, discovery *Discovery, shard Shard, logger log.Logger) *Collector {
	return &Collector{cfg: cfg, refresher: refresher, discovery: discovery, shard: shard, logger: logger}
}

// SetUnavailable makes err the error of every task, with no call made: the exporter has
// no API client yet. Call it before the Collector serves.
func (c *Collector) SetUnavailable(err error) { c.unavailable = err }

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
	vals *values       // nil when err is set
	age  time.Duration // how old the values are; 0 for a call made for this scrape
	err  error         // set when the scrape has no values to show
}

// Target is a watched task, as /sd lists it.
type Target struct {
	ID, Resource string
}

// all returns every watched task of every shard and their set, computed once per
// discovery list and second.
func (c *Collector) all() ([]Target, map[string]bool) {
	var version uint64
	if c.discovery != nil {
		version = c.discovery.listVersion()
	}
	second := c.refresher.Now().Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.targets.set != nil && c.targets.version == version && c.targets.second == second {
		return c.targets.all, c.targets.set
	}
	var all []Target
	set := map[string]bool{}
	add := func(id, resource string) {
		if !set[id] {
			set[id] = true
			all = append(all, Target{ID: id, Resource: resource})
		}
	}
	for _, id := range c.cfg.Tasks {
		resource := ""
		if v, ok := c.refresher.Last(taskKey(id)); ok {
			resource = v.(*values).label("resource")
		}
		add(id, resource)
	}
	if c.discovery != nil {
		for _, t := range c.discovery.Tasks() {
			add(t.ID, t.Resource)
		}
	}
	c.targets = targetCache{version: version, second: second, all: all, set: set}
	return all, set
}

// Targets returns the tasks this config watches: the configured ones, then the discovered
// ones that began within the lookback, newest first, without repeats. all includes the
// tasks of other shards.
func (c *Collector) Targets(all bool) []Target {
	targets, _ := c.all()
	if all || c.shard.Count <= 1 {
		return targets
	}
	var out []Target
	for _, t := range targets {
		if c.shard.Owns(t.ID) {
			out = append(out, t)
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

// policy is what this config says about freshness.
func (c *Collector) policy(unlisted bool) refresh.Policy {
	return refresh.Policy{FinishedTTL: c.cfg.Cache.FinishedTTL, MinRefresh: c.cfg.Scrape.MinRefreshInterval, Unlisted: unlisted}
}

// scrape gets ids from the refresher for a scrape that ends with ctx.
func (c *Collector) scrape(ctx context.Context, ids []string) []result {
	if c.unavailable != nil {
		out := make([]result, len(ids))
		for i, id := range ids {
			out[i] = result{id: id, err: c.unavailable}
		}
		return out
	}
	p := c.policy(false)
	if c.discovery != nil { // running discovered tasks may be answered by one listing
		p.Since, p.Start = c.refresher.Mark(), c.refresher.Now()
		c.discovery.Freshen(ctx, p.Since, ids, p)
	}
	keys := make([]refresh.Key, len(ids))
	for i, id := range ids {
		keys[i] = taskKey(id)
	}
	return results(c.refresher.Get(ctx, keys, p))
}

// results are the refresher's results as tasks.
func results(rs []refresh.Result) []result {
	out := make([]result, len(rs))
	for i, r := range rs {
		out[i] = resultOf(r)
	}
	return out
}

func resultOf(r refresh.Result) result {
	v, _ := r.Value.(*values)
	err := r.Err
	if err == refresh.ErrNoAnswerYet {
		err = errNoAnswerYet
	}
	return result{id: r.Key.ID, vals: v, age: r.Age, err: err}
}

// errNoAnswerYet is the error of a task whose ShowTask was still in flight at the
// scrape's deadline, with nothing known to serve instead.
var errNoAnswerYet = &metastudio.APIError{Operation: metastudio.OpShowTask, Err: refresh.ErrNoAnswerYet}

// Collect runs one scrape of this shard's tasks under ctx and sends every series to ch.
func (c *Collector) Collect(ctx context.Context, ch chan<- prometheus.Metric) {
	results, duration := c.run(ctx)
	for _, r := range results {
		c.emitValues(ch, r)
	}
	ch <- duration
}

// run scrapes this shard's tasks under ctx, logs their failures, and returns the results
// and the scrape_duration_seconds series. The table is pruned by the refresher's
// housekeeping (SetWatched), not on the scrape path.
func (c *Collector) run(ctx context.Context) ([]result, prometheus.Metric) {
	start := time.Now()
	results := c.scrape(ctx, c.Watched())
	for _, r := range results {
		c.track(r.id, r.err)
	}
	return results, prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, time.Since(start).Seconds())
}

// emitValues sends a task's series (those of its values, or scrape_success 0 alone)
// through client_golang: the path of protobuf answers, and of the tests that compare it
// with the text that writeExposition writes.
func (c *Collector) emitValues(ch chan<- prometheus.Metric, r result) bool {
	for _, f := range families.all {
		if f.scrape == nil {
			continue
		}
		if x, ok := f.scrape(r); ok {
			emit(ch, f, x, r.id)
		}
	}
	if r.err != nil {
		return false
	}
	c.emitTask(ch, r.id, r.vals)
	return true
}

// Listed reports whether id is configured or discovered (in any shard): what /probe may
// fetch unless probe.allow_unlisted is set.
func (c *Collector) Listed(id string) bool {
	_, set := c.all()
	return set[id] || (c.discovery != nil && c.discovery.Storing(id))
}

// Probe gets one task from the refresher under ctx, like a scrape, and sends its series
// with probe_success and probe_duration_seconds.
func (c *Collector) Probe(ctx context.Context, id string, ch chan<- prometheus.Metric) {
	r, probe := c.probe(ctx, id)
	c.emitValues(ch, r)
	for _, m := range probe {
		ch <- m
	}
}

// probe gets one task for a /probe and logs how it fared. It returns the result and the
// probe_success and probe_duration_seconds series.
func (c *Collector) probe(ctx context.Context, id string) (result, replay) {
	start := time.Now()
	r := result{id: id, err: c.unavailable}
	if c.unavailable == nil {
		r = resultOf(c.refresher.Get(ctx, []refresh.Key{taskKey(id)}, c.policy(!c.Listed(id)))[0])
	}
	c.track(r.id, r.err)
	success := 0.0
	if r.err == nil {
		success = 1
	}
	return r, replay{
		prometheus.MustNewConstMetric(probeSuccessDesc, prometheus.GaugeValue, success),
		prometheus.MustNewConstMetric(probeDurationDesc, prometheus.GaugeValue, time.Since(start).Seconds()),
	}
}

// emitTask sends the series of a task's kept values, status_names applied.
func (c *Collector) emitTask(ch chan<- prometheus.Metric, id string, v *values) {
	labels := make([]string, 0, families.maxLabels) // NewConstMetric keeps none of it
	for _, f := range families.all {
		if f.value == nil {
			continue
		}
		number := v.piece(f.valuePiece)
		if number == "" {
			continue // the series is left out
		}
		x, err := strconv.ParseFloat(number, 64)
		if err != nil {
			continue
		}
		labels = append(labels[:0], id)
		for i, l := range f.labels {
			s := v.piece(f.labelPieces[i])
			if l.statusNames {
				s = named(s, c.cfg.StatusNames)
			}
			labels = append(labels, s)
		}
		emit(ch, f, x, labels...)
	}
}

// emit sends a series of f. JSON decoding already guarantees valid UTF-8; should a
// label value still be refused, the series is dropped rather than the scrape failed or
// the process panicking.
func emit(ch chan<- prometheus.Metric, f *family, v float64, labels ...string) {
	if m, err := prometheus.NewConstMetric(f.desc, f.kind, v, labels...); err == nil {
		ch <- m
	}
}

// track logs a task's failure at warn when it starts failing or its reason changes, at
// debug otherwise, and its recovery at info.
func (c *Collector) track(id string, err error) {
	if errors.Is(err, refresh.ErrRateBudget) || errors.Is(err, refresh.ErrNoAnswerYet) {
		// Not the task failing: its turn (or its call's answer) comes after this scrape.
		level.Debug(c.logger).Log(append([]any{"msg", "Task not answered yet", "task_id", id}, errorKeys(err)...)...)
		return
	}
	reason := ""
	if err != nil {
		reason = Reason(err)
	}
	previous := c.refresher.Note(taskKey(id), reason)
	wasFailing := previous != ""

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
	if errors.Is(err, refresh.ErrAuthBackoff) {
		return reasonAuthBackoff
	}
	if errors.Is(err, refresh.ErrRateBudget) {
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

// ScrapeTimeout is the deadline of one scrape: Prometheus' X-Prometheus-Scrape-Timeout-
// Seconds minus half a second (for encoding and transfer), at most scrape.timeout.
func ScrapeTimeout(r *http.Request, max time.Duration) time.Duration {
	header := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if header == "" {
		return max
	}
	seconds, err := strconv.ParseFloat(header, 64)
	if err != nil || seconds <= 0 || math.IsNaN(seconds) || math.IsInf(seconds, 0) || seconds > max.Seconds()+timeoutOffset.Seconds() {
		return max // also before converting: a huge value would overflow the duration
	}
	t := time.Duration(seconds * float64(time.Second))
	if t > timeoutOffset {
		t -= timeoutOffset
	}
	return min(t, max)
}

// Handler serves /metrics: each request scrapes under its own deadline, then answers with
// the tasks' series (written from their kept values, render.go) and the process-wide ones
// of global, gathered after the scrape so that the API counters include its calls. A
// client that asks for protobuf (or filters with name[]) is served through promhttp from
// the same results. current returns the Collector of the running config.
func Handler(current func() *Collector, global *Set, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := current()
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r, c.cfg.Scrape.Timeout))
		defer cancel()
		format, text := textFormat(r)
		results, duration := c.run(ctx)
		if !text {
			series := make(replay, 0, 9*len(results)+1)
			ch := make(chan prometheus.Metric, 1024)
			go func() {
				for _, r := range results {
					c.emitValues(ch, r)
				}
				close(ch)
			}()
			for m := range ch {
				series = append(series, m)
			}
			serveRegistry(w, r, logger, append(series, duration), global)
			return
		}
		writeExposition(w, r, format, results, c.cfg.StatusNames, gatherExtra(logger, replay{duration}, global), logger)
	})
}

// serveRegistry answers through promhttp from a fresh registry of cs.
func serveRegistry(w http.ResponseWriter, r *http.Request, logger log.Logger, cs ...prometheus.Collector) {
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			level.Error(logger).Log("msg", "Registering the series of a scrape", "err", err)
		}
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      errorLogger{logger},
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

// ProbeHandler serves /probe?task=ID, blackbox style: one task's series (written as on
// /metrics) with the probe's own, without the exporter-wide metrics. A missing, malformed
// or refused id is a 400 and costs no API call; an API failure is a 200 with
// metastudio_probe_success 0.
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
		format, text := textFormat(r)
		res, probe := c.probe(ctx, id)
		if !text {
			series := make(replay, 0, 12)
			ch := make(chan prometheus.Metric, 16)
			c.emitValues(ch, res)
			close(ch)
			for m := range ch {
				series = append(series, m)
			}
			serveRegistry(w, r, logger, append(series, probe...))
			return
		}
		writeExposition(w, r, format, []result{res}, c.cfg.StatusNames, gatherExtra(logger, probe), logger)
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
