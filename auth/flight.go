package auth

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// flight runs one credential fetch at a time, detached from the callers that wait for
// it: the fetch is bounded by its HTTP client's timeout (about 30 s for IAM, 3 s for the
// metadata service), never by a scrape's deadline. A caller whose context ends stops
// waiting and the fetch goes on, so the next caller finds its result cached.
type flight struct {
	mu      sync.Mutex
	current *fetchCall // nil when no fetch runs
}

// fetchCall is one fetch; err is written before done is closed.
type fetchCall struct {
	done chan struct{}
	err  error
}

// start begins fetch unless one runs already, and returns the call that runs.
func (f *flight) start(fetch func() error) *fetchCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current != nil {
		return f.current
	}
	c := &fetchCall{done: make(chan struct{})}
	f.current = c
	go func() {
		c.err = fetch()
		f.mu.Lock()
		f.current = nil
		f.mu.Unlock()
		close(c.done)
	}()
	return c
}

// do starts fetch (or joins the one that runs) and waits for it until ctx ends.
func (f *flight) do(ctx context.Context, what string, fetch func() error) error {
	c := f.start(fetch)
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return &waitError{what: what, err: ctx.Err()}
	}
}

// waitError is a caller that stopped waiting for a fetch that goes on.
type waitError struct {
	what string
	err  error
}

func (e *waitError) Error() string {
	return "waiting for " + e.what + " (the request goes on; its answer will be cached): " + e.err.Error()
}

func (e *waitError) Unwrap() error { return e.err }

// MetricNames lists the metric families that package auth defines (FetchFailures and
// Clock); collector.MetricNames lists the exporter's others.
var MetricNames = []string{"metastudio_credential_fetch_failures_total", "metastudio_clock_correction_seconds"}

// Credential sources and failure reasons of metastudio_credential_fetch_failures_total.
const (
	SourceIAM      = "iam"
	SourceMetadata = "metadata"

	ReasonTimeout = "timeout"
	ReasonNetwork = "network"
	ReasonServer  = "server"
)

// unavailableError is a credential source that could not be asked or gave no usable
// answer (a timeout, a network error, a 5xx or garbage): not a refusal of the credentials.
type unavailableError struct {
	reason string
	err    error
}

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// unavailable wraps err as a failure of the source, with the reason it failed for.
func unavailable(reason string, err error) error {
	return &unavailableError{reason: reason, err: err}
}

// transportReason tells a timeout from other failures to get an answer.
func transportReason(err error) string {
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return ReasonTimeout
	}
	return ReasonNetwork
}

// FetchFailures counts credential fetches that failed without a refusal, as
// metastudio_credential_fetch_failures_total{source, reason}. One lives as long as the
// process; pass it in Options and register it once.
type FetchFailures struct {
	counter *prometheus.CounterVec
}

// NewFetchFailures creates the counter with every source and reason at 0, so that rate()
// works from the start.
func NewFetchFailures() *FetchFailures {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "metastudio", Name: "credential_fetch_failures_total",
		Help: "Credential fetches from IAM (tokens, project lookup) or the ECS metadata service (temporary keys) that got no usable answer: a timeout, a network error, or a 5xx or unreadable answer. A refusal of the credentials is not counted here.",
	}, []string{"source", "reason"})
	for _, s := range []string{SourceIAM, SourceMetadata} {
		for _, r := range []string{ReasonTimeout, ReasonNetwork, ReasonServer} {
			c.WithLabelValues(s, r)
		}
	}
	return &FetchFailures{counter: c}
}

// count records err if it is a failure of the source; f may be nil.
func (f *FetchFailures) count(source string, err error) {
	var u *unavailableError
	if f == nil || !errors.As(err, &u) {
		return
	}
	f.counter.WithLabelValues(source, u.reason).Inc()
}

// Describe implements prometheus.Collector.
func (f *FetchFailures) Describe(ch chan<- *prometheus.Desc) { f.counter.Describe(ch) }

// Collect implements prometheus.Collector.
func (f *FetchFailures) Collect(ch chan<- prometheus.Metric) { f.counter.Collect(ch) }
