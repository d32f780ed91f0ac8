package collector

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// pageSize is the limit asked of SearchTask; the API's own default is 10.
const pageSize = 100

var (
	discoveryTasksDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "discovery", "tasks"),
		"Tasks that discovery's last good SearchTask listing found (begun within discovery.lookback, at most discovery.max_tasks).", nil, nil)
	discoveryLastSuccessDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "discovery", "last_success_timestamp_seconds"),
		"When discovery last listed the tasks successfully, in seconds since the epoch; 0 before the first success.", nil, nil)
)

// Discovered is a task that SearchTask listed.
type Discovered struct {
	ID       string
	Resource string
	Begin    time.Time // zero when the listing gave none
}

// Discovery lists the tasks that began within the lookback with SearchTask, in the
// background every refresh_interval, through the refresher (its guard and rate; each page
// with its own timeout). Listed values feed the refresher's table, so a finished task found
// by discovery needs no ShowTask call; a listing never overwrites a newer ShowTask answer.
// A failed refresh keeps the last good list.
type Discovery struct {
	refresher *Refresher
	logger    log.Logger

	mu          sync.Mutex
	cfg         config.Discovery
	tasks       []Discovered
	lastSuccess time.Time
	version     uint64 // changes with every new list
}

// NewDiscovery returns a Discovery for cfg; Run starts it.
func NewDiscovery(cfg config.Discovery, refresher *Refresher, logger log.Logger) *Discovery {
	return &Discovery{cfg: cfg, refresher: refresher, logger: logger}
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
	for {
		d.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.config().RefreshInterval):
		}
	}
}

// Tasks returns the listed tasks that began within the lookback, newest first.
func (d *Discovery) Tasks() []Discovered {
	d.mu.Lock()
	defer d.mu.Unlock()
	cutoff := d.refresher.now().Add(-d.cfg.Lookback)
	out := make([]Discovered, 0, len(d.tasks))
	for _, t := range d.tasks {
		if t.Begin.IsZero() || !t.Begin.Before(cutoff) {
			out = append(out, t)
		}
	}
	return out
}

// Refresh lists the tasks once. It pages with offset and limit, follows count, and stops
// at a page that brings nothing new, so that a server that ignores offset, or whose count
// lies, cannot make it loop.
func (d *Discovery) Refresh(ctx context.Context) {
	cfg := d.config()
	now := d.refresher.now()
	params := metastudio.SearchParams{
		Resources: cfg.Resources, BusinessID: cfg.BusinessID,
		BeginTime: now.Add(-cfg.Lookback).UnixMilli(), Limit: pageSize,
	}
	seen := map[string]bool{}
	var found []Discovered
	for {
		page, err := d.refresher.Search(ctx, params)
		if err != nil {
			level.Warn(d.logger).Log(append([]any{"msg", "Discovery failed; keeping the last list", "offset", params.Offset}, errorKeys(err)...)...)
			return
		}
		fresh := 0
		var listed []*metastudio.Task
		for i := range page.Data {
			t := &page.Data[i]
			id := t.TaskID.Text
			if !config.ValidID(id) || seen[id] {
				continue
			}
			seen[id] = true
			fresh++
			begin := time.Time{}
			if s, ok := t.BeginTime.Seconds(); ok {
				begin = time.UnixMilli(int64(s * 1000))
			}
			found = append(found, Discovered{ID: id, Resource: t.Resource.Text, Begin: begin})
			listed = append(listed, t)
		}
		d.refresher.list(listed, now)
		params.Offset += len(page.Data)
		count, ok := page.Count.Number()
		if fresh == 0 || len(page.Data) == 0 || (ok && float64(params.Offset) >= count) {
			break
		}
	}
	slices.SortStableFunc(found, func(a, b Discovered) int { return b.Begin.Compare(a.Begin) })
	if len(found) > cfg.MaxTasks {
		level.Warn(d.logger).Log("msg", "Discovery found more tasks than discovery.max_tasks; keeping the newest",
			"found", len(found), "max_tasks", cfg.MaxTasks)
		found = found[:cfg.MaxTasks]
	}
	d.mu.Lock()
	d.tasks, d.lastSuccess = found, d.refresher.now()
	d.version++
	d.mu.Unlock()
	level.Debug(d.logger).Log("msg", "Discovery listed tasks", "tasks", len(found))
}

// listVersion changes whenever the list does.
func (d *Discovery) listVersion() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Describe implements prometheus.Collector.
func (d *Discovery) Describe(ch chan<- *prometheus.Desc) {
	ch <- discoveryTasksDesc
	ch <- discoveryLastSuccessDesc
}

// Collect implements prometheus.Collector.
func (d *Discovery) Collect(ch chan<- prometheus.Metric) {
	n := len(d.Tasks())
	d.mu.Lock()
	last := d.lastSuccess
	d.mu.Unlock()
	ts := 0.0
	if !last.IsZero() {
		ts = float64(last.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(discoveryTasksDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(discoveryLastSuccessDesc, prometheus.GaugeValue, ts)
}
