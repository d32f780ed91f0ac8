package refresh

import (
	"time"
)

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
