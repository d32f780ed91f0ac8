package refresh

import (
	"container/list"
	"time"
)

// entry is what the refresher knows of one watched object. Guarded by Refresher.mu.
type entry struct {
	key      Key
	vals     Value         // the last value; nil when none is known
	finished bool          // vals.Finished(), read beside the entry by every scrape
	fetched  time.Time     // when Fetch answered it, or a listing found it
	listed   bool          // the value came from a listing (Store)
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

	lane     *lane         // its project
	unlisted *list.Element // its place among the unlisted objects; nil when listed
	wanted   time.Time     // when a scrape or probe last asked for it
	note     string        // the caller's (Note)
}

func (e *entry) queued() bool { return e.queue != nil }

// keep makes vals, fetched at at (by a listing when listed), the last value of e. A nil
// value (an API that answered nothing) is no value.
func (e *entry) keep(vals Value, at time.Time, listed bool) {
	e.vals, e.finished, e.fetched, e.listed = vals, vals != nil && vals.Finished(), at, listed
}

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

// entry returns k's entry, making one if needed; nil when k's project is unknown. r.mu
// is held.
func (r *Refresher) entry(k Key, unlisted bool, now time.Time) *entry {
	e := r.table[k]
	switch {
	case e == nil:
		l := r.lanes[k.Project]
		if l == nil {
			return nil
		}
		e = &entry{key: k, lane: l}
		r.table[k] = e
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
	delete(r.table, e.key)
}

// Store files what a listing sent at sent found, keys[i] with vals[i]: for each, an
// answer to every scrape that began before, unless a call answered it since.
func (r *Refresher) Store(sent Stamp, keys []Key, vals []Value) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, k := range keys {
		e := r.entry(k, false, sent.at)
		if e == nil {
			continue // a project removed since the listing was sent
		}
		if e.answered > sent.seq || (e.vals != nil && e.fetched.After(sent.at)) {
			continue // a fetch newer than the listing
		}
		e.keep(vals[i], sent.at, true)
		e.err, e.throttle, e.answered, e.at = nil, nil, sent.seq, sent.at
		e.signal()
	}
}

// StaleRunning returns those of keys whose last value is not finished and that a scrape
// under p would have to call for now.
func (r *Refresher) StaleRunning(keys []Key, p Policy) []Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var out []Key
	for _, k := range keys {
		if e := r.table[k]; e != nil && e.vals != nil && !e.finished {
			if _, ok := r.fresh(e, p, now); !ok {
				out = append(out, k)
			}
		}
	}
	return out
}

// Running reports whether the last value of an object says it has not finished.
func (r *Refresher) Running(k Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.table[k]
	return e != nil && e.vals != nil && !e.finished
}

// Last returns the last known value of an object.
func (r *Refresher) Last(k Key) (Value, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.table[k]; e != nil && e.vals != nil {
		return e.vals, true
	}
	return nil, false
}

// Note keeps note with an object while the table holds it, and returns the one before
// ("" when none): the caller's memory of the object, such as the failure it last logged.
func (r *Refresher) Note(k Key, note string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.table[k]
	if e == nil {
		return ""
	}
	previous := e.note
	e.note = note
	return previous
}

// Prune drops the objects that are no longer watched (keep, or else the function that
// SetWatched gave), and the unlisted ones idle for unlistedIdle. keep is called without
// the table's lock: it may ask the refresher.
func (r *Refresher) Prune(keep func(k Key) bool) {
	r.mu.Lock()
	if keep == nil {
		keep = r.watched
	}
	now := r.now()
	var listed []Key
	for k, e := range r.table {
		switch {
		case e.unlisted == nil:
			listed = append(listed, k)
		case now.Sub(e.wanted) >= unlistedIdle && e.waiters == 0 && e.inflight == 0:
			r.drop(e)
		}
	}
	r.mu.Unlock()
	if keep == nil {
		return
	}
	var gone []Key
	for _, k := range listed {
		if !keep(k) {
			gone = append(gone, k)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range gone {
		if e := r.table[k]; e != nil && e.unlisted == nil && e.waiters == 0 && e.inflight == 0 {
			r.drop(e)
		}
	}
}

// Len is the number of objects in the table.
func (r *Refresher) Len() int {
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
