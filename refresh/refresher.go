// Package refresh makes every API call of the process and keeps what they answered.
//
// Scrapes ask a Refresher for objects by Key (a project, a kind and an id) as of their
// start, and wait on their own deadline; the Refresher queues what is not fresh enough
// once, however many scrapes ask, and a fixed pool of workers makes the calls, each
// project's in its queue's order and the projects in turn, each call cleared by its
// project's AK guard (Guard) and adaptive rate (Rate), which the projects on the same AK
// share. What it keeps of an object is an opaque Value that the API's Fetch built (the
// caller decides what that is), which says whether the object is finished; listings
// (Search) go through the same queue, guard and rate, and Store files what they found.
// The package knows nothing of the exposition.
package refresh

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
)

// Key names one object: its project (SetProject), its kind (the API that reads it, such
// as "task") and its id. Objects of every kind of a project share its queue, rate and
// guard.
type Key struct {
	Project, Kind, ID string
}

// String writes the key as project/kind/id, or kind/id for the project "", for logs.
func (k Key) String() string {
	if k.Project == "" {
		return k.Kind + "/" + k.ID
	}
	return k.Project + "/" + k.Kind + "/" + k.ID
}

// Value is what the Refresher keeps of an object's answer, built by the API's Fetch (or
// given to Store); the Refresher only asks whether the object is finished (cache.
// finished_ttl applies to finished ones, and listed finished ones need no call).
type Value interface {
	Finished() bool
}

// API makes the calls of one project's client (an endpoint and its credentials).
type API interface {
	// Fetch reads one object and decodes what the Refresher keeps of it.
	Fetch(ctx context.Context, k Key) (Value, error)
	// Search lists one page of a kind's objects; params and the page are the caller's.
	Search(ctx context.Context, kind string, params any) (any, error)
}

// Result is what a scrape gets for one key: a value and its age, or an error.
type Result struct {
	Key   Key
	Value Value         // nil when Err is set
	Age   time.Duration // how old the value is; 0 for a call made for this scrape
	Err   error         // set when the scrape has no value to show
}

// Bounds of the task table.
const (
	// maxUnlisted caps the tasks that /probe asked for although no config lists them
	// (probe.allow_unlisted); the least recently probed go first.
	maxUnlisted = 1000
	// unlistedIdle is how long such a task is kept after it was last probed.
	unlistedIdle = 15 * time.Minute
	// housekeepingEvery is how often tasks that are no longer watched are dropped, also
	// when no /metrics scrape comes (a deployment that only probes).
	housekeepingEvery = 30 * time.Second
)

// ErrRateBudget is the error of an object that a scrape could not have fetched before its
// deadline (the queue ahead of it at the rate in force) and of which nothing is known.
var ErrRateBudget = errors.New("the API budget does not reach this task before the deadline")

// ErrNoAnswerYet is the error of an object whose call was still in flight at the scrape's
// deadline, with nothing known to serve instead. The call goes on for the next scrape.
var ErrNoAnswerYet = fmt.Errorf("no answer before the scrape's deadline: %w", context.DeadlineExceeded)

// Policy is what a scrape's config says about freshness.
type Policy struct {
	FinishedTTL time.Duration // cache.finished_ttl
	MinRefresh  time.Duration // scrape.min_refresh_interval
	Unlisted    bool          // a /probe of a task that no config lists
	// Since is a Mark taken when the scrape began (0: when Get is called): answers and
	// listings after it are fresh for the scrape.
	Since Mark
	// Start is when the scrape began (zero: when Get is called): MinRefresh counts from it,
	// so that a scrape that waited for a listing first does not find values stale that
	// were fresh when it began.
	Start time.Time
}

// Mark is a point in the answer sequence.
type Mark uint64

// Mark returns the point of now in the answer sequence, for Policy.Since.
func (r *Refresher) Mark() Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Mark(r.seq + 1)
}

// Refresher owns the task table and makes every MetaStudio call of the process. Scrapes
// (/metrics, /probe) ask it for their tasks as of their start and wait on their own
// deadline; they never plan calls. A task that is not fresh enough is queued once,
// however many scrapes ask for it, in its project's queue: never-fetched tasks first,
// then in the order they were asked for, which over consecutive scrapes is stalest first.
// A fixed pool of scrape.concurrency workers makes the calls of every project: the
// projects with work take turns, one call each, and each call is cleared by its project's
// AK guard and adaptive rate. A project that has to wait (for its rate, a cool-down or a
// probe) holds up no other. A worker that has made a call takes the next one itself when
// it may go out at once, and one dispatcher hands out the calls that had to wait and
// those of idle workers. A call has its own timeout (scrape.timeout, or the guard's probe
// deadline) and ends with no waiter's departure. One Refresher lives as long as the
// process; reloads reconfigure it.
type Refresher struct {
	now    func() time.Time
	logger log.Logger
	wakeCh chan struct{}
	calls  chan call
	ready  []ready // the dispatcher's own: the projects that may have a call to make

	mu          sync.Mutex
	lanes       map[string]*lane // by project
	ring        []*lane          // the projects in the order they take turns
	turn        int              // the place in ring of the project whose turn is next
	concurrency int
	callTimeout time.Duration
	watched     func(k Key) bool // the objects some config lists; nil: keep all
	table       map[Key]*entry
	unlisted    *list.List
	seq         uint64
	inflight    int
	workers     int
	ctx         context.Context
	wg          sync.WaitGroup
}

// search is a listing page that a caller asked for.
type search struct {
	kind   string
	params any
	sent   Stamp
	done   chan searchResult // buffered: the worker never blocks on a caller that left
}

type searchResult struct {
	page any
	sent Stamp
	err  error
}

// Stamp is when a listing call was sent: its place in the answer sequence and the time.
// A listing answers, for each task it returns, every scrape that began before it was sent.
type Stamp struct {
	seq uint64
	at  time.Time
}

// NewRefresher returns a Refresher with no project yet (SetProject adds them). Start runs it.
func NewRefresher(now func() time.Time, logger log.Logger) *Refresher {
	return &Refresher{
		now: now, logger: logger,
		wakeCh: make(chan struct{}, 1), calls: make(chan call),
		lanes: map[string]*lane{}, concurrency: 1, callTimeout: 10 * time.Second,
		table: map[Key]*entry{}, unlisted: list.New(),
	}
}

// Start runs the dispatcher, the workers and the housekeeping until ctx ends; Wait waits
// for them to stop.
func (r *Refresher) Start(ctx context.Context) {
	r.mu.Lock()
	r.ctx = ctx
	r.resize()
	r.mu.Unlock()
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.dispatch(ctx)
	}()
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(housekeepingEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.Prune(nil)
			case <-ctx.Done():
				return
			}
		}
	}()
}

// Wait waits until the goroutines that Start started have stopped.
func (r *Refresher) Wait() { r.wg.Wait() }

// Configure sets the calls in flight in the whole process and each call's timeout.
func (r *Refresher) Configure(concurrency int, callTimeout time.Duration) {
	r.mu.Lock()
	r.concurrency, r.callTimeout = max(concurrency, 1), callTimeout
	if r.ctx != nil {
		r.resize()
	}
	r.mu.Unlock()
	r.wake()
}

// Now is the Refresher's clock.
func (r *Refresher) Now() time.Time { return r.now() }

// SetWatched tells housekeeping which objects are still watched.
func (r *Refresher) SetWatched(watched func(k Key) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watched = watched
}

// Get returns what is known of ids for a scrape that starts now and waits until ctx
// ends at most. A task is fresh for it when it was answered after this start, or by
// policy (values younger than MinRefresh, a finished task within FinishedTTL or listed
// finished). The others are queued and waited for; one that cannot be reached before the
// deadline at the rate in force, or is not answered by then, is served from its last
// values. During an authentication cool-down of a key's project no call is queued for
// it. A key of a project that SetProject did not add gets ErrUnknownProject.
func (r *Refresher) Get(ctx context.Context, keys []Key, p Policy) []Result {
	results := make([]Result, len(keys))
	cooling := r.coolingDown(keys)
	deadline, hasDeadline := ctx.Deadline()

	r.mu.Lock()
	start, now := r.seq, r.now()
	if p.Since > 0 {
		start = uint64(p.Since) - 1
	}
	freshAt := now
	if !p.Start.IsZero() && p.Start.Before(now) {
		freshAt = p.Start
	}
	var pending []waiting
	var queue []*entry
	project, backoff := "", cooling[""]
	for i, k := range keys {
		if k.Project != project {
			project, backoff = k.Project, cooling[k.Project]
		}
		e := r.entry(k, p.Unlisted, now)
		if e == nil {
			results[i] = Result{Key: k, Err: fmt.Errorf("project %q: %w", k.Project, ErrUnknownProject)}
			continue
		}
		switch res, ok := r.fresh(e, p, freshAt); {
		case e.answered > start && e.err == nil && e.vals != nil: // listed since the scrape began
			results[i] = Result{Key: k, Value: e.vals, Age: max(now.Sub(e.fetched), 0)}
		case ok:
			results[i] = res
		case backoff != nil:
			results[i] = Result{Key: k, Err: backoff}
		default:
			e.waiters++
			gen := e.lane.gen // the wait is answered by the project's client in place now
			if !e.queued() && !e.calling(gen) {
				queue = append(queue, e)
			}
			pending = append(pending, waiting{e, gen, i})
		}
	}
	// Stalest first: over consecutive scrapes that the rate cannot cover, every task is
	// refreshed in turn.
	slices.SortStableFunc(queue, func(a, b *entry) int { return a.lastAnswer().Compare(b.lastAnswer()) })
	for _, e := range queue {
		e.lane.enqueue(e)
	}
	r.mu.Unlock()
	if len(pending) == 0 {
		return results
	}
	r.wake()

	for _, w := range pending {
		if !r.await(ctx, w.e, start, w.gen, deadline, hasDeadline) {
			break
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range pending { // ages as of the scrape's start: 0 for values fetched for it
		e := w.e
		e.waiters--
		if e.waiters == 0 && e.queue != nil { // nobody waits any more: it leaves the queue
			e.queue = nil
		}
		results[w.at] = r.outcome(e, start, now)
	}
	r.evict() // what the cap spared while it was waited for
	return results
}

// waiting is a Get's wait for one entry: the generation of its project's client when the
// wait began, and the place of its result.
type waiting struct {
	e   *entry
	gen uint64
	at  int
}

// coolingDown returns, for each project among keys whose guard cools down, the error to
// answer its keys with. The guards look at their key files under no lock of the
// refresher's, and a guard that several projects share is asked once.
func (r *Refresher) coolingDown(keys []Key) map[string]error {
	guards := map[string]*Guard{}
	r.mu.Lock()
	for i, k := range keys {
		if i > 0 && k.Project == keys[i-1].Project {
			continue
		}
		if l := r.lanes[k.Project]; l != nil {
			guards[k.Project] = l.guard
		}
	}
	r.mu.Unlock()
	var out map[string]error
	asked := map[*Guard]error{}
	for project, g := range guards {
		err, ok := asked[g]
		if !ok {
			err = g.coolingDown()
			asked[g] = err
		}
		if err != nil {
			if out == nil {
				out = map[string]error{}
			}
			out[project] = err
		}
	}
	return out
}

// await waits for e's answer after start by the client of generation gen. It returns
// false when ctx ended.
func (r *Refresher) await(ctx context.Context, e *entry, start, gen uint64, deadline time.Time, hasDeadline bool) bool {
	r.mu.Lock()
	if e.answered > start || (!e.queued() && !e.calling(gen)) {
		r.mu.Unlock()
		return true
	}
	if hasDeadline && e.queued() && !r.reachable(e, time.Until(deadline)) {
		r.mu.Unlock()
		return true // its turn comes after the deadline: serve the last values now
	}
	if e.changed == nil {
		e.changed = make(chan struct{})
	}
	ch := e.changed
	r.mu.Unlock()
	select {
	case <-ch:
		return r.await(ctx, e, start, gen, deadline, hasDeadline)
	case <-ctx.Done():
		return false
	}
}

// fresh returns e's result when it needs no call for this scrape. r.mu is held.
func (r *Refresher) fresh(e *entry, p Policy, now time.Time) (Result, bool) {
	switch {
	case p.MinRefresh > 0 && e.err != nil && now.Sub(e.at) < p.MinRefresh:
		return Result{Key: e.key, Err: e.err}, true
	case e.err != nil || e.vals == nil:
		return Result{}, false
	case p.MinRefresh > 0 && now.Sub(e.fetched) < p.MinRefresh,
		e.finished && (e.listed || (p.FinishedTTL > 0 && now.Sub(e.fetched) < p.FinishedTTL)):
		return Result{Key: e.key, Value: e.vals, Age: max(now.Sub(e.fetched), 0)}, true
	}
	return Result{}, false
}

// outcome is e's result for a scrape that started at start (the answer sequence) and now
// (the clock). r.mu is held.
func (r *Refresher) outcome(e *entry, start uint64, now time.Time) Result {
	switch {
	case e.answered > start && e.err != nil:
		return Result{Key: e.key, Err: e.err}
	case e.vals != nil: // answered for this scrape, or the last values
		return Result{Key: e.key, Value: e.vals, Age: max(now.Sub(e.fetched), 0)}
	case e.inflight > 0:
		return Result{Key: e.key, Err: ErrNoAnswerYet}
	case e.err != nil: // not reached: its last failure stands
		return Result{Key: e.key, Err: e.err}
	case e.throttle != nil:
		return Result{Key: e.key, Err: e.throttle}
	}
	return Result{Key: e.key, Err: ErrRateBudget}
}

// Search lists one page of kind with the project's API's Search, cleared by the same
// guard and rate as every call of the project, and says when the call was sent. The call
// has its own timeout; ctx bounds only the wait (its error is then ctx's).
func (r *Refresher) Search(ctx context.Context, project, kind string, params any) (any, Stamp, error) {
	r.mu.Lock()
	l := r.lanes[project]
	var guard *Guard
	if l != nil {
		guard = l.guard
	}
	r.mu.Unlock()
	if l == nil {
		return nil, Stamp{}, fmt.Errorf("project %q: %w", project, ErrUnknownProject)
	}
	if err := guard.coolingDown(); err != nil {
		return nil, Stamp{}, err
	}
	s := &search{kind: kind, params: params, done: make(chan searchResult, 1)}
	r.mu.Lock()
	removed := l.removed
	if !removed {
		l.searches = append(l.searches, s)
	}
	r.mu.Unlock()
	if removed {
		return nil, Stamp{}, fmt.Errorf("project %q: %w", project, ErrProjectRemoved)
	}
	r.wake()
	select {
	case res := <-s.done:
		return res.page, res.sent, res.err
	case <-ctx.Done():
		return nil, Stamp{}, ctx.Err()
	}
}
