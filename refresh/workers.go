package refresh

import (
	"context"
	"errors"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// call is one unit of work for a worker. The client is the one in use when the call was
// taken: a call never goes out with a client that its permit was not given for.
type call struct {
	e       *entry  // a fetch, or
	search  *search // a listing page
	lane    *lane   // its project
	api     API
	gen     uint64 // api's generation
	guard   *Guard // what cleared it, and takes its outcome
	rate    *Rate
	permit  permit
	timeout time.Duration
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

func (r *Refresher) wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// dispatch hands the queues' work to the workers, the projects in turn and each call
// cleared by its project's guard and rate, until ctx ends.
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

// dispatchOne sends one call to the workers if it can: the first project, in turn, whose
// guard and rate let a call go out now. A project that has to wait (a cool-down, a probe
// in flight, a pause, no token) is passed over, so that it holds up no other. Otherwise
// it says how long to wait: the shortest wait of all projects (0: until woken).
func (r *Refresher) dispatchOne(ctx context.Context) (time.Duration, bool) {
	r.mu.Lock()
	r.ready = r.ready[:0]
	if r.inflight < r.concurrency {
		r.ready = r.readyLanes(r.ready)
	}
	r.mu.Unlock()
	var wait time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	for _, rd := range r.ready {
		p, ok, d, err := rd.guard.admit()
		if err != nil {
			r.failQueued(rd.guard, err)
			continue
		}
		if !ok {
			soonest(d)
			continue
		}
		if d, ok = rd.rate.Try(); !ok {
			rd.guard.release(p)
			soonest(d)
			continue
		}
		r.mu.Lock()
		c, ok := r.take(rd.l, rd.guard, p)
		r.mu.Unlock()
		if !ok {
			rd.guard.release(p)
			continue
		}
		select {
		case r.calls <- c:
			return 0, true
		case <-ctx.Done():
			return 0, false
		}
	}
	return wait, false
}

// take takes l's next piece of work for a call under p, a permit of guard; false when
// there is none, or no client to make it with, or l has another guard now. r.mu is held.
func (r *Refresher) take(l *lane, guard *Guard, p permit) (call, bool) {
	if l.removed || l.api == nil || l.guard != guard { // no client yet (SetProject): the work waits for one
		return call{}, false
	}
	e, s, ok := l.next()
	if !ok {
		return call{}, false
	}
	c := call{e: e, search: s, lane: l, api: l.api, gen: l.gen, guard: guard, rate: l.rate, permit: p, timeout: r.callTimeout}
	if p.probe {
		c.timeout = min(maxProbeTimeout, r.callTimeout)
	}
	if e != nil {
		e.inflight++
		e.callGen = l.gen
	} else {
		r.seq++
		s.sent = Stamp{seq: r.seq, at: r.now()}
	}
	r.inflight++
	r.served(l)
	return c, true
}

// takeNow takes the next call for a worker that has just made one, when that call may go
// out at once: the first project, in turn, whose guard admits it and whose rate has a
// token at hand. A busy refresher's workers thus go from call to call without the
// dispatcher's hand-off; anything that has to wait (the rate, a cool-down, a probe) is
// left to the dispatcher. The order is the same either way. r.mu is held.
func (r *Refresher) takeNow(ctx context.Context) (call, bool) {
	if r.inflight >= r.concurrency || r.workers > r.concurrency || ctx.Err() != nil {
		return call{}, false
	}
	for i := range r.ring {
		l := r.ring[(r.turn+i)%len(r.ring)]
		if l.api == nil || !l.hasWork() {
			continue
		}
		p, ok, err := l.guard.admitNow()
		if err != nil { // a cool-down began: the work that waits for it is answered now
			r.failQueuedLocked(l.guard, err)
		}
		if !ok {
			continue
		}
		if !l.rate.Now() {
			l.guard.release(p)
			continue
		}
		if c, ok := r.take(l, l.guard, p); ok {
			return c, true
		}
		l.guard.release(p)
	}
	return call{}, false
}

// failQueued answers every queued task and search of the projects that guard clears
// with err (a cool-down began). Other projects' work stays queued.
func (r *Refresher) failQueued(guard *Guard, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failQueuedLocked(guard, err)
}

// failQueuedLocked is failQueued; r.mu is held.
func (r *Refresher) failQueuedLocked(guard *Guard, err error) {
	for _, l := range r.ring {
		if l.guard != guard {
			continue
		}
		for {
			e, s, ok := l.next()
			if !ok {
				break
			}
			if s != nil {
				s.done <- searchResult{err: err}
				continue
			}
			r.seq++
			// Not a call's answer: at is cleared so that min_refresh_interval does not keep it.
			e.answered, e.err, e.at = r.seq, err, time.Time{}
			e.signal()
		}
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
		vals Value
		page any
		err  error
	)
	if c.search != nil {
		page, err = api.Search(cctx, c.search.kind, c.search.params)
	} else {
		vals, err = api.Fetch(cctx, c.e.key)
	}
	cancel()
	c.guard.done(c.permit, err)
	if verifies(err) {
		c.rate.Answered() // past the gateway: a quota pause is over
	}
	var apiErr *metastudio.APIError
	throttled := errors.As(err, &apiErr) && apiErr.Throttled()
	if throttled {
		c.rate.Throttled(apiErr)
	}

	r.mu.Lock()
	r.inflight--
	if c.e != nil {
		c.e.inflight--
	}
	switch {
	case c.search != nil:
		c.search.done <- searchResult{page: page, sent: c.search.sent, err: err}
	case c.gen != c.lane.gen || c.lane.removed:
		// The client was replaced (or the project removed) while the call was in flight:
		// its answer is discarded, and those who wait look again.
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
			e.keep(vals, e.at, false)
			e.throttle = nil
		}
		e.signal()
	}
	next, ok := r.takeNow(ctx)
	spare := r.inflight < r.concurrency && r.hasWork() // what takeNow left (a wait, a probe's fan-out)
	r.mu.Unlock()
	if spare {
		r.wake() // the dispatcher has a free worker for what is queued
	}
	return next, ok
}
