package refresh

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// TestWaiterLeavingDoesNotCancelTheCall: the scrape that asked first leaves; the call
// goes on and answers the next one.
func TestWaiterLeavingDoesNotCancelTheCall(t *testing.T) {
	api := &fakeapi.API{Latency: 300 * time.Millisecond}
	r := startRefresher(t, api, time.Now, 0, 1, 10*time.Second)
	r.Get(context.Background(), keys("verified"), Policy{}) // the credentials are verified: no probe deadline
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r.Get(ctx, keys("a"), Policy{}) // leaves long before the answer
	res := r.Get(context.Background(), keys("a"), Policy{})
	if res[0].Err != nil || api.Total() != 2 {
		t.Errorf("second scrape: %v after %d calls; want the first call's answer", res[0].Err, api.Total())
	}
}

// TestUnlistedProbesAreCapped: probing 100,000 distinct unlisted ids leaves the table at
// its cap, and idle ones go.
func TestUnlistedProbesAreCapped(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &fakeapi.API{}
	r := startRefresher(t, api, clock.Now, 0, 8, 5*time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 100_000; i += 8 {
				r.Get(context.Background(), keys(fmt.Sprintf("u%d", i)), Policy{Unlisted: true})
			}
		})
	}
	wg.Wait()
	if n := r.Len(); n != maxUnlisted {
		t.Errorf("%d tasks in the table after 100,000 unlisted probes, want the cap %d", n, maxUnlisted)
	}
	r.Get(context.Background(), keys("listed"), Policy{})
	clock.Advance(unlistedIdle)
	r.Prune(func(k Key) bool { return k.ID == "listed" })
	if n := r.Len(); n != 1 {
		t.Errorf("%d tasks after the unlisted ones were idle for %s, want only the listed one", n, unlistedIdle)
	}
}

// TestPruneDropsUnwatchedTasks: housekeeping drops what no config lists, also when only
// /probe is used.
func TestPruneDropsUnwatchedTasks(t *testing.T) {
	api := &fakeapi.API{}
	r := startRefresher(t, api, time.Now, 0, 2, 5*time.Second)
	r.Get(context.Background(), keys("a", "b"), Policy{})
	r.SetWatched(func(k Key) bool { return k.ID == "a" })
	r.Prune(nil)
	if _, ok := r.Last(keys("b")[0]); ok || r.Len() != 1 {
		t.Errorf("after b stopped being watched: %d tasks, b known %v", r.Len(), ok)
	}
}

// TestDiscoveryNeverOverwritesNewerValues: a listing that started before a ShowTask
// answer does not replace it.
func TestDiscoveryNeverOverwritesNewerValues(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := startRefresher(t, &fakeapi.API{}, clock.Now, 0, 2, 5*time.Second)
	listedAt := Stamp{seq: uint64(r.Mark()), at: clock.Now()}
	clock.Advance(time.Second)
	r.Get(context.Background(), keys("run1"), Policy{}) // answered after the listing began
	r.Store(listedAt, keys("run1"), []Value{taskValue{fakeapi.Task("run1", true)}})
	if got, _ := r.Last(keys("run1")[0]); got.Finished() {
		t.Error("the older listing overwrote the newer ShowTask answer")
	}
	clock.Advance(time.Second)
	r.Store(Stamp{seq: uint64(r.Mark()), at: clock.Now()}, keys("run1"), []Value{taskValue{fakeapi.Task("run1", true)}})
	if got, _ := r.Last(keys("run1")[0]); !got.Finished() {
		t.Error("a newer listing must replace the values")
	}
}

// TestFailedCallHidesOldValues: a task whose call for this scrape failed reports the
// failure, whatever is known of it; one not reached keeps its last values.
func TestFailedCallHidesOldValues(t *testing.T) {
	var fail atomic.Bool
	api := &fakeapi.API{Fail: failWhile(&fail, &metastudio.APIError{Operation: "ShowTask", StatusCode: 500, Code: "MSS.000000002"})}
	r := startRefresher(t, api, time.Now, 0, 1, 5*time.Second)
	r.Get(context.Background(), keys("a"), Policy{})
	fail.Store(true)
	if res := r.Get(context.Background(), keys("a"), Policy{}); reasonOf(res[0].Err) != "MSS.000000002" {
		t.Errorf("a failed call: %+v, want its error and no values", res[0])
	}
}

// newGatedAPI is an API that reports each ShowTask's id on Called, then holds it until a
// value on Gate (or its deadline).
func newGatedAPI() *fakeapi.API {
	return &fakeapi.API{Called: make(chan string, 10_000), Gate: make(chan struct{})}
}

// verifiedOneWorker runs a Refresher with one worker on a gated API (newGatedAPI), its
// credentials verified so that no call is a probe.
func verifiedOneWorker(t *testing.T) (*fakeapi.API, *Refresher) {
	api := newGatedAPI()
	r := startRefresher(t, api, time.Now, 0, 1, 10*time.Second)
	verify(t, r)
	return api, r
}

// verify makes r's guard take the credentials as verified, so that calls fan out.
func verify(t *testing.T, r *Refresher) {
	t.Helper()
	guardOf(r).done(admitted(t, guardOf(r)), nil)
}

// TestProbeDeadlineIsItsOwn: the guard's probe has the deadline min(5 s, scrape.timeout),
// however little time the scrapes that wait for it have left.
func TestProbeDeadlineIsItsOwn(t *testing.T) {
	for _, tc := range []struct {
		callTimeout time.Duration
		want        time.Duration
	}{
		{10 * time.Second, 5 * time.Second},
		{2 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.callTimeout.String(), func(t *testing.T) {
			api := newGatedAPI()
			close(api.Gate)
			r := startRefresher(t, api, time.Now, 0, 4, tc.callTimeout)
			var wg sync.WaitGroup
			for i := range 4 { // scrapes with 100 ms left wait for the probe
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					defer cancel()
					r.Get(ctx, keys(fmt.Sprint("t", i)), Policy{})
				})
			}
			<-api.Called
			wg.Wait()
			left := api.Calls()[0].Left
			if left > tc.want || left < tc.want-time.Second {
				t.Errorf("the probe's deadline was %s away, want %s (never derived from the waiting scrapes)", left, tc.want)
			}
		})
	}
}

// TestNewClientAnswersWaitsAfterASwap: after SetProject (a reload to a new endpoint), a scrape
// is answered by the new client even while the old one's call for the same task hangs,
// and the old call's late answer is discarded.
func TestNewClientAnswersWaitsAfterASwap(t *testing.T) {
	old := newGatedAPI()
	old.Fail = func(int, string) error {
		return &metastudio.APIError{Operation: "ShowTask", StatusCode: 500, Code: "MSS.000000002"}
	}
	r := startRefresher(t, old, time.Now, 0, 2, 10*time.Second)
	verify(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	r.Get(ctx, keys("x"), Policy{}) // leaves the old client's call hanging
	cancel()
	<-old.Called

	fresh := newGatedAPI()
	close(fresh.Gate)
	r.SetProject("", tasks{fresh}, guardOf(r), rateOf(r))
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res := r.Get(ctx, keys("x"), Policy{}); res[0].Err != nil || res[0].Value == nil {
		t.Fatalf("after the swap: %v; want the new client's answer", res[0].Err)
	}
	if n := fresh.Total(); n != 1 {
		t.Fatalf("the new client was called %d times, want 1", n)
	}
	close(old.Gate) // the old call fails late
	waitFor(t, "the old call's end", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.inflight == 0
	})
	if res := r.Get(ctx, keys("x"), Policy{MinRefresh: time.Hour}); res[0].Err != nil {
		t.Errorf("the old client's late failure was recorded: %v", res[0].Err)
	}
}

// TestUnlistedProbesTakeAtMostHalf: probes of ever new unlisted ids do not starve a
// configured task: while it waits, they take at most every other call.
func TestUnlistedProbesTakeAtMostHalf(t *testing.T) {
	api, r := verifiedOneWorker(t)
	go r.Get(context.Background(), keys("c1"), Policy{})
	<-api.Called
	api.Gate <- struct{}{} // c1 has values now
	waitFor(t, "c1's answer", func() bool { _, ok := r.Last(keys("c1")[0]); return ok })

	go r.Get(context.Background(), keys("block"), Policy{}) // holds the only worker
	<-api.Called
	for i := range 6 {
		go r.Get(context.Background(), keys(fmt.Sprint("u", i)), Policy{Unlisted: true})
	}
	waitFor(t, "the probes' waits", func() bool { return r.waiting() == 7 })
	go r.Get(context.Background(), keys("c1"), Policy{}) // stale: queued behind the probes
	waitFor(t, "c1's wait", func() bool { return r.waiting() == 8 })
	var order []string
	for range 7 {
		api.Gate <- struct{}{}
		order = append(order, <-api.Called)
	}
	close(api.Gate)
	if i := slices.Index(order, "c1"); i < 0 || i > 1 {
		t.Errorf("calls after the held one: %v; the configured task must come within 2 calls", order)
	}
}

// TestEvictionSparesWaitedTasks: the cap on unlisted tasks never drops one that a probe
// waits for: the queued probe is answered, by one call.
func TestEvictionSparesWaitedTasks(t *testing.T) {
	api, r := verifiedOneWorker(t)
	go r.Get(context.Background(), keys("block"), Policy{})
	<-api.Called
	res := make(chan []Result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res <- r.Get(ctx, keys("w"), Policy{Unlisted: true})
	}()
	waitFor(t, "the probe's wait", func() bool { return r.waiting() == 2 })
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range maxUnlisted + 10 { // probes that leave at once
		r.Get(gone, keys(fmt.Sprint("u", i)), Policy{Unlisted: true})
	}
	close(api.Gate)
	got := <-res
	if got[0].Err != nil {
		t.Fatalf("the waited-for probe: %v; want its answer", got[0].Err)
	}
	if n := r.Len(); n > maxUnlisted+2 {
		t.Errorf("%d tasks in the table; the cap must still hold for tasks nobody waits for", n)
	}
}

// slowStat is credentials whose Generation (a stat of the key files) hangs once, when
// armed, until released: a slow NFS.
type slowStat struct {
	versioned
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *slowStat) Generation() uint64 {
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return s.gen.Load()
}

// TestSlowKeyFileStatHoldsUpOnlyItsCall: looking for changed key files (a stat, slow on
// NFS) holds no lock: while one hangs, the table answers and the other calls go on.
func TestSlowKeyFileStatHoldsUpOnlyItsCall(t *testing.T) {
	api := &fakeapi.API{Latency: 5 * time.Millisecond}
	creds := &slowStat{entered: make(chan struct{}), release: make(chan struct{})}
	guard := NewGuard(time.Minute, creds, time.Now, log.NewNopLogger())
	r := NewRefresher(time.Now, log.NewNopLogger())
	r.SetProject("", tasks{api}, guard, NewRate(0, 1, 4, time.Now))
	r.Configure(4, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	defer func() { cancel(); r.Wait() }()
	verify(t, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Get(context.Background(), manyKeys(200), Policy{})
	}()
	waitFor(t, "the first calls", func() bool { return api.Total() >= 2 })
	creds.armed.Store(true)
	select {
	case <-creds.entered:
	case <-done:
		t.Fatal("the scrape ended before any stat was slow")
	}
	held := api.Total()
	answered := make(chan int, 1)
	go func() { answered <- r.Len() }()
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Error("the refresher's table is locked while a key file stat hangs")
	}
	deadline := time.Now().Add(5 * time.Second)
	for api.Total() < held+4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := api.Total() - held; n < 4 {
		t.Errorf("%d calls went out while a key file stat hung, want the others to go on", n)
	}
	close(creds.release)
	<-done
}

// lockProbe is credentials whose Generation (a stat of the key files) reports whether
// its caller holds the refresher's lock: another holder lets go within milliseconds (the
// calls take 5 ms, so the lock is mostly free), the caller never.
type lockProbe struct {
	versioned
	r       *Refresher
	underMu atomic.Int64
}

func (l *lockProbe) Generation() uint64 {
	if r := l.r; r != nil {
		for range 1000 {
			if r.mu.TryLock() {
				r.mu.Unlock()
				return l.gen.Load()
			}
			time.Sleep(time.Millisecond)
		}
		l.underMu.Add(1)
	}
	return l.gen.Load()
}

// TestKeyFilesAreNotStatedUnderTheLock: no path looks for changed key files while the
// refresher's table is locked (a worker going from call to call included).
func TestKeyFilesAreNotStatedUnderTheLock(t *testing.T) {
	api := &fakeapi.API{Latency: 5 * time.Millisecond}
	creds := &lockProbe{}
	guard := NewGuard(time.Minute, creds, time.Now, log.NewNopLogger())
	r := NewRefresher(time.Now, log.NewNopLogger())
	r.SetProject("", tasks{api}, guard, NewRate(0, 1, 4, time.Now))
	r.Configure(4, 5*time.Second)
	creds.r = r
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	defer func() { cancel(); r.Wait() }()
	r.Get(context.Background(), manyKeys(40), Policy{})
	if n := creds.underMu.Load(); n > 0 {
		t.Errorf("the key files were looked at %d times under the refresher's lock", n)
	}
}

// TestQueueServesNeverFetchedThenStalest: one call at a time shows the queue's order.
func TestQueueServesNeverFetchedThenStalest(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &fakeapi.API{}
	r := startRefresher(t, api, clock.Now, 0, 1, 5*time.Second)
	for _, k := range keys("old", "mid", "new") { // answered a minute apart
		r.Get(context.Background(), []Key{k}, Policy{})
		clock.Advance(time.Minute)
	}
	api.Reset()
	r.Get(context.Background(), keys("new", "mid", "never", "old"), Policy{})
	if got := strings.Join(api.Order(), " "); got != "never old mid new" {
		t.Errorf("call order %q, want the never-fetched task first, then the stalest", got)
	}
}

// TestThrottledTaskServesItsLastValues: a 429 is the budget speaking: the task keeps its
// last values (or has none), is not called again within the scrape, and is called again
// by the next one.
func TestThrottledTaskServesItsLastValues(t *testing.T) {
	var throttle atomic.Bool
	api := &fakeapi.API{Fail: failWhile(&throttle, &metastudio.APIError{Operation: "ShowTask", StatusCode: 429, Code: "APIGW.0308"})}
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := startRefresher(t, api, clock.Now, 0, 1, 5*time.Second)
	r.Get(context.Background(), keys("a"), Policy{})
	throttle.Store(true)
	clock.Advance(time.Minute)
	res := r.Get(context.Background(), keys("a", "never"), Policy{})
	if res[0].Err != nil || res[0].Age != time.Minute || api.Total() != 3 {
		t.Errorf("throttled: %v, age %s, %d calls; want the last values a minute old and one call per task", res[0].Err, res[0].Age, api.Total())
	}
	if reasonOf(res[1].Err) != "APIGW.0308" {
		t.Errorf("throttled with nothing known: %v, want the 429", res[1].Err)
	}
	throttle.Store(false)
	if res := r.Get(context.Background(), keys("a", "never"), Policy{}); res[0].Age != 0 || res[1].Err != nil || api.Total() != 5 {
		t.Errorf("the next scrape: %+v after %d calls; want both called again", res, api.Total())
	}
}

// TestConcurrentScrapesShareCalls: a scrape that starts while another's calls are in
// flight waits for those answers instead of calling again.
func TestConcurrentScrapesShareCalls(t *testing.T) {
	api := &fakeapi.API{}
	r := startRefresher(t, api, time.Now, 0, 12, 5*time.Second)
	tasks := manyKeys(12)
	scrape(context.Background(), r, tasks) // the credentials have authenticated: both scrapes fan out
	before := api.Total()
	api.Gate = make(chan struct{}) // every call now waits until the gate opens
	var wg sync.WaitGroup
	wg.Go(func() { scrape(context.Background(), r, tasks) })
	waitFor(t, "the first scrape's 12 calls", func() bool { return api.Total()-before == 12 })
	wg.Go(func() { scrape(context.Background(), r, tasks) })
	waitFor(t, "the second scrape to wait on them", func() bool { return r.waiting() == 24 })
	close(api.Gate)
	wg.Wait()
	if n := api.Total() - before; n != 12 {
		t.Errorf("two concurrent scrapes of 12 tasks made %d calls, want 12", n)
	}
}

// TestMinRefreshCountsFromTheScrapesStart: a scrape that waited (for a listing) before it
// asks for its tasks finds fresh what was fresh when it began.
func TestMinRefreshCountsFromTheScrapesStart(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	api := &fakeapi.API{}
	r := startRefresher(t, api, clock.Now, 0, 1, 5*time.Second)
	r.Get(context.Background(), keys("run1"), Policy{})
	clock.Advance(time.Second)
	start := clock.Now()
	clock.Advance(1500 * time.Millisecond) // the scrape waited for a listing
	p := Policy{MinRefresh: 1900 * time.Millisecond, Start: start}
	if res := r.Get(context.Background(), keys("run1"), p); api.Total() != 1 || res[0].Err != nil || res[0].Age != time.Second {
		t.Errorf("%d calls, age %s; want the values fetched 1 s before the scrape began, no call", api.Total(), res[0].Age)
	}
	p.Start = time.Time{}
	if r.Get(context.Background(), keys("run1"), p); api.Total() != 2 {
		t.Errorf("%d calls; without the scrape's start the values are 2.5 s old and need a call", api.Total())
	}
}

// TestAnAnswerWithNoValue: an API that answers a fetch with neither a value nor an error
// leaves the object without a value; nothing panics, and the scrape is answered.
func TestAnAnswerWithNoValue(t *testing.T) {
	r := startProjects(t, time.Now, 2, time.Second)
	r.SetProject("", silentAPI{}, NewGuard(time.Minute, nil, time.Now, log.NewNopLogger()), NewRate(0, 1, 2, time.Now))
	for _, res := range scrape(context.Background(), r, manyKeys(3)) {
		if res.Value != nil {
			t.Errorf("%v: a value %v from an answer that had none", res.Key, res.Value)
		}
	}
	if r.Running(manyKeys(1)[0]) {
		t.Error("an object with no value is reported running")
	}
}
