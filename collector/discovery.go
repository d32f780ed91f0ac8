package collector

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

var (
	discoveryTasksDesc       = newDesc("discovery", "tasks", "Tasks that discovery's last SearchTask listing found (begun within discovery.lookback, at most discovery.max_tasks), and running tasks found before.")
	discoveryLastSuccessDesc = newDesc("discovery", "last_success_timestamp_seconds", "When discovery last listed the tasks successfully, in seconds since the epoch; 0 before the first success.")
	discoveryMissedDesc      = newDesc("discovery", "missed_tasks", "Tasks that SearchTask counted but no answer returned in the last complete listing: more tasks began in one millisecond than one answer delivers. 0 when the listing was complete; tasks left out by discovery.max_tasks do not count.")
	discoveryCappedDesc      = newDesc("discovery", "capped", "1 if the last listing stopped at discovery.max_tasks with more tasks to list, else 0.")
	discoveryErrorsDesc      = newDesc("discovery", "errors_total", "SearchTask answers that discovery could not use, by reason: call_failed (no answer), no_count, count_below_rows, row_without_id, duplicate_id (a malformed answer).", "reason")
	discoveryPagingDesc      = newDesc("discovery", "paging", "1 for how SearchTask was seen to treat offset and limit: rows (a row offset), pages (a page index) or none (ignored or not to be trusted: windows are narrowed instead); absent until a listing needed more than one answer.", "mode")
)

// Discovered is a task that SearchTask listed.
type Discovered struct {
	ID       string
	Resource string
	Begin    time.Time // zero when the listing gave none
}

// Discovery lists the tasks that began within the lookback with SearchTask, in the
// background every refresh_interval, through the refresher (its queue, guard and rate;
// each call with its own timeout), with the documented time filters only (see lister).
// Listed values feed the refresher's table as fetches: a finished task found by discovery
// needs no ShowTask call, and a scrape that waits for running discovered tasks is answered
// by a listing when that costs fewer calls than ShowTask would (Freshen). A running task
// stays discovered until it ends, even once its begin time falls out of the lookback. A
// listing that failed keeps what was known.
type Discovery struct {
	project   string // the refresher's project of the tasks
	refresher *refresh.Refresher
	logger    log.Logger
	ctx       context.Context // Run's: the life of freshening passes

	mu          sync.Mutex
	cfg         config.Discovery
	tasks       []Discovered
	begins      map[string]time.Time // the tasks' begin times, by id
	storing     map[string]bool      // the tasks the listing in progress has stored so far
	lastSuccess time.Time
	version     uint64 // changes with every new list
	paging      string // what answers proved; "" before any window needed two answers
	missed      int
	capped      bool
	errors      map[string]float64
	pass        *pass // the freshening pass in progress
}

// pass is a freshening listing, shared by the scrapes that wait for it.
type pass struct {
	begun refresh.Mark
	done  chan struct{}
}

// NewDiscovery returns a Discovery of project's tasks for cfg; Run starts it.
func NewDiscovery(project string, cfg config.Discovery, refresher *refresh.Refresher, logger log.Logger) *Discovery {
	return &Discovery{project: project, cfg: cfg, refresher: refresher, logger: logger, ctx: context.Background(), errors: map[string]float64{}}
}

// Configure takes a new discovery section (a reload); the next refresh uses it.
func (d *Discovery) Configure(cfg config.Discovery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg = cfg
}

func (d *Discovery) config() config.Discovery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Run refreshes the list now and then every refresh_interval until ctx ends.
func (d *Discovery) Run(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	for {
		d.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.config().RefreshInterval):
		}
	}
}

// Tasks returns the listed tasks that began within the lookback, and those still running
// that began before it, newest first.
func (d *Discovery) Tasks() []Discovered {
	d.mu.Lock()
	cutoff := d.refresher.Now().Add(-d.cfg.Lookback)
	tasks := d.tasks
	d.mu.Unlock()
	out := make([]Discovered, 0, len(tasks))
	for _, t := range tasks {
		if t.Begin.IsZero() || !t.Begin.Before(cutoff) || d.refresher.Running(taskKey(d.project, t.ID)) {
			out = append(out, t)
		}
	}
	return out
}

// newLister returns a lister for cfg whose answers feed the refresher's table. With
// track, the tasks it stores are Storing until the pass ends.
func (d *Discovery) newLister(cfg config.Discovery, track bool) *lister {
	var sent refresh.Stamp
	d.mu.Lock()
	paging := d.paging
	d.mu.Unlock()
	return &lister{
		search: func(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error) {
			page, stamp, err := d.refresher.Search(ctx, d.project, KindTask, p)
			sent = stamp
			if err != nil {
				var apiErr *metastudio.APIError
				if !errors.As(err, &apiErr) { // a cool-down, or the wait's end
					err = &metastudio.APIError{Operation: metastudio.OpSearchTask, Err: err}
				}
				return nil, err
			}
			return page.(*metastudio.TaskPage), nil
		},
		base:   metastudio.SearchParams{Resources: cfg.Resources, BusinessID: cfg.BusinessID},
		max:    cfg.MaxTasks,
		paging: paging,
		rows: func(tasks []*metastudio.Task) {
			if track { // watched from now on, before the pass ends
				d.mu.Lock()
				if d.storing == nil {
					d.storing = map[string]bool{}
				}
				for _, t := range tasks {
					d.storing[t.TaskID.Text] = true
				}
				d.mu.Unlock()
			}
			keys, vals := make([]refresh.Key, len(tasks)), make([]refresh.Value, len(tasks))
			for i, t := range tasks {
				keys[i], vals[i] = taskKey(d.project, t.TaskID.Text), newValues(t)
			}
			d.refresher.Store(sent, keys, vals)
		},
		seen: map[string]bool{},
	}
}

// learn keeps what a lister found out about paging and counts its error. d.mu is held.
func (d *Discovery) learn(l *lister, err error) {
	if l.paging != "" && l.paging != d.paging {
		level.Info(d.logger).Log("msg", "SearchTask paging detected", "paging", l.paging)
		d.paging = l.paging
	}
	var le *listError
	if errors.As(err, &le) {
		d.errors[le.reason]++
	}
}

// Refresh lists the tasks once: every task that began within the lookback, newest first,
// up to max_tasks. A window that failed ends the pass: the tasks it found are added to the
// previous list, and missed_tasks keeps its previous figure.
func (d *Discovery) Refresh(ctx context.Context) {
	cfg := d.config()
	now := d.refresher.Now()
	l := d.newLister(cfg, true)
	err := l.window(ctx, now.Add(-cfg.Lookback).UnixMilli(), now.UnixMilli())
	found := make([]Discovered, 0, len(l.found))
	known := map[string]bool{}
	for _, t := range l.found {
		found = append(found, discovered(t))
		known[t.TaskID.Text] = true
	}
	// What the listing did not return stays while it runs (its begin time left the
	// lookback, or the listing no longer returns it: ShowTask refreshes it until it ends),
	// and all of it stays when the listing failed.
	d.mu.Lock()
	previous := d.tasks
	d.mu.Unlock()
	for _, t := range previous {
		if !known[t.ID] && (err != nil || d.refresher.Running(taskKey(d.project, t.ID))) {
			found = append(found, t)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.learn(l, err)
	if err != nil {
		level.Warn(d.logger).Log(append([]any{"msg", "Discovery failed; keeping the last list and adding what was found", "found", len(l.found)}, errorKeys(err)...)...)
	} else {
		if l.capped && !d.capped {
			level.Warn(d.logger).Log("msg", "Discovery stopped at discovery.max_tasks; older tasks are not watched", "max_tasks", cfg.MaxTasks)
		}
		if l.missed > 0 && l.missed != d.missed {
			level.Warn(d.logger).Log("msg", "SearchTask counted tasks that no answer returned: more began in one millisecond than one answer delivers", "missed", l.missed)
		}
		d.missed, d.capped, d.lastSuccess = l.missed, l.capped, d.refresher.Now()
	}
	slices.SortStableFunc(found, func(a, b Discovered) int { return b.Begin.Compare(a.Begin) })
	if len(found) > cfg.MaxTasks {
		found = found[:cfg.MaxTasks]
	}
	d.tasks, d.begins, d.storing = found, make(map[string]time.Time, len(found)), nil
	for _, t := range found {
		d.begins[t.ID] = t.Begin
	}
	d.version++
	level.Debug(d.logger).Log("msg", "Discovery listed tasks", "tasks", len(found), "calls", l.calls, "paging", d.paging)
}

// Storing reports whether the listing in progress has stored id: a long pass stores its
// tasks as their answers come, and housekeeping must not drop them before it ends.
func (d *Discovery) Storing(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.storing[id]
}

// discovered is what the list keeps of a listed task.
func discovered(t *metastudio.Task) Discovered {
	begin := time.Time{}
	if ms, ok := t.BeginTime.Number(); ok && ms > 0 {
		begin = time.UnixMilli(int64(ms))
	}
	return Discovered{ID: t.TaskID.Text, Resource: t.Resource.Text, Begin: begin}
}

// Freshen answers the running discovered tasks among ids with a listing sent after since,
// when the tasks that a scrape under p would have to call for outnumber the calls that
// listing their window costs; it waits for that listing at most until ctx ends. The
// listing is shared by every scrape that waits for it, and goes on when they leave.
func (d *Discovery) Freshen(ctx context.Context, since refresh.Mark, ids []string, p refresh.Policy) {
	lo, ok := d.window(ids, p)
	if !ok {
		return
	}
	for {
		d.mu.Lock()
		ps := d.pass
		if ps == nil {
			ps = &pass{begun: d.refresher.Mark(), done: make(chan struct{})}
			d.pass = ps
			go d.runPass(ps, lo)
		}
		d.mu.Unlock()
		select {
		case <-ps.done:
		case <-ctx.Done():
			return
		}
		if ps.begun >= since {
			return
		}
	}
}

// window returns the begin time (epoch ms) of the oldest running discovered task among ids
// that needs a call under p, when listing the window from it to now costs fewer calls
// than calling those tasks.
func (d *Discovery) window(ids []string, p refresh.Policy) (lo int64, ok bool) {
	d.mu.Lock()
	tasks, begins, paging, cfg := d.tasks, d.begins, d.paging, d.cfg
	d.mu.Unlock()
	if len(tasks) == 0 {
		return 0, false
	}
	cutoff := d.refresher.Now().Add(-cfg.Lookback)
	var dated []refresh.Key // discovered tasks within the lookback
	for _, id := range ids {
		if b, found := begins[id]; found && !b.IsZero() && !b.Before(cutoff) {
			dated = append(dated, taskKey(d.project, id))
		}
	}
	stale := d.refresher.StaleRunning(dated, p)
	if len(stale) == 0 {
		return 0, false
	}
	oldest := begins[stale[0].ID]
	for _, k := range stale {
		if b := begins[k.ID]; b.Before(oldest) {
			oldest = b
		}
	}
	inWindow := 0 // the tasks that listing the window returns, as far as the list knows
	for _, t := range tasks {
		if !t.Begin.Before(oldest) {
			inWindow++
		}
	}
	perAnswer := 10
	if paging == pagingRows || paging == pagingPages {
		perAnswer = pageLimit
	}
	calls := (inWindow+perAnswer-1)/perAnswer + 1
	if paging == "" && inWindow > perAnswer {
		calls += 2 // the first listing of a window larger than one answer tells the paging
	}
	return oldest.UnixMilli(), calls < len(stale)
}

// runPass lists the window from lo to now once, for Freshen.
func (d *Discovery) runPass(ps *pass, lo int64) {
	d.mu.Lock()
	ctx, cfg := d.ctx, d.cfg
	d.mu.Unlock()
	l := d.newLister(cfg, false)
	err := l.window(ctx, lo, d.refresher.Now().UnixMilli())
	d.mu.Lock()
	d.learn(l, err)
	d.pass = nil
	d.mu.Unlock()
	close(ps.done)
	if err != nil {
		level.Debug(d.logger).Log(append([]any{"msg", "Listing the running tasks failed; ShowTask answers for them"}, errorKeys(err)...)...)
	}
}

// listVersion changes whenever the list does.
func (d *Discovery) listVersion() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Describe implements prometheus.Collector.
func (d *Discovery) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{discoveryTasksDesc, discoveryLastSuccessDesc, discoveryMissedDesc,
		discoveryCappedDesc, discoveryErrorsDesc, discoveryPagingDesc} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (d *Discovery) Collect(ch chan<- prometheus.Metric) {
	n := len(d.Tasks())
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := 0.0
	if !d.lastSuccess.IsZero() {
		ts = float64(d.lastSuccess.UnixNano()) / 1e9
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	gauge(discoveryTasksDesc, float64(n))
	gauge(discoveryLastSuccessDesc, ts)
	gauge(discoveryMissedDesc, float64(d.missed))
	gauge(discoveryCappedDesc, boolFloat(d.capped))
	for _, reason := range []string{reasonCall, reasonNoCount, reasonCountBelowRows, reasonRowWithoutID, reasonDuplicateID} {
		ch <- prometheus.MustNewConstMetric(discoveryErrorsDesc, prometheus.CounterValue, d.errors[reason], reason)
	}
	if d.paging != "" {
		for _, mode := range pagingModes {
			gauge(discoveryPagingDesc, boolFloat(mode == d.paging), mode)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
