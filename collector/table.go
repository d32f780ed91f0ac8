package collector

import (
	"container/list"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

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
