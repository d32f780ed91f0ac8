package collector

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// API is the part of the MetaStudio client the exporter needs; tests pass a fake.
type API interface {
	ShowTask(ctx context.Context, id string) (*metastudio.Task, error)
	SearchTask(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error)
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

// ErrRateBudget is the error of a task that a scrape could not have fetched before its
// deadline (the queue ahead of it at the rate in force) and of which nothing is known.
var ErrRateBudget = errors.New("the API budget does not reach this task before the deadline")

// errNoAnswerYet is the error of a task whose call was still in flight at the scrape's
// deadline, with nothing known to serve instead. The call goes on for the next scrape.
var errNoAnswerYet = &metastudio.APIError{Operation: metastudio.OpShowTask,
	Err: fmt.Errorf("no answer before the scrape's deadline: %w", context.DeadlineExceeded)}

// entry is what the refresher knows of one watched task. Guarded by Refresher.mu.
type entry struct {
	id       string
	vals     *values       // the last values; nil when none are known
	fetched  time.Time     // when ShowTask answered them, or SearchTask listed them
	listed   bool          // the values came from discovery's listing
	err      error         // the last call's failure; nil after a success (429s aside)
	answered uint64        // the Refresher.seq of the last answer; 0: none yet
	at       time.Time     // when that answer came
	throttle error         // the last 429, for a task with no values to serve instead
	changed  chan struct{} // made by a waiter, closed at the next answer

	queue    *fifo  // the queue it waits in, while queued
	ticket   uint64 // its place there
	inflight int    // its calls in flight: one, or two across a client swap
	callGen  uint64 // the client generation of its latest call
	waiters  int    // scrapes that wait for its next answer

	unlisted *list.Element // its place among the unlisted tasks; nil when listed
	wanted   time.Time     // when a scrape or probe last asked for it
	reported string        // the failure reason last logged; "" when it was fine
}

func (e *entry) queued() bool { return e.queue != nil }

// calling reports whether a call of client generation gen is in flight for e: only such a
// call can answer a wait that began under gen.
func (e *entry) calling(gen uint64) bool { return e.inflight > 0 && e.callGen == gen }

// signal wakes the scrapes that wait for e's next answer. r.mu is held.
func (e *entry) signal() {
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// lastAnswer is when the task was last answered or listed; zero when never.
func (e *entry) lastAnswer() time.Time {
	if e.fetched.After(e.at) {
		return e.fetched
	}
	return e.at
}

// fifo is a queue of tasks. Tasks leave it lazily: a slot whose task has left, or was
// queued again since, is skipped.
type fifo struct {
	slots []slot
	head  int
	next  uint64 // the ticket of the next task queued
}

type slot struct {
	e      *entry
	ticket uint64
}

func (q *fifo) push(e *entry) {
	e.queue, e.ticket = q, q.next
	q.slots = append(q.slots, slot{e, q.next})
	q.next++
}

// peek returns the first task still queued here, dropping the slots of those that left.
func (q *fifo) peek() *entry {
	for q.head < len(q.slots) {
		s := q.slots[q.head]
		if s.e.queue == q && s.e.ticket == s.ticket {
			return s.e
		}
		q.slots[q.head] = slot{}
		q.head++
	}
	q.slots, q.head = q.slots[:0], 0
	return nil
}

func (q *fifo) pop() *entry {
	e := q.peek()
	if e != nil {
		q.slots[q.head] = slot{}
		q.head++
		e.queue = nil
		if q.head > 1024 && q.head > len(q.slots)/2 { // reuse the room at the front
			q.slots = q.slots[:copy(q.slots, q.slots[q.head:])]
			q.head = 0
		}
	}
	return e
}

// headTicket is the ticket at the head, or next when empty: tickets from it to next-1
// are at most the tasks waiting.
func (q *fifo) headTicket() uint64 {
	if e := q.peek(); e != nil {
		return e.ticket
	}
	return q.next
}

// Policy is what a scrape's config says about freshness.
type Policy struct {
	FinishedTTL time.Duration // cache.finished_ttl
	MinRefresh  time.Duration // scrape.min_refresh_interval
	Unlisted    bool          // a /probe of a task that no config lists
	// Since is a Mark taken when the scrape began (0: when Get is called): answers and
	// listings after it are fresh for the scrape.
	Since Mark
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
// however many scrapes ask for it: never-fetched tasks first, then in the order they were
// asked for, which over consecutive scrapes is stalest first. A fixed pool of
// scrape.concurrency workers makes the calls, in the queue's order, each cleared by the AK
// guard and the adaptive rate: a worker that has made a call takes the next one itself
// when it may go out at once, and one dispatcher hands out the calls that have to wait
// (for the rate, a cool-down or a probe) and those of idle workers. A call has its own
// timeout (scrape.timeout, or the guard's probe deadline) and ends with no waiter's
// departure. One Refresher lives as long as the process; reloads reconfigure it.
type Refresher struct {
	guard  *Guard
	rate   *Rate
	now    func() time.Time
	logger log.Logger
	wakeCh chan struct{}
	calls  chan call

	mu          sync.Mutex
	api         API
	gen         uint64 // the client's generation: SetAPI adds one
	concurrency int
	callTimeout time.Duration
	watched     func(id string) bool // the tasks some config lists; nil: keep all
	table       map[string]*entry
	unlisted    *list.List
	searches    []*search
	listed      queues // the tasks some config or discovery lists
	probed      queues // the unlisted tasks that /probe asked for
	probedLast  bool   // the last call taken was of an unlisted task
	seq         uint64
	inflight    int
	workers     int
	ctx         context.Context
	wg          sync.WaitGroup
}

// queues are the queues of one class of tasks: those never fetched go first, then the
// others in the order they were asked for.
type queues struct {
	unfetched, stale fifo
}

// peek returns the first task queued, or nil.
func (q *queues) peek() *entry {
	if e := q.unfetched.peek(); e != nil {
		return e
	}
	return q.stale.peek()
}

// pop takes the first task queued, or nil.
func (q *queues) pop() *entry {
	if e := q.unfetched.pop(); e != nil {
		return e
	}
	return q.stale.pop()
}

// waiting is at most the number of tasks queued.
func (q *queues) waiting() uint64 {
	return q.unfetched.next - q.unfetched.headTicket() + q.stale.next - q.stale.headTicket()
}

// ahead is at most the number of tasks queued before e, which waits in one of q.
func (q *queues) ahead(e *entry) uint64 {
	n := e.ticket - e.queue.headTicket()
	if e.queue == &q.stale {
		n += q.unfetched.next - q.unfetched.headTicket()
	}
	return n
}

// call is one unit of work for a worker. The client is the one in use when the call was
// taken: a call never goes out with a client that its permit was not given for.
type call struct {
	e       *entry  // a ShowTask, or
	search  *search // a SearchTask page
	api     API
	gen     uint64 // api's generation
	permit  permit
	timeout time.Duration
}

// search is a SearchTask page that discovery asked for.
type search struct {
	params metastudio.SearchParams
	sent   Stamp
	done   chan searchResult // buffered: the worker never blocks on a caller that left
}

type searchResult struct {
	page *metastudio.TaskPage
	sent Stamp
	err  error
}

// Stamp is when a listing call was sent: its place in the answer sequence and the time.
// A listing answers, for each task it returns, every scrape that began before it was sent.
type Stamp struct {
	seq uint64
	at  time.Time
}

// NewRefresher returns a Refresher that calls api through guard and rate. Start runs it.
func NewRefresher(api API, guard *Guard, rate *Rate, now func() time.Time, logger log.Logger) *Refresher {
	r := &Refresher{
		guard: guard, rate: rate, now: now, logger: logger,
		wakeCh: make(chan struct{}, 1), calls: make(chan call),
		api: api, concurrency: 1, callTimeout: 10 * time.Second,
		table: map[string]*entry{}, unlisted: list.New(),
	}
	guard.mu.Lock()
	guard.wake = r.wake
	guard.mu.Unlock()
	return r
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

// resize starts workers up to the concurrency; extra ones stop after their call. r.mu is held.
func (r *Refresher) resize() {
	for ; r.workers < r.concurrency; r.workers++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.work(r.ctx)
		}()
	}
}

// SetAPI replaces the client (a reload that changed the endpoint or credentials). What is
// known of the tasks survives. A wait that begins from now on is answered by this client
// only: a task whose call by the old client is still in flight may be called again by the
// new one, and the old call's answer is discarded.
func (r *Refresher) SetAPI(api API) {
	r.mu.Lock()
	r.api = api
	r.gen++
	r.mu.Unlock()
	r.wake()
}

// API returns the client in use.
func (r *Refresher) API() API {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.api
}

// SetWatched tells housekeeping which tasks are still watched.
func (r *Refresher) SetWatched(watched func(id string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watched = watched
}

func (r *Refresher) wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// Get returns what is known of ids for a scrape that starts now and waits until ctx
// ends at most. A task is fresh for it when it was answered after this start, or by
// policy (values younger than MinRefresh, a finished task within FinishedTTL or listed
// finished). The others are queued and waited for; one that cannot be reached before the
// deadline at the rate in force, or is not answered by then, is served from its last
// values. During an authentication cool-down no call is queued.
func (r *Refresher) Get(ctx context.Context, ids []string, p Policy) []result {
	results := make([]result, len(ids))
	backoff := r.guard.coolingDown()
	deadline, hasDeadline := ctx.Deadline()

	r.mu.Lock()
	start, now, gen := r.seq, r.now(), r.gen
	if p.Since > 0 {
		start = uint64(p.Since) - 1
	}
	var pending, queue []*entry
	var where []int
	for i, id := range ids {
		e := r.entry(id, p.Unlisted, now)
		switch res, ok := r.fresh(e, p, now); {
		case e.answered > start && e.err == nil && e.vals != nil: // listed since the scrape began
			results[i] = result{id: id, vals: e.vals, age: max(now.Sub(e.fetched), 0)}
		case ok:
			results[i] = res
		case backoff != nil:
			results[i] = result{id: id, err: backoff}
		default:
			e.waiters++
			if !e.queued() && !e.calling(gen) {
				queue = append(queue, e)
			}
			pending, where = append(pending, e), append(where, i)
		}
	}
	// Stalest first: over consecutive scrapes that the rate cannot cover, every task is
	// refreshed in turn.
	slices.SortStableFunc(queue, func(a, b *entry) int { return a.lastAnswer().Compare(b.lastAnswer()) })
	for _, e := range queue {
		r.enqueue(e)
	}
	r.mu.Unlock()
	if len(pending) == 0 {
		return results
	}
	r.wake()

	for _, e := range pending {
		if !r.await(ctx, e, start, gen, deadline, hasDeadline) {
			break
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range pending { // ages as of the scrape's start: 0 for values fetched for it
		e.waiters--
		if e.waiters == 0 && e.queue != nil { // nobody waits any more: it leaves the queue
			e.queue = nil
		}
		results[where[k]] = r.outcome(e, start, now)
	}
	r.evict() // what the cap spared while it was waited for
	return results
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

// reachable estimates whether a queued task's turn comes within left at the rate in force.
// The other class of tasks takes at most every other call. r.mu is held.
func (r *Refresher) reachable(e *entry, left time.Duration) bool {
	if r.rate.Held() > left { // a quota's pause or pace, or a Retry-After
		return false
	}
	limit, tokens := r.rate.Limit(), r.rate.lim.Tokens()
	if limit <= 0 {
		return true
	}
	own, other := &r.listed, &r.probed
	if e.unlisted != nil && (e.queue == &r.probed.unfetched || e.queue == &r.probed.stale) {
		own, other = other, own
	}
	ahead := own.ahead(e)
	ahead += min(other.waiting(), ahead+1)
	return (float64(ahead)+1-tokens)/limit <= left.Seconds()
}

// entry returns id's entry, making one if needed. r.mu is held.
func (r *Refresher) entry(id string, unlisted bool, now time.Time) *entry {
	e := r.table[id]
	switch {
	case e == nil:
		e = &entry{id: id}
		r.table[id] = e
		if unlisted {
			e.unlisted = r.unlisted.PushFront(e)
			r.evict()
		}
	case e.unlisted != nil && unlisted:
		r.unlisted.MoveToFront(e.unlisted)
	case e.unlisted != nil: // a config lists it now
		r.unlisted.Remove(e.unlisted)
		e.unlisted = nil
	}
	e.wanted = now
	return e
}

// evict drops the least recently probed unlisted tasks beyond maxUnlisted. A task that a
// scrape waits for or that has a call in flight stays, and so does the newest: the table
// may exceed the cap while they last. r.mu is held.
func (r *Refresher) evict() {
	over := r.unlisted.Len() - maxUnlisted
	if over <= 0 {
		return
	}
	for el := r.unlisted.Back(); over > 0 && el != nil && el != r.unlisted.Front(); {
		prev := el.Prev()
		if e := el.Value.(*entry); e.waiters == 0 && e.inflight == 0 {
			r.drop(e)
			over--
		}
		el = prev
	}
}

// drop removes an entry from the table. r.mu is held.
func (r *Refresher) drop(e *entry) {
	if e.unlisted != nil {
		r.unlisted.Remove(e.unlisted)
		e.unlisted = nil
	}
	e.queue = nil
	delete(r.table, e.id)
}

// fresh returns e's result when it needs no call for this scrape. r.mu is held.
func (r *Refresher) fresh(e *entry, p Policy, now time.Time) (result, bool) {
	switch {
	case p.MinRefresh > 0 && e.err != nil && now.Sub(e.at) < p.MinRefresh:
		return result{id: e.id, err: e.err}, true
	case e.err != nil || e.vals == nil:
		return result{}, false
	case p.MinRefresh > 0 && now.Sub(e.fetched) < p.MinRefresh,
		e.vals.finished && (e.listed || (p.FinishedTTL > 0 && now.Sub(e.fetched) < p.FinishedTTL)):
		return result{id: e.id, vals: e.vals, age: now.Sub(e.fetched)}, true
	}
	return result{}, false
}

// outcome is e's result for a scrape that started at start (the answer sequence) and now
// (the clock). r.mu is held.
func (r *Refresher) outcome(e *entry, start uint64, now time.Time) result {
	switch {
	case e.answered > start && e.err != nil:
		return result{id: e.id, err: e.err}
	case e.vals != nil: // answered for this scrape, or the last values
		return result{id: e.id, vals: e.vals, age: max(now.Sub(e.fetched), 0)}
	case e.inflight > 0:
		return result{id: e.id, err: errNoAnswerYet}
	case e.err != nil: // not reached: its last failure stands
		return result{id: e.id, err: e.err}
	case e.throttle != nil:
		return result{id: e.id, err: e.throttle}
	}
	return result{id: e.id, err: ErrRateBudget}
}

// enqueue queues a task for a call. r.mu is held.
func (r *Refresher) enqueue(e *entry) {
	q := &r.listed
	if e.unlisted != nil {
		q = &r.probed
	}
	if e.vals == nil && e.err == nil && e.answered == 0 {
		q.unfetched.push(e)
	} else {
		q.stale.push(e)
	}
}

// Search lists one page with SearchTask, cleared by the same guard and rate as ShowTask,
// and says when the call was sent. The call has its own timeout; ctx bounds only the wait.
func (r *Refresher) Search(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, Stamp, error) {
	if err := r.guard.coolingDown(); err != nil {
		return nil, Stamp{}, &metastudio.APIError{Operation: metastudio.OpSearchTask, Err: err}
	}
	s := &search{params: p, done: make(chan searchResult, 1)}
	r.mu.Lock()
	r.searches = append(r.searches, s)
	r.mu.Unlock()
	r.wake()
	select {
	case res := <-s.done:
		return res.page, res.sent, res.err
	case <-ctx.Done():
		return nil, Stamp{}, &metastudio.APIError{Operation: metastudio.OpSearchTask, Err: ctx.Err()}
	}
}

// next takes the next piece of work: a search, then a task. Unlisted tasks (/probe of ids
// no config lists) take at most every other call while listed tasks wait, so that probes
// of ever new ids cannot starve the configured and discovered tasks. r.mu is held.
func (r *Refresher) next(take bool) (*entry, *search, bool) {
	if len(r.searches) > 0 {
		s := r.searches[0]
		if take {
			r.searches = r.searches[1:]
		}
		return nil, s, true
	}
	listed, probed := r.listed.peek() != nil, r.probed.peek() != nil
	if !take || (!listed && !probed) {
		return nil, nil, listed || probed
	}
	q := &r.listed
	if probed && (!listed || !r.probedLast) {
		q = &r.probed
	}
	r.probedLast = q == &r.probed
	return q.pop(), nil, true
}

// dispatch hands the queue's work to the workers in order, each call cleared by the guard
// and the rate, until ctx ends.
func (r *Refresher) dispatch(ctx context.Context) {
	for {
		wait, ok := r.dispatchOne(ctx)
		if ok {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		var timer <-chan time.Time
		var t *time.Timer
		if wait > 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-r.wakeCh:
		case <-timer:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
	}
}

// dispatchOne sends one call to the workers if it can; otherwise it says how long to
// wait (0: until woken).
func (r *Refresher) dispatchOne(ctx context.Context) (time.Duration, bool) {
	r.mu.Lock()
	_, _, work := r.next(false)
	busy := r.inflight >= r.concurrency
	r.mu.Unlock()
	if !work || busy {
		return 0, false
	}
	p, ok, wait, err := r.guard.admit()
	if err != nil {
		r.failQueued(err)
		return wait, false
	}
	if !ok {
		return wait, false
	}
	if err := r.rate.Wait(ctx); err != nil {
		r.guard.release(p)
		return 0, false
	}
	// The rate may have held the permit for a while: a cool-down that began, or
	// credentials that changed, meanwhile void it.
	if !r.guard.valid(p) {
		r.guard.release(p)
		return 0, false
	}
	r.mu.Lock()
	c, ok := r.take(p)
	r.mu.Unlock()
	if !ok {
		r.guard.release(p)
		return 0, false
	}
	select {
	case r.calls <- c:
		return 0, true
	case <-ctx.Done():
		return 0, false
	}
}

// take takes the next piece of work for a call under p; false when there is none.
// r.mu is held.
func (r *Refresher) take(p permit) (call, bool) {
	e, s, ok := r.next(true)
	if !ok {
		return call{}, false
	}
	c := call{e: e, search: s, api: r.api, gen: r.gen, permit: p, timeout: r.callTimeout}
	if p.probe {
		c.timeout = min(maxProbeTimeout, r.callTimeout)
	}
	if e != nil {
		e.inflight++
		e.callGen = r.gen
	} else {
		r.seq++
		s.sent = Stamp{seq: r.seq, at: r.now()}
	}
	r.inflight++
	return c, true
}

// takeNow takes the next call for a worker that has just made one, when that call may go
// out at once: the guard admits it and the rate has a token at hand. A busy refresher's
// workers thus go from call to call without the dispatcher's hand-off; anything that has
// to wait (the rate, a cool-down, a probe) is left to the dispatcher. The order is the
// queue's either way. r.mu is held.
func (r *Refresher) takeNow(ctx context.Context) (call, bool) {
	if _, _, work := r.next(false); !work || r.inflight >= r.concurrency || r.workers > r.concurrency || ctx.Err() != nil {
		return call{}, false
	}
	p, ok := r.guard.admitNow()
	if !ok {
		return call{}, false
	}
	if !r.rate.Now() {
		r.guard.release(p)
		return call{}, false
	}
	c, ok := r.take(p)
	if !ok {
		r.guard.release(p)
	}
	return c, ok
}

// failQueued answers every queued task and search with err (a cool-down began).
func (r *Refresher) failQueued(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		e, s, ok := r.next(true)
		if !ok {
			return
		}
		if s != nil {
			s.done <- searchResult{err: &metastudio.APIError{Operation: metastudio.OpSearchTask, Err: err}}
			continue
		}
		r.seq++
		// Not a call's answer: at is cleared so that min_refresh_interval does not keep it.
		e.answered, e.err, e.at = r.seq, err, time.Time{}
		e.signal()
	}
}

// work makes the calls the dispatcher hands over until ctx ends or there are more
// workers than the concurrency.
func (r *Refresher) work(ctx context.Context) {
	// Each call's deadline hangs off a context of this worker's own, not off the shared
	// one, so that workers do not contend for one parent's lock at every call.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		select {
		case c := <-r.calls:
			for ok := true; ok; {
				c, ok = r.make(ctx, c)
			}
			r.mu.Lock()
			extra := r.workers > r.concurrency
			if extra {
				r.workers--
			}
			r.mu.Unlock()
			if extra {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// make runs one call and records its answer. It returns the next call to make when one
// may go out at once (takeNow).
func (r *Refresher) make(ctx context.Context, c call) (call, bool) {
	api := c.api
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	var (
		task *metastudio.Task
		vals *values
		page *metastudio.TaskPage
		err  error
	)
	if c.search != nil {
		page, err = api.SearchTask(cctx, c.search.params)
	} else if task, err = api.ShowTask(cctx, c.e.id); err == nil {
		vals = newValues(task) // the decoded task is not kept
	}
	cancel()
	r.guard.done(c.permit, err)
	if verifies(err) {
		r.rate.Answered() // past the gateway: a quota pause is over
	}
	var apiErr *metastudio.APIError
	throttled := errors.As(err, &apiErr) && apiErr.Throttled()
	if throttled {
		r.rate.Throttled(apiErr)
	}

	r.mu.Lock()
	r.inflight--
	if c.e != nil {
		c.e.inflight--
	}
	switch {
	case c.search != nil:
		c.search.done <- searchResult{page: page, sent: c.search.sent, err: err}
	case c.gen != r.gen:
		// The client was replaced while the call was in flight: its answer is discarded,
		// and those who wait look again.
		c.e.signal()
	case throttled:
		// The budget speaking, not the task failing: those who wait serve its last values,
		// and the next scrape queues it again, stalest first. No call is retried within a
		// scrape.
		e := c.e
		e.throttle = err
		e.signal()
	default:
		e := c.e
		r.seq++
		e.answered, e.at, e.err = r.seq, r.now(), err
		if err == nil {
			e.vals, e.fetched, e.listed, e.throttle = vals, e.at, false, nil
		}
		e.signal()
	}
	next, ok := r.takeNow(ctx)
	_, _, work := r.next(false)
	spare := work && r.inflight < r.concurrency // what takeNow left (a wait, a probe's fan-out)
	r.mu.Unlock()
	if spare {
		r.wake() // the dispatcher has a free worker for what is queued
	}
	return next, ok
}

// list stores what a SearchTask listing sent at sent found: for each task it returns, an
// answer to every scrape that began before, unless a call answered it since.
func (r *Refresher) list(tasks []*metastudio.Task, sent Stamp) {
	vals := make([]*values, len(tasks))
	for i, t := range tasks {
		vals[i] = newValues(t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tasks {
		e := r.entry(t.TaskID.Text, false, sent.at)
		if e.answered > sent.seq || (e.vals != nil && e.fetched.After(sent.at)) {
			continue // a ShowTask answer newer than the listing
		}
		e.vals, e.fetched, e.listed = vals[i], sent.at, true
		e.err, e.throttle, e.answered, e.at = nil, nil, sent.seq, sent.at
		e.signal()
	}
}

// staleRunning returns those of ids whose last values say they run (begun, not ended)
// and that a scrape under p would have to call for now.
func (r *Refresher) staleRunning(ids []string, p Policy) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var out []string
	for _, id := range ids {
		if e := r.table[id]; e != nil && e.vals != nil && !e.vals.finished {
			if _, ok := r.fresh(e, p, now); !ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// running reports whether the last values of a task say it has begun and not ended.
func (r *Refresher) running(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.table[id]
	return e != nil && e.vals != nil && !e.vals.finished
}

// last returns the last known values of a task.
func (r *Refresher) last(id string) (*values, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.table[id]; e != nil && e.vals != nil {
		return e.vals, true
	}
	return nil, false
}

// report records the failure reason of a task's latest result and returns the one
// before ("" when it was fine).
func (r *Refresher) report(id, reason string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.table[id]
	if e == nil {
		return ""
	}
	previous := e.reported
	e.reported = reason
	return previous
}

// Prune drops the tasks that are no longer watched (keep, or else the function that
// SetWatched gave), and the unlisted ones idle for unlistedIdle. keep is called without
// the table's lock: it may ask the refresher.
func (r *Refresher) Prune(keep func(id string) bool) {
	r.mu.Lock()
	if keep == nil {
		keep = r.watched
	}
	now := r.now()
	var listed []string
	for id, e := range r.table {
		switch {
		case e.unlisted == nil:
			listed = append(listed, id)
		case now.Sub(e.wanted) >= unlistedIdle && e.waiters == 0 && e.inflight == 0:
			r.drop(e)
		}
	}
	r.mu.Unlock()
	if keep == nil {
		return
	}
	var gone []string
	for _, id := range listed {
		if !keep(id) {
			gone = append(gone, id)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range gone {
		if e := r.table[id]; e != nil && e.unlisted == nil && e.waiters == 0 && e.inflight == 0 {
			r.drop(e)
		}
	}
}

// size is the number of tasks in the table (tests).
func (r *Refresher) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.table)
}

// waiting is the number of scrapes' waits on tasks (tests).
func (r *Refresher) waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.table {
		n += e.waiters
	}
	return n
}
