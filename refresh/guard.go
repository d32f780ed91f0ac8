package refresh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// namespace is the prefix of the metrics that the guard and the rate export.
const namespace = "metastudio"

// Bounds of the AK guard.
const (
	// MaxFailureBackoff caps the cool-down after repeated authentication failures.
	MaxFailureBackoff = 10 * time.Minute
	// maxProbeTimeout bounds the lone call that tests credentials.
	maxProbeTimeout = 5 * time.Second
	// firstProbePause is the pause after a probe that verified nothing; it doubles up to
	// the cool-down.
	firstProbePause = time.Second
	// refreshTimeout bounds a credential refresh after a refused token.
	refreshTimeout = 30 * time.Second
)

// ErrAuthBackoff is the error of a task that was not fetched because authentication
// failed recently and the guard is cooling down.
var ErrAuthBackoff = errors.New("authentication failed recently: no API call until the cool-down ends")

// newDesc describes one of the refresher's metrics, in the exporter's namespace.
func newDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

var (
	authOKDesc      = newDesc("", "auth_ok", "1 if the last API call authenticated, 0 if its credentials were refused; absent until the first answer. Credentials that could not be fetched (IAM or the metadata service unreachable) leave it as it was.")
	authBackoffDesc = newDesc("", "auth_backoff_seconds", "Seconds left in the cool-down after an authentication failure, during which no API call is made.")
)

// Guard keeps a wrong, revoked or just-rotated key from locking the user's AK: the API
// gateway locks an AK for 5 minutes after more than 5 consecutive signature failures, and
// eight calls in flight would be eight failures. The refresher asks it before every call.
//
//   - Until the credentials are verified (at start, after a change, after a cool-down, and
//     after any refusal) one call goes out alone: the probe. It has a deadline of its own,
//     which the refresher sets at most maxProbeTimeout.
//   - Only a 2xx, or an error body with an MSS.* code (the service answered past the
//     gateway's authentication), verifies. A probe that verified nothing (a timeout, a 3xx,
//     a 5xx or 429 from the gateway, credentials that could not be fetched) is followed by
//     the next probe alone after a pause of 1 s, 2 s, 4 s, … up to the cool-down.
//   - A refusal (a 401, APIGW.0301, MSS.000000004, or credentials refused by IAM) starts
//     a cool-down without any call, doubling from credentials.failure_backoff up to
//     MaxFailureBackoff while refusals go on. Token credentials that the API refused get
//     one refresh first; the retry is the next probe. Another refresh comes only after a
//     verified call.
//   - Every outcome carries the epoch of the credentials it used: an outcome from older
//     credentials changes nothing. A change from outside (a reload with new credentials, a
//     rotated key file, a new password or token file) starts a new epoch with a clean
//     slate; a refresh the exporter makes itself does not.
//
// One Guard serves every project on one AK (Refresher.SetProject): the gateway locks the
// AK, not the project. It watches the credentials of each of those projects (Watch): a
// refused token refreshes each project's, and a change of any one's files starts a new
// epoch.
type Guard struct {
	now    func() time.Time
	logger log.Logger
	wake   func() // tells the refresher that the state changed

	clock *auth.Clock // the API's clock, whose correction explains a refusal; may be nil

	mu         sync.Mutex
	base       time.Duration
	creds      []watched // the credentials of every project on this identity
	watchGen   uint64    // counts the changes of creds
	epoch      uint64
	verified   bool
	probing    bool
	refreshing bool      // a refresh after a refused token runs
	refreshed  bool      // one was made since the last verified call
	refreshes  uint64    // the refreshes begun: a refusal of a call let out before the last says nothing
	until      time.Time // end of the cool-down
	backoff    time.Duration
	pauseUntil time.Time // the next probe after one that verified nothing
	pause      time.Duration
	explained  bool    // a refusal was put down to the clock since the last verified call
	authOK     float64 // -1 until the first definite answer
}

// NewGuard returns a Guard whose first cool-down lasts base. creds may be nil.
func NewGuard(base time.Duration, creds auth.Authenticator, now func() time.Time, logger log.Logger) *Guard {
	g := &Guard{now: now, logger: logger, authOK: -1, wake: func() {}}
	g.Reset(creds, base)
	return g
}

// SetClock gives the guard the API's clock: a refusal that came with a new clock
// correction is put down to the clock once, and re-probed at once with the corrected time.
func (g *Guard) SetClock(c *auth.Clock) { g.clock = c }

// watched is credentials that the guard watches, and their generation (auth.Versioned)
// when it last looked.
type watched struct {
	creds auth.Authenticator
	gen   uint64
}

// generation is the credentials' own generation; 0 when they have none.
func generation(creds auth.Authenticator) uint64 {
	if v, ok := creds.(auth.Versioned); ok {
		return v.Generation()
	}
	return 0
}

// Reset starts a new epoch: the credentials' source or values changed (a reload). The
// next call goes out alone, and no cool-down runs. The guard watches creds alone until
// Watch names more.
func (g *Guard) Reset(creds auth.Authenticator, base time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.base = base
	g.watchLocked(creds)
	g.newEpoch()
}

// Adopt keeps what the guard learned, a cool-down included: a reload kept the
// credentials' identity and values (it changed the endpoint, the rate,
// credentials.failure_backoff, or added another project on the identity). base applies
// from the next cool-down on. Which credentials the guard watches, Watch says.
func (g *Guard) Adopt(base time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.base = base
}

// Watch makes creds (the credentials of every project on this identity) what the guard
// watches, without a new epoch: a token refusal refreshes each of them, since the guard
// cannot tell whose token was refused, and a change of any one's files starts a new epoch.
func (g *Guard) Watch(creds ...auth.Authenticator) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.watchLocked(creds...)
}

// watchLocked is Watch. g.mu is held.
func (g *Guard) watchLocked(creds ...auth.Authenticator) {
	next := make([]watched, 0, len(creds))
	for _, c := range creds {
		if c == nil || slices.ContainsFunc(next, func(w watched) bool { return w.creds == c }) {
			continue
		}
		w := watched{c, 0}
		if i := slices.IndexFunc(g.creds, func(w watched) bool { return w.creds == c }); i >= 0 {
			w.gen = g.creds[i].gen // a change since the guard last looked is still noticed
		} else {
			w.gen = generation(c)
		}
		next = append(next, w)
	}
	g.creds = next
	g.watchGen++
}

// newEpoch forgets everything learned about the credentials. g.mu is held.
func (g *Guard) newEpoch() {
	g.epoch++
	g.verified, g.probing, g.refreshing, g.refreshed, g.explained = false, false, false, false, false
	g.until, g.pauseUntil = time.Time{}, time.Time{}
	g.backoff, g.pause = g.base, firstProbePause
}

// sync starts a new epoch when the credentials changed from outside. Looking costs a stat
// of the key files, which can be slow (NFS): it runs under no lock, neither the guard's nor
// the refresher's, so that a slow stat holds up its own caller only.
func (g *Guard) sync() {
	g.mu.Lock()
	creds, watchGen := g.creds, g.watchGen // never written in place: changes copy
	g.mu.Unlock()
	var next []watched
	for i, w := range creds {
		if gen := generation(w.creds); gen != w.gen {
			if next == nil {
				next = slices.Clone(creds)
			}
			next[i].gen = gen
		}
	}
	if next == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.watchGen != watchGen {
		return // watched anew meanwhile: the next look compares with that
	}
	g.creds = next
	g.watchGen++
	g.newEpoch()
}

// coolingDown returns ErrAuthBackoff (with the time left) during a cool-down, else nil.
func (g *Guard) coolingDown() error {
	g.sync()
	g.mu.Lock()
	defer g.mu.Unlock()
	if left := g.until.Sub(g.now()); left > 0 {
		return fmt.Errorf("%w (%s left)", ErrAuthBackoff, left.Round(time.Second))
	}
	return nil
}

// permit lets one call go out.
type permit struct {
	epoch      uint64
	refreshes  uint64 // the guard's refreshes begun when the call was let out
	probe      bool
	correction time.Duration // the clock correction the call is signed with
}

// admit decides on one more call. It returns a permit; or ErrAuthBackoff during a
// cool-down; or neither, with how long to wait (0: until the refresher is woken).
func (g *Guard) admit() (p permit, ok bool, wait time.Duration, err error) {
	g.sync()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.admitLocked()
}

// admitNow is admit for a call that goes out at once or not at all. It does not look for
// changed credential files (a stat can be slow: the caller holds the refresher's lock);
// admit, coolingDown and done do.
func (g *Guard) admitNow() (permit, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok, _, err := g.admitLocked()
	return p, ok && err == nil, err
}

// valid reports whether a permit that was held for a while still holds: same credentials,
// no cool-down.
func (g *Guard) valid(p permit) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return p.epoch == g.epoch && !g.now().Before(g.until)
}

// admitLocked is admit; g.mu is held.
func (g *Guard) admitLocked() (p permit, ok bool, wait time.Duration, err error) {
	now := g.now()
	if left := g.until.Sub(now); left > 0 {
		return permit{}, false, left, fmt.Errorf("%w (%s left)", ErrAuthBackoff, left.Round(time.Second))
	}
	if !g.until.IsZero() { // the cool-down is over: a probe tests the credentials
		g.until, g.verified = time.Time{}, false
	}
	switch {
	case g.verified:
		return permit{epoch: g.epoch, refreshes: g.refreshes, correction: g.correction()}, true, 0, nil
	case g.probing || g.refreshing:
		return permit{}, false, 0, nil
	case now.Before(g.pauseUntil):
		return permit{}, false, g.pauseUntil.Sub(now), nil
	}
	g.probing = true
	return permit{epoch: g.epoch, refreshes: g.refreshes, probe: true, correction: g.correction()}, true, 0, nil
}

// correction is the clock correction that calls are signed with now.
func (g *Guard) correction() time.Duration {
	if g.clock == nil {
		return 0
	}
	return g.clock.Correction()
}

// release gives back a permit that was not used.
func (g *Guard) release(p permit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.probe && p.epoch == g.epoch {
		g.probing = false
	}
}

// done takes the outcome of a call made under p.
func (g *Guard) done(p permit, err error) {
	g.sync()
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.epoch != g.epoch {
		return // older credentials: their outcome says nothing about these
	}
	if p.probe {
		g.probing = false
	}
	switch {
	case refused(err) && p.refreshes != g.refreshes:
		// Signed with a token from before the latest refresh, and answered after it began:
		// the refusal says nothing about the new token, which the next probe tests.
	case refused(err) && g.skewExplains(p):
		// The refusal's Date moved the clock correction: the call was signed with a wrong
		// time, not wrong credentials. The next call, signed with the corrected time, goes
		// out at once as the probe; a skew costs one failed call, not a cool-down.
		g.authOK, g.verified, g.explained, g.pauseUntil = 0, false, true, time.Time{}
		level.Warn(g.logger).Log("msg", "The API refused a call signed with a clock that was off; trying once more with the corrected time",
			"correction", g.correction(), "error_code", reasonOf(err))
	case refused(err):
		g.refused(err)
	case verifies(err):
		g.authOK, g.verified, g.backoff, g.pause, g.refreshed = 1, true, g.base, firstProbePause, false
		g.pauseUntil, g.explained = time.Time{}, false
	case p.probe && !throttled(err): // verified nothing: the next probe waits, so that slow answers do not stream
		g.pauseUntil = g.now().Add(g.pause)
		g.pause = min(2*g.pause, max(g.backoff, firstProbePause))
	}
}

// skewExplains reports whether the clock correction moved by more than the tolerance
// since the call under p was signed, for the first time since the last verified call.
// g.mu is held.
func (g *Guard) skewExplains(p permit) bool {
	return !g.explained && (g.correction()-p.correction).Abs() > auth.SkewTolerance
}

// refused handles a refusal: one refresh of token credentials, else a cool-down. g.mu is held.
func (g *Guard) refused(err error) {
	g.authOK, g.verified = 0, false
	if g.now().Before(g.until) || g.refreshing {
		return // a call that was already in flight: the cool-down or refresh runs already
	}
	var refreshers []auth.Refresher
	for _, w := range g.creds {
		if r, ok := w.creds.(auth.Refresher); ok {
			refreshers = append(refreshers, r)
		}
	}
	if len(refreshers) > 0 && !g.refreshed && tokenRejected(err) {
		g.refreshing, g.refreshed = true, true
		g.refreshes++
		level.Warn(g.logger).Log("msg", "The API refused the credentials; getting new ones, then one call tests them",
			"error_code", reasonOf(err), "err", err)
		epoch := g.epoch
		go func() {
			for _, r := range refreshers { // each project's token on this identity: whose was refused is not known
				ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
				rerr := r.Refresh(ctx)
				cancel()
				if rerr != nil {
					level.Warn(g.logger).Log("msg", "Refreshing the credentials failed", "err", rerr)
				}
			}
			g.mu.Lock()
			if g.epoch == epoch {
				g.refreshing = false
			}
			g.mu.Unlock()
			g.wake()
		}()
		return
	}
	g.until = g.now().Add(g.backoff)
	level.Warn(g.logger).Log("msg", "Authentication failed: no API call until the cool-down ends",
		"cool_down", g.backoff, "error_code", reasonOf(err), "err", err)
	g.backoff = min(2*g.backoff, MaxFailureBackoff)
}

// refused reports whether err says the credentials were refused.
func refused(err error) bool {
	var apiErr *metastudio.APIError
	return errors.As(err, &apiErr) && apiErr.AuthFailed()
}

// verifies reports whether an outcome proves that the credentials passed the gateway: a
// 2xx, or an error that MetaStudio itself answered (an MSS.* code). A 3xx, a gateway's
// own error, a timeout or a transport failure prove nothing.
func verifies(err error) bool {
	var apiErr *metastudio.APIError
	return err == nil || (errors.As(err, &apiErr) && apiErr.Verifies())
}

// tokenRejected reports whether the API itself refused the token it was sent (not IAM or
// the metadata service refusing to issue one, nor a token of another project): a token
// worth replacing.
func tokenRejected(err error) bool {
	var apiErr *metastudio.APIError
	return errors.As(err, &apiErr) && apiErr.TokenRejected()
}

// throttled reports whether err is a 429: the rate, not the guard, answers it.
func throttled(err error) bool {
	var apiErr *metastudio.APIError
	return errors.As(err, &apiErr) && apiErr.Throttled()
}

func reasonOf(err error) string {
	var apiErr *metastudio.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Reason()
	}
	return "error"
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

// Do makes a call that is not the refresher's (an IAM call made with the credentials,
// such as resolving project_id) under the guard, as one of its calls: at once while the
// credentials are verified, as the probe while they are not (waiting while another probe
// runs, until ctx ends), and not at all during a cool-down (ErrAuthBackoff). Its outcome
// counts like any call's: a refusal (auth.ErrRejected) starts the cool-down of every
// project that uses the credentials.
func (g *Guard) Do(ctx context.Context, call func(context.Context) error) error {
	for {
		p, ok, wait, err := g.admit()
		if err != nil {
			return err
		}
		if ok {
			err := call(ctx)
			outcome := err
			var apiErr *metastudio.APIError
			if err != nil && !errors.As(err, &apiErr) {
				outcome = &metastudio.APIError{Err: err} // a refusal by IAM is auth.ErrRejected
			}
			g.done(p, outcome)
			return err
		}
		if wait <= 0 || wait > doPoll {
			wait = doPoll // another probe runs, or a pause: look again soon
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Try makes a one-off call that is not the refresher's (a reload's attempt with new
// credentials) only outside a cool-down (else ErrAuthBackoff), and leaves the guard's
// judgement of the credentials in use alone: the call is made with others.
func (g *Guard) Try(ctx context.Context, call func(context.Context) error) error {
	if err := g.coolingDown(); err != nil {
		return err
	}
	return call(ctx)
}

// doPoll is how often Do looks again while it may not call yet.
const doPoll = 100 * time.Millisecond
