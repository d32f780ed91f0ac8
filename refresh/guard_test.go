package refresh

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

var errUnauthorized = &metastudio.APIError{Operation: "ShowTask", StatusCode: 401, Code: "APIGW.0301", Message: "Incorrect IAM authentication information: verify aksk signature fail"}

// TestGuardProbesAloneThenFansOut: the first call tests the credentials alone; once it
// verified them, calls fan out to scrape.concurrency.
func TestGuardProbesAloneThenFansOut(t *testing.T) {
	api := &fakeapi.API{Gate: make(chan struct{})}
	r := startRefresher(t, api, time.Now, 0, 8, 5*time.Second)
	done := make(chan []Result)
	go func() { done <- scrape(context.Background(), r, manyKeys(50)) }()

	waitFor(t, "the probe", func() bool { return api.InFlight() == 1 })
	if _, ok, _, _ := guardOf(r).admit(); ok { // what the dispatcher asks before each call
		t.Fatal("the guard lets a second call out while the probe is in flight")
	}
	api.Gate <- struct{}{} // the probe answers: the credentials are verified
	waitFor(t, "the fan-out to 8 calls in flight", func() bool { return api.InFlight() == 8 })
	close(api.Gate)
	for i, r := range <-done {
		if r.Err != nil {
			t.Fatalf("task %d: %v", i, r.Err)
		}
	}
	if api.Total() != 50 || api.MaxInFlight() != 8 {
		t.Errorf("%d calls, at most %d in flight; want 50 and 8", api.Total(), api.MaxInFlight())
	}
}

func TestGuardCoolsDownAfterAuthFailure(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	failing := atomic.Bool{}
	failing.Store(true)
	api := &fakeapi.API{Fail: failWhile(&failing, errUnauthorized)}
	r := startRefresher(t, api, clock.Now, 0, 8, 5*time.Second)
	guard := guardOf(r)
	keys := manyKeys(200)
	failures := func() (failed int) {
		for _, r := range scrape(context.Background(), r, keys) {
			if r.Err != nil {
				failed++
			}
		}
		return failed
	}
	callsAt := api.Total

	if failed := failures(); failed != 200 || callsAt() != 1 {
		t.Fatalf("first scrape with a wrong key: %d failed, %d calls; want 200 failed and exactly 1 call", failed, callsAt())
	}
	if err := testutil.CollectAndCompare(guard, strings.NewReader(`
# HELP metastudio_auth_backoff_seconds Seconds left in the cool-down after an authentication failure, during which no API call is made.
# TYPE metastudio_auth_backoff_seconds gauge
metastudio_auth_backoff_seconds 60
# HELP metastudio_auth_ok 1 if the last API call authenticated, 0 if its credentials were refused; absent until the first answer. Credentials that could not be fetched (IAM or the metadata service unreachable) leave it as it was.
# TYPE metastudio_auth_ok gauge
metastudio_auth_ok 0
`)); err != nil {
		t.Error(err)
	}
	// The cool-down doubles while failures go on: 1m, 2m, 4m, 8m, then 10m at most.
	for _, backoff := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		before := callsAt()
		clock.Advance(backoff - time.Second)
		if failures(); callsAt() != before {
			t.Fatalf("a call was made 1s before the end of a %s cool-down", backoff)
		}
		clock.Advance(time.Second)
		if failures(); callsAt() != before+1 {
			t.Fatalf("after a %s cool-down: %d calls, want exactly one", backoff, callsAt()-before)
		}
	}
	// A success resets the cool-down and lets the scrape fan out again.
	failing.Store(false)
	clock.Advance(10 * time.Minute)
	before := callsAt()
	if failed := failures(); failed != 0 || callsAt() != before+200 {
		t.Fatalf("after recovery: %d failed, %d calls", failed, callsAt()-before)
	}
	failing.Store(true)
	failures()
	clock.Advance(time.Minute)
	before = callsAt()
	failures()
	if callsAt() != before+1 {
		t.Errorf("after a success, the cool-down starts again at 1m: %d calls at 1m", callsAt()-before)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(guard)
	if n, err := testutil.GatherAndCount(reg, "metastudio_auth_ok"); err != nil || n != 1 {
		t.Errorf("auth_ok: %d series, %v", n, err)
	}
}

// TestBurstProtection: a key disabled while 16 calls are in flight costs at most those
// calls (of the 900 tasks left), until the cool-down ends; then one probe.
func TestBurstProtection(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &fakeapi.API{Fail: func(n int, _ string) error {
		if n > 100 { // the key is disabled after 100 calls
			return errUnauthorized
		}
		return nil
	}}
	r := startRefresher(t, api, clock.Now, 0, 16, 5*time.Second)
	keys := manyKeys(1000)
	scrape(context.Background(), r, keys)
	if n := api.Failed(); n == 0 || n > 16 {
		t.Errorf("%d failures; want at least one and at most the 16 calls in flight", n)
	}
	for range 3 { // each cool-down then costs one probe
		before := api.Failed()
		clock.Advance(MaxFailureBackoff)
		scrape(context.Background(), r, keys)
		if got := api.Failed() - before; got != 1 {
			t.Fatalf("after a cool-down: %d failures, want 1", got)
		}
	}
}

// versioned pretends to be credentials that get rotated, and can be refreshed.
type versioned struct {
	gen       atomic.Uint64
	refreshes atomic.Int64
}

func (v *versioned) Authenticate(context.Context, *http.Request, []byte) error { return nil }
func (v *versioned) Generation() uint64                                        { return v.gen.Load() }

// refreshable is token credentials: the exporter can get new ones itself.
type refreshable struct {
	versioned
	refreshed chan struct{}
}

func (r *refreshable) Refresh(context.Context) error {
	r.refreshes.Add(1)
	r.refreshed <- struct{}{}
	return nil
}

// tokenGuard is a guard of token credentials, its clock, and the channel its wake
// signals.
func tokenGuard() (*Guard, *refreshable, *testkit.Clock, chan struct{}) {
	clock := testkit.NewClock(time.Unix(0, 0))
	creds := &refreshable{refreshed: make(chan struct{}, 1)}
	guard := NewGuard(time.Minute, creds, clock.Now, log.NewNopLogger())
	woken := make(chan struct{}, 1)
	guard.wake = func() { woken <- struct{}{} }
	return guard, creds, clock, woken
}

// refusedRetryCoolsDown: after a refresh, the retry goes out alone, and its refusal starts
// the cool-down.
func refusedRetryCoolsDown(t *testing.T, g *Guard) {
	t.Helper()
	p := admitted(t, g)
	if !p.probe {
		t.Fatal("the retry after a refresh must go out alone")
	}
	g.done(p, errUnauthorized)
	if err := g.coolingDown(); err == nil {
		t.Fatal("a refusal right after the refresh must start the cool-down")
	}
}

func admitted(t *testing.T, g *Guard) permit {
	t.Helper()
	p, ok, _, err := g.admit()
	if !ok || err != nil {
		t.Fatalf("want a permit, got ok=%v err=%v", ok, err)
	}
	return p
}

func TestGuardNewCredentialsEndTheCoolDown(t *testing.T) {
	clock := testkit.NewClock(time.Unix(0, 0))
	creds := &versioned{}
	guard := NewGuard(time.Minute, creds, clock.Now, log.NewNopLogger())
	guard.done(admitted(t, guard), errUnauthorized)
	if err := guard.coolingDown(); !errors.Is(err, ErrAuthBackoff) {
		t.Fatalf("during the cool-down: %v", err)
	}
	creds.gen.Add(1) // a secret manager wrote new keys
	if p := admitted(t, guard); !p.probe {
		t.Fatal("new credentials must be tried at once, alone")
	}
}

// TestGuardOutcomesCarryTheEpoch: an answer to older credentials says nothing about the
// new ones.
func TestGuardOutcomesCarryTheEpoch(t *testing.T) {
	clock := testkit.NewClock(time.Unix(0, 0))
	guard := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
	old := admitted(t, guard)
	guard.Reset(&versioned{}, time.Minute) // a reload to a new key
	guard.done(old, nil)                   // the old key's probe succeeds
	if p := admitted(t, guard); !p.probe {
		t.Fatal("the new key was taken as verified by the old key's success")
	}
	guard.Reset(&versioned{}, time.Minute)
	p := admitted(t, guard)
	guard.Reset(&versioned{}, time.Minute)
	guard.done(p, errUnauthorized)
	if err := guard.coolingDown(); err != nil {
		t.Fatalf("the old key's refusal started a cool-down for the new one: %v", err)
	}
}

// TestGuardVerifiesOnlyPastTheGateway: only a 2xx or an MSS.* error verifies.
func TestGuardVerifiesOnlyPastTheGateway(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		verifies bool
	}{
		{"2xx", nil, true},
		{"MetaStudio's own error", &metastudio.APIError{StatusCode: 400, Code: "MSS.000000003"}, true},
		{"a redirect", &metastudio.APIError{StatusCode: 302}, false},
		{"a gateway error", &metastudio.APIError{StatusCode: 404, Code: "APIGW.0101"}, false},
		{"a bare 500", &metastudio.APIError{StatusCode: 500}, false},
		{"throttled", &metastudio.APIError{StatusCode: 429, Code: "APIGW.0308"}, false},
		{"a timeout", &metastudio.APIError{Err: context.DeadlineExceeded}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := testkit.NewClock(time.Unix(0, 0))
			guard := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
			guard.done(admitted(t, guard), tc.err)
			p, ok, _, _ := guard.admit()
			if verified := ok && !p.probe; verified != tc.verifies {
				t.Errorf("verified %v, want %v", verified, tc.verifies)
			}
		})
	}
}

// TestGuardPausesAfterAnUnansweredProbe: a probe that verified nothing is followed by the
// next one alone after 1 s, 2 s, 4 s, … up to the cool-down.
func TestGuardPausesAfterAnUnansweredProbe(t *testing.T) {
	clock := testkit.NewClock(time.Unix(0, 0))
	guard := NewGuard(10*time.Second, nil, clock.Now, log.NewNopLogger())
	timeout := &metastudio.APIError{Err: context.DeadlineExceeded}
	for _, pause := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		guard.done(admitted(t, guard), timeout)
		_, ok, wait, err := guard.admit()
		if ok || err != nil || wait != pause {
			t.Fatalf("after an unanswered probe: ok=%v err=%v wait %s; want a pause of %s", ok, err, wait, pause)
		}
		clock.Advance(pause)
	}
	guard.done(admitted(t, guard), nil)
	guard.done(admitted(t, guard), errUnauthorized) // a refusal after verification
	if _, ok, _, err := guard.admit(); ok || !errors.Is(err, ErrAuthBackoff) {
		t.Errorf("after verification, a refusal must stop every call: ok=%v err=%v", ok, err)
	}
}

// TestGuardRefreshesTokenCredentialsOnce: a refused token gets one refresh, the retry is
// the next lone probe, and a second refusal starts the cool-down. The refresh is the
// exporter's own: it does not reset the cool-down's doubling.
func TestGuardRefreshesTokenCredentialsOnce(t *testing.T) {
	guard, creds, clock, woken := tokenGuard()
	guard.done(admitted(t, guard), nil)
	guard.done(admitted(t, guard), errUnauthorized) // revoked
	for _, ch := range []chan struct{}{creds.refreshed, woken} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("a refused token was not refreshed")
		}
	}
	if err := guard.coolingDown(); err != nil {
		t.Fatalf("a refused token must be refreshed, not cooled down: %v", err)
	}
	refusedRetryCoolsDown(t, guard)
	clock.Advance(time.Minute)
	guard.done(admitted(t, guard), errUnauthorized)
	if creds.refreshes.Load() != 1 {
		t.Errorf("%d refreshes, want 1 until a call succeeds", creds.refreshes.Load())
	}
	if left := guard.until.Sub(clock.Now()); left != 2*time.Minute {
		t.Errorf("the second cool-down lasts %s, want 2m: the exporter's own refresh must not reset the doubling", left)
	}
}

// TestGuardAuthCodes: the answers MetaStudio documents for tokens. A token rejected in the
// header (400 MSS.00010008) is refreshed like a 401; a token of another project (400
// MSS.00010009) is a refusal that no refresh mends; neither verifies the credentials.
func TestGuardAuthCodes(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		refresh bool // one refresh, no cool-down; else a cool-down at once
	}{
		{"401 APIGW.0301", errUnauthorized, true},
		{"403 MSS.000000004", &metastudio.APIError{StatusCode: 403, Code: "MSS.000000004"}, true},
		{"400 MSS.00010008 invalid token", &metastudio.APIError{StatusCode: 400, Code: "MSS.00010008", Message: "Invalid token in the header"}, true},
		{"400 MSS.00010009 token of another project", &metastudio.APIError{StatusCode: 400, Code: "MSS.00010009", Message: "urlTenantId is not equal tokenTenantId"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := testkit.NewClock(time.Unix(0, 0))
			creds := &refreshable{refreshed: make(chan struct{}, 1)}
			guard := NewGuard(time.Minute, creds, clock.Now, log.NewNopLogger())
			guard.done(admitted(t, guard), nil)
			guard.done(admitted(t, guard), tc.err)
			if ok := testutil.ToFloat64(authOKGauge{guard}); ok != 0 {
				t.Errorf("metastudio_auth_ok %v after %s, want 0", ok, tc.name)
			}
			if tc.refresh {
				select {
				case <-creds.refreshed:
				case <-time.After(10 * time.Second):
					t.Fatal("the rejected token was not refreshed")
				}
				if err := guard.coolingDown(); err != nil {
					t.Errorf("a rejected token must be refreshed before any cool-down: %v", err)
				}
				return
			}
			if err := guard.coolingDown(); err == nil {
				t.Error("a token of another project must start the cool-down")
			}
			if n := creds.refreshes.Load(); n != 0 {
				t.Errorf("%d refreshes for a token of another project, want 0", n)
			}
		})
	}
}

// authOKGauge exports only the guard's metastudio_auth_ok, for testutil.ToFloat64.
type authOKGauge struct{ g *Guard }

func (a authOKGauge) Describe(ch chan<- *prometheus.Desc) { ch <- authOKDesc }
func (a authOKGauge) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 4)
	a.g.Collect(all)
	close(all)
	for m := range all {
		if m.Desc() == authOKDesc {
			ch <- m
		}
	}
}

// TestGuardClockSkewCostsOneCall: the API's clock is 20 minutes ahead. The first call is
// refused, and its Date moves the clock correction: the refusal is put down to the clock,
// and the next call, signed with the corrected time, goes out at once as the probe. A
// second refusal is the credentials' and cools down.
func TestGuardClockSkewCostsOneCall(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC))
	apiClock := auth.NewClock(clock.Now)
	guard := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
	guard.SetClock(apiClock)
	p := admitted(t, guard)
	apiClock.Sample(clock.Now().Add(20*time.Minute), clock.Now()) // the 401's Date
	guard.done(p, errUnauthorized)
	if err := guard.coolingDown(); err != nil {
		t.Fatalf("a refusal explained by the clock started a cool-down: %v", err)
	}
	p, ok, wait, err := guard.admit()
	if !ok || err != nil || wait != 0 || !p.probe {
		t.Fatalf("after a refusal explained by the clock: ok=%v wait=%s err=%v probe=%v; want a probe at once", ok, wait, err, p.probe)
	}
	guard.done(p, errUnauthorized) // the corrected time did not help: the key is wrong
	if err := guard.coolingDown(); err == nil {
		t.Fatal("a second refusal with the clock already corrected must cool down")
	}
	// Once the cool-down is over, a refusal with an unchanged correction is no excuse.
	clock.Advance(time.Minute)
	guard.done(admitted(t, guard), errUnauthorized)
	if err := guard.coolingDown(); err == nil {
		t.Fatal("a refusal without a change of the clock must cool down")
	}
}

// TestGuardAdoptKeepsTheCoolDown: credentials of the same identity and values (a reload
// that changed the endpoint or the rate) keep the cool-down and its doubling; Reset (new
// credentials) ends it.
func TestGuardAdoptKeepsTheCoolDown(t *testing.T) {
	clock := testkit.NewClock(time.Unix(0, 0))
	guard := NewGuard(time.Minute, &versioned{}, clock.Now, log.NewNopLogger())
	guard.done(admitted(t, guard), errUnauthorized)
	guard.Adopt(time.Minute)
	if err := guard.coolingDown(); err == nil {
		t.Fatal("Adopt ended the cool-down")
	}
	clock.Advance(time.Minute)
	guard.done(admitted(t, guard), errUnauthorized)
	if left := guard.until.Sub(clock.Now()); left != 2*time.Minute {
		t.Errorf("the cool-down after Adopt lasts %s, want 2m (doubled)", left)
	}
	guard.Reset(&versioned{}, time.Minute)
	if err := guard.coolingDown(); err != nil {
		t.Errorf("Reset (new credentials) must end the cool-down: %v", err)
	}
}

// TestGuardPermitLapsesInACoolDown: a permit that the rate held while a cool-down began,
// or while the credentials changed, no longer lets its call out.
func TestGuardPermitLapsesInACoolDown(t *testing.T) {
	clock := testkit.NewClock(time.Unix(0, 0))
	guard := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
	guard.done(admitted(t, guard), nil)
	held, other := admitted(t, guard), admitted(t, guard)
	if !guard.valid(held) {
		t.Fatal("a fresh permit is not valid")
	}
	guard.done(other, errUnauthorized)
	if guard.valid(held) {
		t.Error("a permit stays valid during a cool-down")
	}
	clock.Advance(time.Minute)
	p := admitted(t, guard)
	guard.Reset(&versioned{}, time.Minute)
	if guard.valid(p) {
		t.Error("a permit of the old credentials stays valid after Reset")
	}
}

// TestGuardWatchesEveryProjectsCredentials: one guard serves the projects of one identity
// (an IAM user in two regions: a token each). A refused token refreshes each project's,
// since the guard cannot tell whose was refused; a changed file of any of them ends the
// cool-down; and credentials that Watch no longer names are neither refreshed nor watched.
func TestGuardWatchesEveryProjectsCredentials(t *testing.T) {
	clock := testkit.NewClock(time.Unix(0, 0))
	a, b := &refreshable{refreshed: make(chan struct{}, 2)}, &refreshable{refreshed: make(chan struct{}, 2)}
	guard := NewGuard(time.Minute, a, clock.Now, log.NewNopLogger())
	guard.Watch(a, b)
	woken := make(chan struct{}, 1)
	guard.wake = func() { woken <- struct{}{} }
	guard.done(admitted(t, guard), nil)
	guard.done(admitted(t, guard), errUnauthorized)
	for _, ch := range []chan struct{}{a.refreshed, b.refreshed, woken} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("after a refused token: refreshes a=%d b=%d, want 1 each", a.refreshes.Load(), b.refreshes.Load())
		}
	}

	guard.done(admitted(t, guard), errUnauthorized) // refused again: a cool-down
	if err := guard.coolingDown(); err == nil {
		t.Fatal("a refusal right after the refresh must start the cool-down")
	}
	b.gen.Add(1) // the second project's password file was fixed
	if err := guard.coolingDown(); err != nil {
		t.Fatalf("a changed file of the second project's credentials must end the cool-down: %v", err)
	}

	guard.Watch(b) // the first project was removed
	guard.done(admitted(t, guard), nil)
	a.gen.Add(1)
	guard.done(admitted(t, guard), errUnauthorized)
	select {
	case <-b.refreshed:
	case <-time.After(10 * time.Second):
		t.Fatal("the remaining project's token was not refreshed")
	}
	<-woken
	if a.refreshes.Load() != 1 || b.refreshes.Load() != 2 {
		t.Errorf("refreshes a=%d b=%d, want 1 and 2: a credential no project uses was refreshed", a.refreshes.Load(), b.refreshes.Load())
	}
	if p := admitted(t, guard); !p.probe {
		t.Error("after the refresh, the retry must go out alone")
	}
}

// TestGuardIgnoresRefusalsOfOldTokens: calls that went out with the token that the API
// then refused keep coming back refused after the refresh; none of them starts a
// cool-down, and the probe with the new token decides.
func TestGuardIgnoresRefusalsOfOldTokens(t *testing.T) {
	guard, creds, _, woken := tokenGuard()
	guard.done(admitted(t, guard), nil)
	first, straggler := admitted(t, guard), admitted(t, guard) // both signed with the old token
	guard.done(first, errUnauthorized)
	<-creds.refreshed
	<-woken
	guard.done(straggler, errUnauthorized) // answered after the refresh
	if err := guard.coolingDown(); err != nil {
		t.Fatalf("a refusal of a call signed before the refresh started a cool-down: %v", err)
	}
	refusedRetryCoolsDown(t, guard)
}
