package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// searchQuery is SearchTask's parsed query.
type searchQuery struct {
	resources     []string
	begin, end    int64
	hasBegin      bool
	hasEnd        bool
	offset, limit int // as the paging mode reads them
}

var errBadParam = errors.New("invalid parameter")

// parseSearch reads SearchTask's query: resource (repeated or comma-separated),
// begin_time and end_time (epoch ms), and offset and limit as paging reads them (not at
// all for PagingIgnored). A value that is not a number, or a negative offset or limit, is
// an error.
func parseSearch(q url.Values, paging string) (searchQuery, error) {
	sq := searchQuery{limit: defaultLimit}
	for _, v := range q["resource"] {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				sq.resources = append(sq.resources, r)
			}
		}
	}
	type intParam struct {
		name string
		dst  *int64
		set  *bool
	}
	var offset, limit int64
	var hasOffset, hasLimit bool
	params := []intParam{{"begin_time", &sq.begin, &sq.hasBegin}, {"end_time", &sq.end, &sq.hasEnd}}
	if paging != PagingIgnored {
		params = append(params, intParam{"offset", &offset, &hasOffset}, intParam{"limit", &limit, &hasLimit})
	}
	for _, p := range params {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return sq, fmt.Errorf("%w: %s", errBadParam, p.name)
		}
		*p.dst, *p.set = n, true
	}
	if offset < 0 || limit < 0 || offset > 1<<31 {
		return sq, fmt.Errorf("%w: offset/limit", errBadParam)
	}
	sq.offset = int(offset)
	if hasLimit && limit > 0 {
		sq.limit = int(min(limit, maxLimit))
	}
	return sq, nil
}

// matches says whether a task passes the filters: its resource among those asked for, and
// its begin time within [begin_time, end_time] (both ends inclusive). A task without a
// usable begin time matches no begin_time or end_time filter.
func (q searchQuery) matches(resource string, begin int64, hasBegin bool) bool {
	if len(q.resources) > 0 && !slices.Contains(q.resources, resource) {
		return false
	}
	if q.hasBegin || q.hasEnd {
		if !hasBegin || (q.hasBegin && begin < q.begin) || (q.hasEnd && begin > q.end) {
			return false
		}
	}
	return true
}

// window returns the rows of one answer out of matched, as the paging mode reads offset
// and limit.
func (q searchQuery) window(matched []listed, paging string) []listed {
	first := int64(q.offset) // PagingRows
	if paging == PagingPages {
		first = int64(q.offset) * int64(q.limit)
	}
	if first >= int64(len(matched)) {
		return nil
	}
	return matched[first:min(first+int64(q.limit), int64(len(matched)))]
}

// listed is a task that matched a SearchTask query, with what orders the answer.
type listed struct {
	id       string
	begin    int64
	hasBegin bool
}

// filterFieldsLocked returns what SearchTask filters and orders a task by at now, its
// resource and its begin time, as its answer would carry them, without rendering a
// seeded task; ok is false for an unknown id. s.mu is held.
func (s *Server) filterFieldsLocked(p *project, id string, now time.Time) (resource string, begin int64, hasBegin, ok bool) {
	if t, found := p.seeded[id]; found {
		if now.Before(t.begin) { // waiting: no begin_time yet
			return t.resource, 0, false, true
		}
		return t.resource, t.begin.UnixMilli(), true, true
	}
	if f, found := p.fixed[id]; found {
		begin, hasBegin = beginOf(f)
		return resourceOf(f), begin, hasBegin, true
	}
	return "", 0, false, false
}

// searchTask answers {"offset","limit","count","data"}: the tasks that match, newest first
// (by begin time, later first; tasks without a usable begin time, which have not begun,
// before every begun one; ties in server order: seeded tasks, then tasks added with
// SetTask), count being all that match, the rows and the echoed offset and limit as
// Options.SearchPaging reads them. Only the rows of the answer are rendered.
func (s *Server) searchTask(w http.ResponseWriter, r *http.Request, reqID string, p *project) {
	paging := s.opts.SearchPaging
	q, err := parseSearch(r.URL.Query(), paging)
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusBadRequest, CodeInvalidParam, "Invalid parameter: "+err.Error())
		return
	}
	now := s.now()
	var found []listed
	s.mu.Lock()
	for _, id := range p.order {
		if resource, begin, hasBegin, ok := s.filterFieldsLocked(p, id, now); ok && q.matches(resource, begin, hasBegin) {
			found = append(found, listed{id, begin, hasBegin})
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(found, func(a, b listed) int {
		switch {
		case a.hasBegin != b.hasBegin:
			if a.hasBegin {
				return 1
			}
			return -1
		case a.begin > b.begin:
			return -1
		case a.begin < b.begin:
			return 1
		}
		return 0
	})
	rows := q.window(found, paging)
	data := make([]any, 0, len(rows))
	s.mu.Lock()
	for _, f := range rows {
		data = append(data, s.lookupLocked(p, f.id, now))
	}
	s.mu.Unlock()
	page := struct {
		Offset int   `json:"offset"`
		Limit  int   `json:"limit"`
		Count  int   `json:"count"`
		Data   []any `json:"data"`
	}{q.offset, q.limit, len(found), data}
	b, err := json.Marshal(page)
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusInternalServerError, CodeInternal, msgInternal)
		return
	}
	s.writeBody(w, http.StatusOK, contentMSS, b)
}
