// Package collector turns MetaStudio tasks into Prometheus metrics: what one scrape
// fetches, how many calls run at once, under which deadline, and the series it emits.
package collector

import (
	"context"
	"errors"
	"math"
	"net/http"
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

// TaskFetcher is the part of the MetaStudio client a scrape needs; tests pass a fake.
type TaskFetcher interface {
	ShowTask(ctx context.Context, id string) (*metastudio.Task, error)
}

// timeoutOffset leaves Prometheus' scrape timeout some room for encoding and transfer.
const timeoutOffset = 500 * time.Millisecond

// Collector fetches the configured tasks. One Collector lives as long as its config; it
// remembers which tasks were failing so that a failure is logged once, not every scrape.
type Collector struct {
	cfg    *config.Config
	api    TaskFetcher
	guard  *Guard
	logger log.Logger

	mu      sync.Mutex
	failing map[string]string // task id -> reason of its last failure
}

// New returns a Collector for cfg that fetches through api, each call cleared by guard.
func New(cfg *config.Config, api TaskFetcher, guard *Guard, logger log.Logger) *Collector {
	return &Collector{cfg: cfg, api: api, guard: guard, logger: logger, failing: map[string]string{}}
}

// result is what one scrape learned of one task.
type result struct {
	task *metastudio.Task
	err  error
}

// scrape fetches every configured task, at most scrape.concurrency at a time, until ctx
// ends. A task whose turn comes after the deadline, or during an authentication
// cool-down, is not called at all.
func (c *Collector) scrape(ctx context.Context) []result {
	results := make([]result, len(c.cfg.Tasks))
	var g errgroup.Group
	g.SetLimit(c.cfg.Scrape.Concurrency)
	for i, id := range c.cfg.Tasks {
		g.Go(func() error {
			results[i].task, results[i].err = c.fetch(ctx, id)
			return nil
		})
	}
	_ = g.Wait() // the goroutines never return an error: failures are per task
	return results
}

// fetch makes one ShowTask call once the guard allows it.
func (c *Collector) fetch(ctx context.Context, id string) (*metastudio.Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, &metastudio.APIError{Operation: metastudio.OpShowTask, Err: err}
	}
	done, err := c.guard.Acquire(ctx)
	if err != nil {
		return nil, &metastudio.APIError{Operation: metastudio.OpShowTask, Err: err}
	}
	task, err := c.api.ShowTask(ctx, id)
	done(err)
	return task, err
}

// Collect runs one scrape under ctx and sends every series to ch.
func (c *Collector) Collect(ctx context.Context, ch chan<- prometheus.Metric) {
	start := time.Now()
	results := c.scrape(ctx)
	for i, id := range c.cfg.Tasks {
		r := results[i]
		c.track(id, r.err)
		if r.err != nil {
			ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 0, id)
			continue
		}
		ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 1, id)
		c.emitTask(ch, id, r.task)
	}
	ch <- prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, time.Since(start).Seconds())
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
	if err != nil || seconds <= 0 || math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return max
	}
	t := time.Duration(seconds * float64(time.Second))
	if t > timeoutOffset {
		t -= timeoutOffset
	}
	return min(t, max)
}

// scrapeCollector binds one scrape's context to the prometheus.Collector interface.
type scrapeCollector struct {
	ctx context.Context
	c   *Collector
}

// Describe sends nothing: the series depend on the API's answers, so the collector is
// unchecked.
func (s scrapeCollector) Describe(chan<- *prometheus.Desc) {}

func (s scrapeCollector) Collect(ch chan<- prometheus.Metric) { s.c.Collect(s.ctx, ch) }

var _ prometheus.Collector = scrapeCollector{}

// Handler serves /metrics: each request scrapes under its own deadline into a fresh
// registry and is served together with the process-wide metrics of global. current
// returns the Collector of the running config.
func Handler(current func() *Collector, global prometheus.Gatherer, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := current()
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r, c.cfg.Scrape.Timeout))
		defer cancel()
		reg := prometheus.NewRegistry()
		reg.MustRegister(scrapeCollector{ctx: ctx, c: c})
		// The scrape goes first, so the API counters served with it include its calls.
		promhttp.HandlerFor(prometheus.Gatherers{reg, global}, promhttp.HandlerOpts{
			ErrorLog:      errorLogger{logger},
			ErrorHandling: promhttp.ContinueOnError,
		}).ServeHTTP(w, r)
	})
}

// errorLogger adapts go-kit's logger to promhttp's error log.
type errorLogger struct{ logger log.Logger }

func (l errorLogger) Println(v ...any) {
	level.Error(l.logger).Log("msg", "Serving metrics", "err", v)
}
