package refresh

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
)

// startProjects runs a Refresher with no project until the test ends; the test adds them.
func startProjects(t *testing.T, now func() time.Time, concurrency int, timeout time.Duration) *Refresher {
	t.Helper()
	r := NewRefresher(now, log.NewNopLogger())
	r.Configure(concurrency, timeout)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	t.Cleanup(func() {
		cancel()
		r.Wait()
	})
	return r
}

// projectKeys returns n task keys of project, named prefix0, prefix1, ….
func projectKeys(project, prefix string, n int) []Key {
	out := make([]Key, n)
	for i := range out {
		out[i] = Key{Project: project, Kind: "task", ID: fmt.Sprintf("%s%d", prefix, i)}
	}
	return out
}

// receive returns what ch gives, failing the test if nothing comes within 10 s.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer within 10 s", what)
		panic("unreachable")
	}
}

// verifiedGuard is a guard whose credentials a call has verified, so that calls fan out.
func verifiedGuard(t *testing.T, now func() time.Time) *Guard {
	g := NewGuard(time.Minute, nil, now, log.NewNopLogger())
	g.done(admitted(t, g), nil)
	return g
}

// TestSmallProjectIsRefreshedEveryScrape: a project of 10,000 tasks and one of 5 share a
// rate of 20/s, far below what the big one asks for. The projects take turns, so the 5
// tasks are called in every scrape, however many of the big one's wait before them.
func TestSmallProjectIsRefreshedEveryScrape(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := startProjects(t, clock.Now, 4, 5*time.Second)
	guard, rate := verifiedGuard(t, clock.Now), NewRate(20, 1, 4, clock.Now) // one AK, one host
	big, small := &fakeapi.API{}, &fakeapi.API{}
	r.SetProject("big", tasks{big}, guard, rate)
	r.SetProject("small", tasks{small}, guard, rate)
	smallKeys := projectKeys("small", "s", 5)
	all := append(projectKeys("big", "b", 10_000), smallKeys...) // the big one's queued first

	for n := 1; n <= 3; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second) // 20 calls at most
		res := scrape(ctx, r, all)
		cancel()
		for i, k := range smallKeys {
			if got := small.PerID()[k.ID]; got != n {
				t.Errorf("scrape %d: %s was called %d times, want %d (%v)", n, k, got, n, res[len(res)-5+i].Err)
			}
		}
		if b := big.Total(); b == 0 || b > 30*n {
			t.Errorf("after scrape %d: %d calls of the big project, want some and at most the rate's", n, b)
		}
		clock.Advance(15 * time.Second) // the next scrape
	}
}

// TestReachableCountsTheProjectsOnTheSameRate: the estimate of a queued task's turn
// counts the calls of the projects that share its rate (one for each of its own at most),
// and none of a project on another rate.
func TestReachableCountsTheProjectsOnTheSameRate(t *testing.T) {
	r := NewRefresher(time.Now, log.NewNopLogger()) // not started: nothing leaves the queues
	guard, shared := NewGuard(time.Minute, nil, time.Now, log.NewNopLogger()), NewRate(10, 1, 1, time.Now)
	shared.Now() // the one token is spent
	api := tasks{&fakeapi.API{}}
	r.SetProject("a", api, guard, shared)
	r.SetProject("b", api, guard, shared)
	r.SetProject("other", api, guard, NewRate(10, 1, 1, time.Now))
	r.mu.Lock()
	defer r.mu.Unlock()
	queue := func(k Key) *entry {
		e := r.entry(k, false, time.Now())
		e.lane.enqueue(e)
		return e
	}
	for _, k := range projectKeys("a", "a", 10) {
		queue(k)
	}
	for _, k := range projectKeys("other", "o", 100) {
		queue(k)
	}
	var sixth *entry
	for i, k := range projectKeys("b", "b", 10) {
		if e := queue(k); i == 5 {
			sixth = e
		}
	}
	// b's sixth task: 5 of b's own before it, and 6 of a's; 12 calls at 10/s.
	if r.reachable(sixth, time.Second) {
		t.Error("a turn 1.2 s away is taken as reachable within 1 s: the other project on the rate is not counted")
	}
	if !r.reachable(sixth, 1300*time.Millisecond) {
		t.Error("a turn 1.2 s away is taken as unreachable within 1.3 s: a project on another rate is counted")
	}
}

// TestSharedGuardRefusesOnceForAllItsProjects: two projects on one AK share its guard. With
// a wrong key, one call is refused in all until the cool-down ends, and the cool-down
// fails only their work: a third project, on a good key, is served all along, also while
// the refused call is in flight and after.
func TestSharedGuardRefusesOnceForAllItsProjects(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	r := startProjects(t, clock.Now, 4, 5*time.Second)
	wrong := NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger())
	refuse := func(int, string) error { return errUnauthorized }
	a := &fakeapi.API{Fail: refuse, Gate: make(chan struct{})}
	b := &fakeapi.API{Fail: refuse, Gate: make(chan struct{})}
	good := &fakeapi.API{Gate: make(chan struct{})}
	rate := NewRate(0, 1, 4, clock.Now)
	r.SetProject("a", tasks{a}, wrong, rate)
	r.SetProject("b", tasks{b}, wrong, rate)
	r.SetProject("good", tasks{good}, NewGuard(time.Minute, nil, clock.Now, log.NewNopLogger()), NewRate(0, 1, 4, clock.Now))
	refusedCalls := func() int { return a.Total() + b.Total() }
	wrongKeys := append(projectKeys("a", "a", 10), projectKeys("b", "b", 10)...)
	goodKeys := projectKeys("good", "g", 10)

	wrongDone := make(chan []Result, 1)
	go func() { wrongDone <- scrape(context.Background(), r, wrongKeys) }()
	waitFor(t, "the wrong key's probe", func() bool { return a.InFlight()+b.InFlight() == 1 })
	goodDone := make(chan []Result, 1)
	go func() { goodDone <- scrape(context.Background(), r, goodKeys) }()
	waitFor(t, "the good key's probe beside it", func() bool { return good.InFlight() == 1 })
	good.Gate <- struct{}{} // verified: the good project fans out to the workers left
	waitFor(t, "the good project's calls", func() bool { return good.InFlight() == 3 })

	close(a.Gate) // the probe is refused: the cool-down begins
	close(b.Gate)
	for _, res := range receive(t, wrongDone, "the wrong key's scrape") {
		if !errors.Is(res.Err, ErrAuthBackoff) && !refused(res.Err) {
			t.Errorf("%s: %v, want the refusal or the cool-down", res.Key, res.Err)
		}
	}
	close(good.Gate) // the good project's queue is still there, and answers
	for _, res := range receive(t, goodDone, "the good key's scrape") {
		if res.Err != nil {
			t.Errorf("%s: %v; another key's cool-down failed it", res.Key, res.Err)
		}
	}

	for range 3 { // scrapes during the cool-down
		clock.Advance(15 * time.Second)
		for _, res := range scrape(context.Background(), r, wrongKeys) {
			if !errors.Is(res.Err, ErrAuthBackoff) {
				t.Fatalf("%s during the cool-down: %v", res.Key, res.Err)
			}
		}
		before := good.Total()
		for _, res := range scrape(context.Background(), r, goodKeys) {
			if res.Err != nil {
				t.Fatalf("%s during another key's cool-down: %v", res.Key, res.Err)
			}
		}
		if n := good.Total() - before; n != len(goodKeys) {
			t.Fatalf("%d calls of the good project during another key's cool-down, want %d", n, len(goodKeys))
		}
	}
	if n := refusedCalls(); n != 1 {
		t.Errorf("%d calls refused before the cool-down ended, want 1 for both projects", n)
	}
	clock.Advance(time.Minute) // over: one probe, refused again
	scrape(context.Background(), r, wrongKeys)
	if n := refusedCalls(); n != 2 {
		t.Errorf("%d calls refused after the cool-down, want 2: one lone probe more", n)
	}
}

// TestWaitingProjectHoldsUpNoOther: a project that has to wait, because its probe hangs
// until its timeout or because its rate has no token, does not stop another project's
// calls from going out, nor from fanning out to the workers it leaves free.
func TestWaitingProjectHoldsUpNoOther(t *testing.T) {
	for _, tc := range []struct {
		name string
		slow func(t *testing.T) (*fakeapi.API, *Guard, *Rate)
		free int // the workers the slow project leaves
	}{
		{"a probe that hangs", func(t *testing.T) (*fakeapi.API, *Guard, *Rate) {
			api := &fakeapi.API{Gate: make(chan struct{})} // until the call's timeout
			return api, NewGuard(time.Minute, nil, time.Now, log.NewNopLogger()), NewRate(0, 1, 4, time.Now)
		}, 3},
		{"a rate with no token", func(t *testing.T) (*fakeapi.API, *Guard, *Rate) {
			return &fakeapi.API{}, verifiedGuard(t, time.Now), NewRate(0.2, 0.2, 1, time.Now) // one call per 5 s
		}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startProjects(t, time.Now, 4, 5*time.Second)
			slow, guard, rate := tc.slow(t)
			fast := &fakeapi.API{Latency: 50 * time.Millisecond}
			r.SetProject("slow", tasks{slow}, guard, rate)
			r.SetProject("fast", tasks{fast}, verifiedGuard(t, time.Now), NewRate(0, 1, 4, time.Now))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var slowDone atomic.Bool
			go func() {
				scrape(ctx, r, projectKeys("slow", "s", 10))
				slowDone.Store(true)
			}()
			waitFor(t, "the slow project's first call", func() bool { return slow.Total() == 1 })

			fastCtx, fastCancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer fastCancel()
			for _, res := range scrape(fastCtx, r, projectKeys("fast", "f", 30)) {
				if res.Err != nil {
					t.Fatalf("%s: %v while the other project waits", res.Key, res.Err)
				}
			}
			if n, most := fast.Total(), fast.MaxInFlight(); n != 30 || most != tc.free {
				t.Errorf("%d calls of the fast project, at most %d in flight; want 30 and %d", n, most, tc.free)
			}
			if slowDone.Load() || slow.Total() != 1 {
				t.Errorf("the slow project made %d calls (done: %v) meanwhile; the test did not make it wait", slow.Total(), slowDone.Load())
			}
		})
	}
}

// TestRemoveProject: removing a project wakes its scrapes and listings that wait, with
// ErrProjectRemoved, drops its tasks from the table, discards the answer of its call in
// flight, and leaves the other projects alone.
func TestRemoveProject(t *testing.T) {
	r := startProjects(t, time.Now, 2, 10*time.Second)
	gone := &fakeapi.API{Gate: make(chan struct{})}
	kept := &fakeapi.API{}
	r.SetProject("gone", tasks{gone}, NewGuard(time.Minute, nil, time.Now, log.NewNopLogger()), NewRate(0, 1, 2, time.Now))
	r.SetProject("kept", tasks{kept}, NewGuard(time.Minute, nil, time.Now, log.NewNopLogger()), NewRate(0, 1, 2, time.Now))
	keptKeys := projectKeys("kept", "k", 3)
	scrape(context.Background(), r, keptKeys)

	waited := make(chan []Result, 1)
	go func() { waited <- scrape(context.Background(), r, projectKeys("gone", "g", 5)) }()
	waitFor(t, "the probe in flight", func() bool { return gone.InFlight() == 1 })
	listed := make(chan error, 1)
	go func() {
		_, _, err := r.Search(context.Background(), "gone", "task", nil)
		listed <- err
	}()
	waitFor(t, "the listing queued", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.lanes["gone"].searches) == 1
	})
	if n := r.Len(); n != 8 {
		t.Fatalf("%d tasks in the table, want 8", n)
	}

	r.RemoveProject("gone")
	for _, res := range receive(t, waited, "the scrape of the removed project") {
		if !errors.Is(res.Err, ErrProjectRemoved) {
			t.Errorf("%s: %v, want ErrProjectRemoved", res.Key, res.Err)
		}
	}
	if err := receive(t, listed, "the listing of the removed project"); !errors.Is(err, ErrProjectRemoved) {
		t.Errorf("the listing: %v, want ErrProjectRemoved", err)
	}
	if n := r.Len(); n != 3 {
		t.Fatalf("%d tasks in the table after the removal, want the other project's 3", n)
	}
	close(gone.Gate) // the call in flight answers late
	waitFor(t, "the call's end", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.inflight == 0
	})
	if n := r.Len(); n != 3 {
		t.Errorf("%d tasks after the late answer, want 3: it is discarded", n)
	}
	if res := scrape(context.Background(), r, projectKeys("gone", "g", 1)); !errors.Is(res[0].Err, ErrUnknownProject) {
		t.Errorf("a task of the removed project: %v, want ErrUnknownProject", res[0].Err)
	}
	if _, _, err := r.Search(context.Background(), "gone", "task", nil); !errors.Is(err, ErrUnknownProject) {
		t.Errorf("a listing of the removed project: %v, want ErrUnknownProject", err)
	}
	for _, res := range scrape(context.Background(), r, keptKeys) {
		if res.Err != nil {
			t.Errorf("%s of the other project: %v", res.Key, res.Err)
		}
	}
	if n := kept.Total(); n != 6 {
		t.Errorf("%d calls of the other project, want 6", n)
	}
}
