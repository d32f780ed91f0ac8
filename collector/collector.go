// Package collector turns MetaStudio tasks into Prometheus metrics: what one scrape
// fetches, how many calls run at once, under which deadline, and the series it emits.
package collector

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// timeoutOffset leaves Prometheus' scrape timeout some room for encoding and transfer.
const timeoutOffset = 500 * time.Millisecond

// Collector serves the tasks of one config's projects from the process-wide Refresher:
// the configured ones and those discovery lists. It makes no API call itself. One
// Collector lives as long as its config; the Refresher and Discovery outlive reloads.
type Collector struct {
	cfg       *config.Config
	projects  []Project
	byName    map[string]*Project
	refresher *refresh.Refresher
	shard     Shard
	logger    log.Logger

	mu      sync.Mutex
	targets targetCache
}

// Project is one project of the config as a Collector serves it.
type Project struct {
	*config.Project
	Discovery *Discovery // nil without discovery
	// Unavailable, when set, is the error of every task of the project: it has no API
	// client yet, and the Collector asks the refresher for none of its tasks.
	Unavailable error
}

// targetCache holds the targets of one discovery list and second (the lookback moves).
type targetCache struct {
	version uint64
	second  int64
	all     []Target
	set     map[refresh.Key]bool
}

// New returns a Collector for cfg's projects that exports the tasks of shard.
func New(cfg *config.Config, projects []Project, refresher *refresh.Refresher, shard Shard, logger log.Logger) *Collector {
	c := &Collector{cfg: cfg, projects: projects, byName: map[string]*Project{}, refresher: refresher, shard: shard, logger: logger}
	for i := range c.projects {
		c.byName[c.projects[i].Name] = &c.projects[i]
	}
	return c
}

// Projects are the names of the projects served, in the config's order.
func (c *Collector) Projects() []string {
	names := make([]string, len(c.projects))
	for i, p := range c.projects {
		names[i] = p.Name
	}
	return names
}

// Config is the config this Collector scrapes with.
func (c *Collector) Config() *config.Config { return c.cfg }

// Shard selects the tasks one replica of several exports, without coordination: those
// whose id hashes (FNV-1a 64) to Index modulo Count. The tasks of all projects are split
// together, by their ids alone: a task id names one task in the whole cloud, and adding a
// project moves no other project's task to another replica.
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
	project string
	id      string
	vals    *values       // nil when err is set
	age     time.Duration // how old the values are; 0 for a call made for this scrape
	err     error         // set when the scrape has no values to show
}

// Target is a watched task, as /sd lists it.
type Target struct {
	Project, ID, Resource string
}

// all returns every watched task of every shard and their set, computed once per
// discovery lists and second.
func (c *Collector) all() ([]Target, map[refresh.Key]bool) {
	var version uint64
	for _, p := range c.projects {
		if p.Discovery != nil {
			version += p.Discovery.listVersion()
		}
	}
	second := c.refresher.Now().Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.targets.set != nil && c.targets.version == version && c.targets.second == second {
		return c.targets.all, c.targets.set
	}
	var all []Target
	set := map[refresh.Key]bool{}
	for _, p := range c.projects {
		add := func(id, resource string) {
			if k := taskKey(p.Name, id); !set[k] {
				set[k] = true
				all = append(all, Target{Project: p.Name, ID: id, Resource: resource})
			}
		}
		for _, id := range p.Tasks {
			resource := ""
			if v, ok := c.refresher.Last(taskKey(p.Name, id)); ok {
				resource = v.(*values).label("resource")
			}
			add(id, resource)
		}
		if p.Discovery != nil {
			for _, t := range p.Discovery.Tasks() {
				add(t.ID, t.Resource)
			}
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

// Watched returns the keys of this shard's targets of project, or of every project for "".
func (c *Collector) Watched(project string) []refresh.Key {
	targets := c.Targets(false)
	keys := make([]refresh.Key, 0, len(targets))
	for _, t := range targets {
		if project == "" || t.Project == project {
			keys = append(keys, taskKey(t.Project, t.ID))
		}
	}
	return keys
}

// policy is what this config says about freshness.
func (c *Collector) policy(unlisted bool) refresh.Policy {
	return refresh.Policy{FinishedTTL: c.cfg.Cache.FinishedTTL, MinRefresh: c.cfg.Scrape.MinRefreshInterval, Unlisted: unlisted}
}

// scrape gets keys from the refresher for a scrape that ends with ctx. The tasks of a
// project without a client get its error, with no call made.
func (c *Collector) scrape(ctx context.Context, keys []refresh.Key) []result {
	out := make([]result, len(keys))
	ask := make([]refresh.Key, 0, len(keys))
	asked := make([]int, 0, len(keys)) // where each answer goes in out
	var discovered map[*Discovery][]string
	var p *Project
	for i, k := range keys {
		if p == nil || p.Name != k.Project { // keys come grouped by project: one lookup each
			p = c.byName[k.Project]
		}
		if p == nil || p.Unavailable != nil {
			out[i] = result{project: k.Project, id: k.ID, err: c.unavailable(k.Project)}
			continue
		}
		ask, asked = append(ask, k), append(asked, i)
		if p.Discovery != nil {
			if discovered == nil {
				discovered = map[*Discovery][]string{}
			}
			discovered[p.Discovery] = append(discovered[p.Discovery], k.ID)
		}
	}
	policy := c.policy(false)
	if len(discovered) > 0 {
		// Running discovered tasks may be answered by one listing of their project.
		policy.Since, policy.Start = c.refresher.Mark(), c.refresher.Now()
		for d, ids := range discovered {
			d.Freshen(ctx, policy.Since, ids, policy)
		}
	}
	for i, r := range c.refresher.Get(ctx, ask, policy) {
		out[asked[i]] = resultOf(r)
	}
	return out
}

// unavailable is the error of the tasks of project when it has no client, else nil.
func (c *Collector) unavailable(project string) error {
	p := c.byName[project]
	if p == nil {
		return fmt.Errorf("no project named %q is configured", project)
	}
	return p.Unavailable
}

func resultOf(r refresh.Result) result {
	v, _ := r.Value.(*values)
	err := r.Err
	if err == refresh.ErrNoAnswerYet {
		err = errNoAnswerYet
	}
	return result{project: r.Key.Project, id: r.Key.ID, vals: v, age: r.Age, err: err}
}

// errNoAnswerYet is the error of a task whose ShowTask was still in flight at the
// scrape's deadline, with nothing known to serve instead.
var errNoAnswerYet = &metastudio.APIError{Operation: metastudio.OpShowTask, Err: refresh.ErrNoAnswerYet}

// Collect runs one scrape of this shard's tasks under ctx and sends every series to ch.
func (c *Collector) Collect(ctx context.Context, ch chan<- prometheus.Metric) {
	results, duration := c.run(ctx, "")
	for _, r := range results {
		c.emitValues(ch, r)
	}
	ch <- duration
}

// run scrapes this shard's tasks of project (every project for "") under ctx, logs their
// failures, and returns the results and the scrape_duration_seconds series. The table is
// pruned by the refresher's housekeeping (SetWatched), not on the scrape path.
func (c *Collector) run(ctx context.Context, project string) ([]result, prometheus.Metric) {
	start := time.Now()
	results := c.scrape(ctx, c.Watched(project))
	for _, r := range results {
		c.track(r.project, r.id, r.err)
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
			emit(ch, f, x, r.project, r.id)
		}
	}
	if r.err != nil {
		return false
	}
	c.emitTask(ch, r.project, r.id, r.vals)
	return true
}

// Listed reports whether the task id of project is configured or discovered (in any
// shard): what /probe may fetch unless probe.allow_unlisted is set.
func (c *Collector) Listed(project, id string) bool {
	_, set := c.all()
	if set[taskKey(project, id)] {
		return true
	}
	p := c.byName[project]
	return p != nil && p.Discovery != nil && p.Discovery.Storing(id)
}

// Listing returns the projects that configure or discover the task id.
func (c *Collector) Listing(id string) []string {
	var names []string
	for _, p := range c.projects {
		if c.Listed(p.Name, id) {
			names = append(names, p.Name)
		}
	}
	return names
}

// Probe gets one task of project from the refresher under ctx, like a scrape, and sends
// its series with probe_success and probe_duration_seconds.
func (c *Collector) Probe(ctx context.Context, project, id string, ch chan<- prometheus.Metric) {
	r, probe := c.probe(ctx, project, id)
	c.emitValues(ch, r)
	for _, m := range probe {
		ch <- m
	}
}

// probe gets one task for a /probe and logs how it fared. It returns the result and the
// probe_success and probe_duration_seconds series.
func (c *Collector) probe(ctx context.Context, project, id string) (result, replay) {
	start := time.Now()
	r := result{project: project, id: id, err: c.unavailable(project)}
	if r.err == nil {
		r = resultOf(c.refresher.Get(ctx, []refresh.Key{taskKey(project, id)}, c.policy(!c.Listed(project, id)))[0])
	}
	c.track(r.project, r.id, r.err)
	success := 0.0
	if r.err == nil {
		success = 1
	}
	return r, replay{
		prometheus.MustNewConstMetric(probeSuccessDesc, prometheus.GaugeValue, success),
		prometheus.MustNewConstMetric(probeDurationDesc, prometheus.GaugeValue, time.Since(start).Seconds()),
	}
}

// emitTask sends the series of a task's kept values, its project's status_names applied.
func (c *Collector) emitTask(ch chan<- prometheus.Metric, project, id string, v *values) {
	statusNames := c.statusNames(project)
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
		labels = append(labels[:0], project, id)
		for i, l := range f.labels {
			s := v.piece(f.labelPieces[i])
			if l.statusNames {
				s = named(s, statusNames)
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

// statusNames is the status_names of project.
func (c *Collector) statusNames(project string) map[string]string {
	if p := c.byName[project]; p != nil {
		return p.StatusNames
	}
	return nil
}

// track logs a task's failure at warn when it starts failing or its reason changes, at
// debug otherwise, and its recovery at info.
func (c *Collector) track(project, id string, err error) {
	task := []any{"project", project, "task_id", id}
	if errors.Is(err, refresh.ErrRateBudget) || errors.Is(err, refresh.ErrNoAnswerYet) {
		// Not the task failing: its turn (or its call's answer) comes after this scrape.
		level.Debug(c.logger).Log(slices.Concat([]any{"msg", "Task not answered yet"}, task, errorKeys(err))...)
		return
	}
	reason := ""
	if err != nil {
		reason = Reason(err)
	}
	previous := c.refresher.Note(taskKey(project, id), reason)
	wasFailing := previous != ""

	switch {
	case err == nil && wasFailing:
		level.Info(c.logger).Log(slices.Concat([]any{"msg", "Task is scraped again"}, task)...)
	case err == nil:
	case reason == reasonAuthBackoff: // the guard logged the cause once
		level.Debug(c.logger).Log(slices.Concat([]any{"msg", "Task not fetched"}, task, errorKeys(err))...)
	case !wasFailing || previous != reason:
		level.Warn(c.logger).Log(slices.Concat([]any{"msg", "Task scrape failed"}, task, errorKeys(err))...)
	default:
		level.Debug(c.logger).Log(slices.Concat([]any{"msg", "Task scrape still failing"}, task, errorKeys(err))...)
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
