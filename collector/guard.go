package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// MaxFailureBackoff caps the cool-down after repeated authentication failures.
const MaxFailureBackoff = 10 * time.Minute

// ErrAuthBackoff is the error of a task that was not fetched because authentication
// failed recently and the guard is cooling down.
var ErrAuthBackoff = errors.New("authentication failed recently: no API call until the cool-down ends")

var (
	authOKDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "auth_ok"),
		"1 if the last API call authenticated, 0 if its credentials were refused or could not be had; absent until the first answer.", nil, nil)
	authBackoffDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "auth_backoff_seconds"),
		"Seconds left in the cool-down after an authentication failure, during which no API call is made.", nil, nil)
)

// Guard keeps a wrong or just-rotated key from locking the user's AK: the API gateway
// locks an AK for 5 minutes after more than 5 consecutive signature failures, and eight
// calls in flight would be eight failures. Until credentials have authenticated (at start,
// after a credential change and after a cool-down) one call goes out alone, and the others
// wait for its answer. An authentication failure starts a cool-down without any call,
// doubling from credentials.failure_backoff up to MaxFailureBackoff while failures go on.
// One Guard serves the whole process.
type Guard struct {
	base   time.Duration
	now    func() time.Time
	creds  auth.Versioned // nil when credentials cannot change
	logger log.Logger

	mu       sync.Mutex
	verified bool          // the credentials in use have authenticated
	probing  bool          // the one call that tests them is in flight
	probed   chan struct{} // closed when that call ends
	gen      uint64
	until    time.Time // end of the cool-down
	backoff  time.Duration
	authOK   float64 // -1 until the first answer
}

// NewGuard returns a Guard whose first cool-down lasts base. creds may be nil.
func NewGuard(base time.Duration, creds auth.Authenticator, now func() time.Time, logger log.Logger) *Guard {
	g := &Guard{base: base, backoff: base, now: now, logger: logger, probed: make(chan struct{}), authOK: -1}
	if v, ok := creds.(auth.Versioned); ok {
		g.creds = v
		g.gen = v.Generation()
	}
	return g
}

// Reset forgets that the credentials authenticated and ends any cool-down: the next call
// goes out alone. Call it when the credentials or the endpoint change (a reload).
func (g *Guard) Reset(creds auth.Authenticator, base time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.creds, _ = creds.(auth.Versioned)
	if g.creds != nil {
		g.gen = g.creds.Generation()
	}
	g.base, g.backoff, g.verified, g.until = base, base, false, time.Time{}
}

// coolingDown reports whether a cool-down runs: no call will be cleared.
func (g *Guard) coolingDown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now().Before(g.until)
}

// Acquire waits until one API call may go out. It fails with ErrAuthBackoff during a
// cool-down, or with ctx's error. The caller must pass the call's error to done.
func (g *Guard) Acquire(ctx context.Context) (done func(error), err error) {
	for {
		g.mu.Lock()
		if g.creds != nil {
			if gen := g.creds.Generation(); gen != g.gen { // rotated credentials: test them alone
				g.gen, g.verified, g.until, g.backoff = gen, false, time.Time{}, g.base
			}
		}
		if left := g.until.Sub(g.now()); left > 0 {
			g.mu.Unlock()
			return nil, fmt.Errorf("%w (%s left)", ErrAuthBackoff, left.Round(time.Second))
		}
		if !g.until.IsZero() { // the cool-down is over: one call tests the credentials
			g.until, g.verified = time.Time{}, false
		}
		switch {
		case g.verified:
			g.mu.Unlock()
			return func(err error) { g.done(err, false) }, nil
		case !g.probing:
			g.probing = true
			g.mu.Unlock()
			return func(err error) { g.done(err, true) }, nil
		}
		probed := g.probed
		g.mu.Unlock()
		select {
		case <-probed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (g *Guard) done(err error, probe bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var apiErr *metastudio.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.AuthFailed():
		g.authOK, g.verified = 0, false
		if g.now().Before(g.until) {
			break // a call that was already in flight: the cool-down runs already
		}
		g.until = g.now().Add(g.backoff)
		level.Warn(g.logger).Log("msg", "Authentication failed: no API call until the cool-down ends",
			"cool_down", g.backoff, "error_code", apiErr.Reason(), "err", err)
		g.backoff = min(2*g.backoff, MaxFailureBackoff)
	case err == nil || (errors.As(err, &apiErr) && apiErr.StatusCode != 0):
		// Any answer but a refusal proves the credentials passed the gateway.
		g.authOK, g.verified, g.backoff = 1, true, g.base
	}
	if probe {
		g.probing = false
		close(g.probed)
		g.probed = make(chan struct{})
	}
}

// Describe implements prometheus.Collector.
func (g *Guard) Describe(ch chan<- *prometheus.Desc) {
	ch <- authOKDesc
	ch <- authBackoffDesc
}

// Collect implements prometheus.Collector.
func (g *Guard) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	ok, left := g.authOK, max(g.until.Sub(g.now()), 0)
	g.mu.Unlock()
	if ok >= 0 {
		ch <- prometheus.MustNewConstMetric(authOKDesc, prometheus.GaugeValue, ok)
	}
	ch <- prometheus.MustNewConstMetric(authBackoffDesc, prometheus.GaugeValue, left.Seconds())
}
