//go:build linux

package bench

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// Shapes of the simulator's tasks.
const (
	// shapeSeeded is the simulator's own mix: finished, running and waiting tasks, numbers
	// and strings, nulls and absent fields. Cold scrapes and the bare GET use it.
	shapeSeeded = "seeded"
	// shapeFinished: every task finished (it has an end_time), so the cache keeps it.
	shapeFinished = "finished"
	// shapeDiscovery: every task began within the last few hours (inside discovery's
	// lookback); one in 100 is still in progress.
	shapeDiscovery = "discovery"
	// shapeSpread: every task finished, task i begun (i+½) × span / N before now (task 0
	// the newest): a listing workload over days.
	shapeSpread = "spread"
)

// spreadBegin is when task i of n spread over span began, before now.
func spreadBegin(i, n int, span time.Duration, now time.Time) time.Time {
	return now.Add(-time.Duration(float64(span) * (float64(i) + 0.5) / float64(n)))
}

// inProgress says which tasks of shapeDiscovery have not finished: one in 100.
func inProgress(i int) bool { return i%100 == 0 }

var (
	benchResources = []string{"qa_pair", "intent", "knowledge", "entity", "slot"}
	benchOperators = []string{"zhang_san", "ops-bot", "li.si", "demo_user"}
)

const benchUserID = "5f0c8e1a9b2d4c3e8f7a6b5c4d3e2f1a"

// taskFields is task i of the finished and discovery shapes, as ShowTask and SearchTask
// answer it: even tasks send numbers, odd ones strings, like the simulator's mixed style.
// Task i began i seconds before an hour before now.
func taskFields(i int, now time.Time, running bool) map[string]any {
	return taskFieldsAt(i, now.Add(-time.Hour-time.Duration(i)*time.Second), running)
}

// taskFieldsAt is task i begun at began, as taskFields describes it; a finished task ended
// 10 minutes after it began.
func taskFieldsAt(i int, began time.Time, running bool) map[string]any {
	begin := began.UnixMilli()
	total := int64(200 + (i*37)%4801)
	failure := int64((i * 7) % 50)
	success := total - failure
	status := int64(simulator.StatusFinished)
	if running {
		success, status = total/2-failure, simulator.StatusRunning
	}
	num := func(v int64) any {
		if i%2 == 1 {
			return strconv.FormatInt(v, 10)
		}
		return v
	}
	resource := benchResources[i%len(benchResources)]
	f := map[string]any{
		"resource":      resource,
		"task_name":     fmt.Sprintf("%s_import_%d", resource, i),
		"begin_time":    num(begin),
		"task_type":     num(int64(i % 2)),
		"operator":      benchOperators[i%len(benchOperators)],
		"total_count":   num(total),
		"success_count": num(success),
		"failure_count": num(failure),
		"task_status":   num(status),
		"task_id":       simulator.TaskID(i),
		"user_id":       benchUserID,
	}
	if !running {
		f["end_time"] = num(begin + (10 * time.Minute).Milliseconds())
	}
	return f
}

// The exporter's task series, as the contract names them, for the plain registry.
var (
	plainLabels = []string{"task_id"}
	plainDescs  = struct {
		success, age, items, succeeded, failed, begin, end, status, info *prometheus.Desc
	}{
		success:   prometheus.NewDesc("metastudio_task_scrape_success", "1 if this scrape got the task.", plainLabels, nil),
		age:       prometheus.NewDesc("metastudio_task_data_age_seconds", "Seconds since the task's values were fetched.", plainLabels, nil),
		items:     prometheus.NewDesc("metastudio_task_items", "total_count of ShowTask.", plainLabels, nil),
		succeeded: prometheus.NewDesc("metastudio_task_succeeded_items", "success_count of ShowTask.", plainLabels, nil),
		failed:    prometheus.NewDesc("metastudio_task_failed_items", "failure_count of ShowTask.", plainLabels, nil),
		begin:     prometheus.NewDesc("metastudio_task_begin_timestamp_seconds", "begin_time of ShowTask.", plainLabels, nil),
		end:       prometheus.NewDesc("metastudio_task_end_timestamp_seconds", "end_time of ShowTask.", plainLabels, nil),
		status:    prometheus.NewDesc("metastudio_task_status", "task_status of ShowTask.", []string{"task_id", "status"}, nil),
		info: prometheus.NewDesc("metastudio_task_info", "The task's descriptive fields.",
			[]string{"task_id", "task_name", "resource", "task_type", "operator", "user_id"}, nil),
	}
)

// plainCollector exposes precomputed series: the 9 series of a warm scrape of each
// finished task (taskFieldsAt), built once as const metrics. It is the yardstick of "a
// plain client_golang registry exposing the same series".
type plainCollector struct{ metrics []prometheus.Metric }

// newPlainCollector holds n finished tasks, task i begun at begin(i).
func newPlainCollector(n int, begin func(i int) time.Time) *plainCollector {
	c := &plainCollector{metrics: make([]prometheus.Metric, 0, 9*n)}
	add := func(d *prometheus.Desc, v float64, labels ...string) {
		c.metrics = append(c.metrics, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	number := func(v any) float64 {
		switch x := v.(type) {
		case int64:
			return float64(x)
		case string:
			f, _ := strconv.ParseFloat(x, 64)
			return f
		}
		return 0
	}
	text := func(v any) string { return fmt.Sprint(v) }
	for i := range n {
		f := taskFieldsAt(i, begin(i), false)
		id := simulator.TaskID(i)
		add(plainDescs.success, 1, id)
		add(plainDescs.age, 42.5, id)
		add(plainDescs.items, number(f["total_count"]), id)
		add(plainDescs.succeeded, number(f["success_count"]), id)
		add(plainDescs.failed, number(f["failure_count"]), id)
		add(plainDescs.begin, number(f["begin_time"])/1000, id)
		add(plainDescs.end, number(f["end_time"])/1000, id)
		add(plainDescs.status, 1, id, text(f["task_status"]))
		add(plainDescs.info, 1, id, text(f["task_name"]), text(f["resource"]), text(f["task_type"]),
			text(f["operator"]), text(f["user_id"]))
	}
	return c
}

// Describe sends nothing: like the exporter's, the collector is unchecked.
func (c *plainCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the precomputed series.
func (c *plainCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.metrics {
		ch <- m
	}
}

// beginOf returns when task i of a shape began, for the plain registry's series: the
// finished shape's times, or the spread's.
func beginOf(n int, shape string, span time.Duration, now time.Time) func(i int) time.Time {
	if shape == shapeSpread {
		return func(i int) time.Time { return spreadBegin(i, n, span, now) }
	}
	return func(i int) time.Time { return now.Add(-time.Hour - time.Duration(i)*time.Second) }
}
