package refresh

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
