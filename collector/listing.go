package collector

import (
	"context"
	"errors"
	"fmt"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// SearchTask documents only resource, business_id, begin_time and end_time as its query.
// Its answer says offset, limit (default 10) and count, but whether the service honours
// offset and limit, and whether offset counts rows or pages, is not documented. A listing
// therefore finds every task with the time filters alone: a window whose count exceeds the
// rows one answer delivered is narrowed until each window fits. Offset and limit are used
// only once answers have proven them honoured.

// Paging modes: how the server was seen to treat offset and limit.
const (
	pagingRows  = "rows"  // offset is a row offset, limit honoured
	pagingPages = "pages" // offset is a page index (from 0) of limit rows
	pagingNone  = "none"  // ignored, or not to be trusted: narrow the window instead
)

// pagingModes are the modes in the order metastudio_discovery_paging lists them.
var pagingModes = []string{pagingRows, pagingPages, pagingNone}

// pageLimit is the limit asked where paging is honoured.
const pageLimit = 100

// Reasons of a failed listing window, for metastudio_discovery_errors_total.
const (
	reasonNoCount        = "no_count"         // the answer has no usable count
	reasonCountBelowRows = "count_below_rows" // count is smaller than the rows delivered
	reasonRowWithoutID   = "row_without_id"
	reasonDuplicateID    = "duplicate_id" // the same task id twice in one answer
	reasonCall           = "call_failed"  // no answer: the call failed
)

// listError is a failed window: a call that failed, or an answer that is malformed.
type listError struct {
	reason string
	err    error
}

func (e *listError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *listError) Unwrap() error { return e.err }

// lister is one listing pass.
type lister struct {
	search func(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error)
	base   metastudio.SearchParams  // resources and business id
	max    int                      // discovery.max_tasks; 0: no cap
	paging string                   // what earlier answers proved; "" not known yet
	rows   func([]*metastudio.Task) // takes each answer's new rows as they come; may be nil

	seen   map[string]bool
	found  []*metastudio.Task
	missed int  // tasks counted in a millisecond that no answer delivered
	capped bool // stopped at max tasks with more to list
	calls  int
}

// full reports whether max tasks are known.
func (l *lister) full() bool { return l.max > 0 && len(l.found) >= l.max }

// query asks for the tasks that began within [lo, hi] (epoch ms, inclusive), at offset and
// limit when limit > 0, and checks the answer.
func (l *lister) query(ctx context.Context, lo, hi int64, offset, limit int) (*metastudio.TaskPage, int, error) {
	p := l.base
	p.BeginTime, p.EndTime, p.Offset, p.Limit = lo, hi, offset, limit
	l.calls++
	page, err := l.search(ctx, p)
	if err != nil {
		return nil, 0, &listError{reason: reasonCall, err: err}
	}
	count, ok := page.Count.Number()
	switch {
	case !ok || count != float64(int(count)):
		return nil, 0, &listError{reason: reasonNoCount, err: errors.New("the answer has no usable count")}
	case int(count) < len(page.Data):
		return nil, 0, &listError{reason: reasonCountBelowRows, err: fmt.Errorf("count %d is smaller than the %d rows delivered", int(count), len(page.Data))}
	}
	ids := make(map[string]bool, len(page.Data))
	for i := range page.Data {
		id := page.Data[i].TaskID.Text
		switch {
		case id == "":
			return nil, 0, &listError{reason: reasonRowWithoutID, err: fmt.Errorf("row %d has no task_id", i)}
		case ids[id]:
			return nil, 0, &listError{reason: reasonDuplicateID, err: fmt.Errorf("task %q is listed twice", id)}
		}
		ids[id] = true
	}
	return page, int(count), nil
}

// add keeps an answer's rows that are new and usable; it returns how many were new.
func (l *lister) add(page *metastudio.TaskPage) int {
	var fresh []*metastudio.Task
	for i := range page.Data {
		t := &page.Data[i]
		id := t.TaskID.Text
		if !config.ValidID(id) || l.seen[id] {
			continue
		}
		l.seen[id] = true
		fresh = append(fresh, t)
	}
	l.found = append(l.found, fresh...)
	if l.rows != nil && len(fresh) > 0 {
		l.rows(fresh)
	}
	return len(fresh)
}

// window lists the tasks that began within [lo, hi], newest first, until max tasks are
// known.
func (l *lister) window(ctx context.Context, lo, hi int64) error {
	for lo <= hi {
		if l.full() {
			l.capped = true
			return nil
		}
		limit := 0
		if l.paging == pagingRows || l.paging == pagingPages {
			limit = pageLimit
		}
		page, count, err := l.query(ctx, lo, hi, 0, limit)
		if err != nil {
			return err
		}
		l.add(page)
		if count <= len(page.Data) {
			return nil // the whole window in one answer
		}
		if limit > 0 && !echoes(page, 0, limit) {
			l.paging = pagingNone // it was honoured before, not now: trust it no more
		}
		next := 1 // the next page of pageLimit rows to ask for
		if l.paging == "" {
			if l.paging, err = l.detect(ctx, lo, hi, page, count); err != nil {
				return err
			}
			if l.paging == pagingPages {
				next = 2 // detect had pages 0 and 1
			}
		}
		if l.paging != pagingNone {
			done, err := l.pageThrough(ctx, lo, hi, count, next)
			if err != nil || done {
				return err
			}
			l.paging = pagingNone // an answer broke the rule: narrow the window instead
		}
		if lo == hi { // one millisecond holds more tasks than one answer delivers
			l.missed += count - len(page.Data)
			return nil
		}
		oldest, dated, ordered := oldestBegin(page, lo, hi)
		switch {
		case !dated: // no row says where to narrow (the server did not filter, or gave no times)
			l.missed += count - len(page.Data)
			return nil
		case !ordered:
			mid := lo + (hi-lo)/2
			if err := l.window(ctx, mid+1, hi); err != nil {
				return err
			}
			hi = mid
		case oldest < hi:
			hi = oldest // the next answer starts where this one ended (its last millisecond again)
		default: // every dated row is in the last millisecond: that one alone, then the rest
			if err := l.window(ctx, hi, hi); err != nil {
				return err
			}
			hi--
		}
	}
	return nil
}

// oldestBegin returns the oldest begin time among the rows dated within [lo, hi], whether
// there is one, and whether those rows come newest first. Rows without a begin time in the
// window are kept but say nothing about where the window may be narrowed.
func oldestBegin(page *metastudio.TaskPage, lo, hi int64) (oldest int64, dated, ordered bool) {
	oldest, ordered = hi+1, true
	for i := range page.Data {
		ms, ok := page.Data[i].BeginTime.Number()
		if !ok || ms != float64(int64(ms)) || int64(ms) < lo || int64(ms) > hi {
			continue
		}
		if int64(ms) > oldest {
			ordered = false
		}
		oldest, dated = min(oldest, int64(ms)), true
	}
	return oldest, dated, ordered
}

// detect asks the window at offset 0 and 1 with pageLimit, after an answer without them
// (first) came short of count. Paging is honoured when both answers echo the offset and
// limit asked, page 0 brings min(limit, count) rows, and offset 1 brings the rows that a
// row offset or a page index would: the second row of page 0 onwards, or rows page 0 did
// not have. Anything else is pagingNone. The answers' rows are kept either way.
func (l *lister) detect(ctx context.Context, lo, hi int64, first *metastudio.TaskPage, count int) (string, error) {
	p0, c0, err := l.query(ctx, lo, hi, 0, pageLimit)
	if err != nil {
		return "", err
	}
	l.add(p0)
	if !echoes(p0, 0, pageLimit) || c0 != count || len(p0.Data) != min(pageLimit, count) || len(p0.Data) <= len(first.Data) {
		return pagingNone, nil
	}
	p1, c1, err := l.query(ctx, lo, hi, 1, pageLimit)
	if err != nil {
		return "", err
	}
	l.add(p1)
	if !echoes(p1, 1, pageLimit) || c1 != count {
		return pagingNone, nil
	}
	in0 := make(map[string]bool, len(p0.Data))
	for i := range p0.Data {
		in0[p0.Data[i].TaskID.Text] = true
	}
	disjoint := true
	for i := range p1.Data {
		disjoint = disjoint && !in0[p1.Data[i].TaskID.Text]
	}
	switch {
	case len(p1.Data) == min(pageLimit, count-1) && len(p1.Data) > 0 && p1.Data[0].TaskID.Text == p0.Data[1].TaskID.Text:
		return pagingRows, nil
	case len(p1.Data) == min(pageLimit, max(count-pageLimit, 0)) && disjoint:
		return pagingPages, nil
	}
	return pagingNone, nil
}

// pageThrough lists a window by offset and limit from page next on. It returns true
// when the window is done, false when an answer broke the rule (no echo of the offset and
// limit asked, or only rows already known): the caller narrows the window instead.
func (l *lister) pageThrough(ctx context.Context, lo, hi int64, count, next int) (bool, error) {
	for i := next; i*pageLimit < count; i++ {
		if l.full() {
			l.capped = true
			return true, nil
		}
		offset := i
		if l.paging == pagingRows {
			offset = i * pageLimit
		}
		page, _, err := l.query(ctx, lo, hi, offset, pageLimit)
		if err != nil {
			return false, err
		}
		if !echoes(page, offset, pageLimit) || len(page.Data) == 0 {
			return false, nil
		}
		if l.add(page) == 0 {
			return false, nil
		}
	}
	return true, nil
}

// echoes reports whether an answer says the offset and limit that were asked.
func echoes(page *metastudio.TaskPage, offset, limit int) bool {
	o, ok1 := page.Offset.Number()
	n, ok2 := page.Limit.Number()
	return ok1 && ok2 && o == float64(offset) && n == float64(limit)
}
