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
	api     API
	gen     uint64 // api's generation
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

// take takes the next piece of work for a call under p; false when there is none, or no
// client to make it with.
// r.mu is held.
func (r *Refresher) take(p permit) (call, bool) {
	if r.api == nil { // no client yet (SetAPI): the work waits for one
		return call{}, false
	}
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
			s.done <- searchResult{err: err}
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
