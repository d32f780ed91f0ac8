package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "metastudio"

var (
	taskLabels = []string{"task_id"}

	itemsDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "items"),
		"Items in the task: total_count of ShowTask.", taskLabels, nil)
	succeededDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "succeeded_items"),
		"Items of the task that succeeded so far: success_count of ShowTask.", taskLabels, nil)
	failedDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "failed_items"),
		"Items of the task that failed so far: failure_count of ShowTask.", taskLabels, nil)
	statusDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "status"),
		"Always 1; status is task_status of ShowTask as text, or its name from status_names.",
		[]string{"task_id", "status"}, nil)
	infoDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "info"),
		"Always 1; the labels carry task_name, resource, task_type, operator and user_id of ShowTask.",
		[]string{"task_id", "task_name", "resource", "task_type", "operator", "user_id"}, nil)
	beginDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "begin_timestamp_seconds"),
		"When the task began, in seconds since the epoch: begin_time of ShowTask / 1000.", taskLabels, nil)
	endDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "end_timestamp_seconds"),
		"When the task ended, in seconds since the epoch: end_time of ShowTask / 1000.", taskLabels, nil)
	successDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "task", "scrape_success"),
		"1 if this scrape got the task from ShowTask, else 0 (and the task's other series are absent).", taskLabels, nil)
	durationDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "scrape_duration_seconds"),
		"How long this scrape took to fetch every task.", nil, nil)
)

// APIMetrics counts and times every API call. It lives as long as the process and is
// registered once; the MetaStudio client reports to it as its Observer.
type APIMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewAPIMetrics creates the API metrics and registers them with reg.
func NewAPIMetrics(reg prometheus.Registerer) *APIMetrics {
	m := &APIMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "requests_total",
			Help: "API calls made, by operation and outcome: code is the HTTP status, or error when no response came.",
		}, []string{"operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "request_duration_seconds",
			Help:    "How long API calls took, by operation, including reading the body.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"operation"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// ObserveRequest implements metastudio.Observer.
func (m *APIMetrics) ObserveRequest(operation, code string, d time.Duration) {
	m.requests.WithLabelValues(operation, code).Inc()
	m.duration.WithLabelValues(operation).Observe(d.Seconds())
}
