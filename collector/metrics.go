package collector

import (
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

const namespace = "metastudio"

// The per-task families are defined in taskFamilies (families.go).
// newDesc describes one of the collector's metrics, in the exporter's namespace.
func newDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

var (
	probeSuccessDesc  = newDesc("probe", "success", "1 if the probe has the task's values (metastudio_task_scrape_success 1), else 0.")
	probeDurationDesc = newDesc("probe", "duration_seconds", "How long the probe took.")
	durationDesc      = newDesc("", "scrape_duration_seconds", "How long this scrape took to fetch every task.")
)

// skewWarning is the clock skew that is logged: a third of the way to the gateway's limit.
const skewWarning = 5 * time.Minute

// APIMetrics counts and times every API call and follows the clock skew. It lives as long
// as the process and is registered once; every API client reports to it.
type APIMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logger   log.Logger
	// children caches the counter and histogram of each (operation, code): a call then
	// costs one map lookup instead of two label hashes in the vectors.
	children sync.Map // callKey -> *callChildren

	mu       sync.Mutex
	skew     time.Duration
	haveSkew bool
}

// NewAPIMetrics creates the API metrics and registers them with reg.
func NewAPIMetrics(reg prometheus.Registerer, logger log.Logger) *APIMetrics {
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
		logger: logger,
	}
	reg.MustRegister(m)
	return m
}

type callKey struct{ operation, code string }

type callChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// ObserveCall implements auth.Observer.
func (m *APIMetrics) ObserveCall(c auth.Call) {
	key := callKey{c.Operation, c.Code}
	ch, ok := m.children.Load(key)
	if !ok {
		ch, _ = m.children.LoadOrStore(key, &callChildren{
			requests: m.requests.WithLabelValues(c.Operation, c.Code),
			duration: m.duration.WithLabelValues(c.Operation),
		})
	}
	children := ch.(*callChildren)
	children.requests.Inc()
	children.duration.Observe(c.Duration.Seconds())
	if c.ServerDate.IsZero() {
		return
	}
	skew := c.Received.Sub(c.ServerDate)
	m.mu.Lock()
	wasLarge := m.haveSkew && m.skew.Abs() > skewWarning
	m.skew, m.haveSkew = skew, true
	m.mu.Unlock()
	if skew.Abs() > skewWarning && !wasLarge {
		level.Warn(m.logger).Log("msg", "The local clock is off the API's clock; the gateway refuses requests signed more than 15 minutes off",
			"skew", skew.Round(time.Second), "operation", c.Operation)
	}
}

// Describe implements prometheus.Collector.
func (m *APIMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *APIMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
}
