package refresh

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrUnknownProject is the error of a key or listing of a project that SetProject did not
// add.
var ErrUnknownProject = errors.New("no such project")

// ErrProjectRemoved is the error of a wait or listing whose project RemoveProject removed.
var ErrProjectRemoved = errors.New("the project was removed")

// lane is one project's share of the Refresher: its client, the guard and the rate that
// clear its calls (shared with the projects on the same AK, or AK and API host), and its
// own queues. Guarded by Refresher.mu.
type lane struct {
	name       string
	api        API    // nil until the project has a client: its work waits for one
	gen        uint64 // the client's generation: SetProject adds one
	guard      *Guard
	rate       *Rate
	searches   []*search
	listed     queues // the tasks some config or discovery lists
	probed     queues // the unlisted tasks that /probe asked for
	probedLast bool   // the last call taken was of an unlisted task
	removed    bool   // RemoveProject dropped it: the answers of its calls in flight are discarded
}

// SetProject gives the project name its client and the guard and rate that clear its
// calls, adding the project when it is new; the new ones take their turn after the
// others. Projects on the same AK share one guard, and those on the same AK and API host
// one rate: the gateway locks and throttles per AK, not per project. api may be nil: the
// project's work waits for a client. Each call replaces the client, as a reload that
// changed the endpoint or credentials does: what is known of the objects survives, and a
// wait that begins from now on is answered by this client only (an object whose call by
// the old client is still in flight may be called again by the new one, and the old
// call's answer is discarded).
func (r *Refresher) SetProject(name string, api API, guard *Guard, rate *Rate) {
	guard.mu.Lock()
	guard.wake = r.wake
	guard.mu.Unlock()
	r.mu.Lock()
	l := r.lanes[name]
	if l == nil {
		l = &lane{name: name}
		r.lanes[name] = l
		r.ring = append(r.ring, l)
	}
	l.api, l.guard, l.rate = api, guard, rate
	l.gen++
	r.mu.Unlock()
	r.wake()
}

// RemoveProject drops a project: its queue, its listings that wait and its objects. The
// scrapes and listings that wait for it get ErrProjectRemoved at once; the answers of its
// calls in flight are discarded.
func (r *Refresher) RemoveProject(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lanes[name]
	if l == nil {
		return
	}
	l.removed = true
	delete(r.lanes, name)
	i := slices.Index(r.ring, l)
	r.ring = slices.Delete(r.ring, i, i+1)
	if r.turn > i {
		r.turn--
	}
	err := fmt.Errorf("project %q: %w", name, ErrProjectRemoved)
	for _, s := range l.searches {
		s.done <- searchResult{err: err}
	}
	l.searches = nil
	for _, e := range r.table {
		if e.lane != l {
			continue
		}
		if e.waiters > 0 {
			r.seq++
			e.answered, e.err, e.at = r.seq, err, time.Time{}
			e.signal()
		}
		r.drop(e)
	}
}

// enqueue queues a task for a call. r.mu is held.
func (l *lane) enqueue(e *entry) {
	q := &l.listed
	if e.unlisted != nil {
		q = &l.probed
	}
	if e.vals == nil && e.err == nil && e.answered == 0 {
		q.unfetched.push(e)
	} else {
		q.stale.push(e)
	}
}

// hasWork reports whether the project has a search or a task queued. r.mu is held.
func (l *lane) hasWork() bool {
	return len(l.searches) > 0 || l.listed.peek() != nil || l.probed.peek() != nil
}

// next takes the project's next piece of work: a search, then a task. Unlisted tasks
// (/probe of ids no config lists) take at most every other call while listed tasks wait,
// so that probes of ever new ids cannot starve the configured and discovered tasks.
// r.mu is held.
func (l *lane) next() (*entry, *search, bool) {
	if len(l.searches) > 0 {
		s := l.searches[0]
		l.searches = l.searches[1:]
		return nil, s, true
	}
	listed, probed := l.listed.peek() != nil, l.probed.peek() != nil
	if !listed && !probed {
		return nil, nil, false
	}
	q := &l.listed
	if probed && (!listed || !l.probedLast) {
		q = &l.probed
	}
	l.probedLast = q == &l.probed
	return q.pop(), nil, true
}

// waiting is at most the number of the project's tasks queued. r.mu is held.
func (l *lane) waiting() uint64 { return l.listed.waiting() + l.probed.waiting() }

// ahead is at most the number of the project's calls before e's, which waits in one of
// its queues: those before it in its class, and as many of the other class (which takes
// at most every other call). r.mu is held.
func (l *lane) ahead(e *entry) uint64 {
	own, other := &l.listed, &l.probed
	if e.queue == &l.probed.unfetched || e.queue == &l.probed.stale {
		own, other = other, own
	}
	n := own.ahead(e)
	return n + min(other.waiting(), n+1)
}

// reachable estimates whether a queued task's turn comes within left at its project's
// rate. The projects take turns: each other project on the same rate takes at most one
// call for each of this project's. r.mu is held.
func (r *Refresher) reachable(e *entry, left time.Duration) bool {
	l := e.lane
	if l.rate.Held() > left { // a quota's pause or pace, or a Retry-After
		return false
	}
	limit, tokens := l.rate.Limit(), l.rate.lim.Tokens()
	if limit <= 0 {
		return true
	}
	ahead := l.ahead(e)
	calls := ahead
	for _, o := range r.ring {
		if o != l && o.rate == l.rate && o.api != nil {
			calls += min(o.waiting(), ahead+1)
		}
	}
	return (float64(calls)+1-tokens)/limit <= left.Seconds()
}

// ready is a project that may have a call to make, with the guard and rate that clear it.
type ready struct {
	l     *lane
	guard *Guard
	rate  *Rate
}

// readyLanes appends to buf the projects with work and a client, in the order of their
// turns. r.mu is held.
func (r *Refresher) readyLanes(buf []ready) []ready {
	for i := range r.ring {
		l := r.ring[(r.turn+i)%len(r.ring)]
		if l.api != nil && l.hasWork() {
			buf = append(buf, ready{l, l.guard, l.rate})
		}
	}
	return buf
}

// hasWork reports whether some project with a client has work queued. r.mu is held.
func (r *Refresher) hasWork() bool {
	for _, l := range r.ring {
		if l.api != nil && l.hasWork() {
			return true
		}
	}
	return false
}

// served moves the turn past l, which has just been given a call. r.mu is held.
func (r *Refresher) served(l *lane) {
	if i := slices.Index(r.ring, l); i >= 0 {
		r.turn = i + 1
	}
}
