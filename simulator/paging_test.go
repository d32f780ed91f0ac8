package simulator

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// pagingBase is the begin time, in epoch ms, of the fixed tasks of pagingSim.
const pagingBase = int64(1744276967708)

// pagingSim serves 27 fixed tasks and no seeded ones: t00 .. t24, where tN begins at
// pagingBase + (N/2) s (so t00 and t01 tie, t02 and t03 tie, ..., t24 is alone), half with
// begin_time as a number and half as a digit string; and, added after t09, "waiting" (no
// begin_time) and "nullbegin" (begin_time null). want is the order an answer must follow,
// written out from that description: the two without a begin time first, in the order they
// were added, then newest first, ties in the order added.
func pagingSim(t *testing.T, paging string) (s *Server, clock *testkit.Clock, want []string) {
	t.Helper()
	s, clock = newSim(t, Options{SearchPaging: paging})
	for i := range 25 {
		id := fmt.Sprintf("t%02d", i)
		var begin any = pagingBase + int64(i/2)*1000
		if i%2 == 1 {
			begin = strconv.FormatInt(pagingBase+int64(i/2)*1000, 10)
		}
		s.SetTask(id, map[string]any{"task_id": id, "resource": "qa_pair", "begin_time": begin})
		if i == 9 {
			s.SetTask("waiting", map[string]any{"task_id": "waiting", "resource": "qa_pair"})
			s.SetTask("nullbegin", map[string]any{"task_id": "nullbegin", "resource": "qa_pair", "begin_time": nil})
		}
	}
	want = []string{"waiting", "nullbegin", "t24"}
	for pair := 11; pair >= 0; pair-- {
		want = append(want, fmt.Sprintf("t%02d", 2*pair), fmt.Sprintf("t%02d", 2*pair+1))
	}
	return s, clock, want
}

// window is the query of the tasks begun from pagingBase+3 s to pagingBase+6 s, both
// ends included: t06 .. t13, listed t12 t13 t10 t11 t08 t09 t06 t07.
func window(extra ...string) url.Values {
	q := url.Values{"begin_time": {strconv.FormatInt(pagingBase+3000, 10)},
		"end_time": {strconv.FormatInt(pagingBase+6000, 10)}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

func TestSearchTaskPagingModes(t *testing.T) {
	inWindow := []string{"t12", "t13", "t10", "t11", "t08", "t09", "t06", "t07"}
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	type rows struct{ from, to int } // want[from:to] of pagingSim
	cases := []struct {
		name, paging         string
		query                url.Values
		offset, limit, count int64
		all                  *rows    // rows of the full list ...
		ids                  []string // ... or exactly these
	}{
		{"rows: default", PagingRows, q(), 0, 10, 27, &rows{0, 10}, nil},
		{"rows: offset 5, limit 3", PagingRows, q("offset", "5", "limit", "3"), 5, 3, 27, &rows{5, 8}, nil},
		{"rows: the last rows", PagingRows, q("offset", "20", "limit", "10"), 20, 10, 27, &rows{20, 27}, nil},
		{"rows: past the end", PagingRows, q("offset", "30"), 30, 10, 27, nil, []string{}},
		{"rows: limit capped at 100", PagingRows, q("limit", "500"), 0, 100, 27, &rows{0, 27}, nil},
		{"rows: limit 0 is the default", PagingRows, q("limit", "0"), 0, 10, 27, &rows{0, 10}, nil},
		{"rows: window", PagingRows, window(), 0, 10, 8, nil, inWindow},
		{"rows: window, offset 2, limit 3", PagingRows, window("offset", "2", "limit", "3"), 2, 3, 8, nil, inWindow[2:5]},
		{"rows: one tied millisecond", PagingRows, q("begin_time", strconv.FormatInt(pagingBase+1000, 10),
			"end_time", strconv.FormatInt(pagingBase+1000, 10)), 0, 10, 2, nil, []string{"t02", "t03"}},
		{"rows: begin_time only", PagingRows, q("begin_time", strconv.FormatInt(pagingBase+11000, 10)), 0, 10, 3, nil,
			[]string{"t24", "t22", "t23"}},
		{"rows: end_time only", PagingRows, q("end_time", strconv.FormatInt(pagingBase, 10)), 0, 10, 2, nil,
			[]string{"t00", "t01"}},

		{"pages: default", PagingPages, q(), 0, 10, 27, &rows{0, 10}, nil},
		{"pages: page 1 of 10", PagingPages, q("offset", "1", "limit", "10"), 1, 10, 27, &rows{10, 20}, nil},
		{"pages: page 2 of 10", PagingPages, q("offset", "2", "limit", "10"), 2, 10, 27, &rows{20, 27}, nil},
		{"pages: page 1 of 3", PagingPages, q("offset", "1", "limit", "3"), 1, 3, 27, &rows{3, 6}, nil},
		{"pages: past the end", PagingPages, q("offset", "3", "limit", "10"), 3, 10, 27, nil, []string{}},
		{"pages: limit capped at 100", PagingPages, q("limit", "500"), 0, 100, 27, &rows{0, 27}, nil},
		{"pages: window, page 1 of 3", PagingPages, window("offset", "1", "limit", "3"), 1, 3, 8, nil, inWindow[3:6]},

		{"ignored: offset and limit", PagingIgnored, q("offset", "1", "limit", "3"), 0, 10, 27, &rows{0, 10}, nil},
		{"ignored: a large limit", PagingIgnored, q("limit", "100"), 0, 10, 27, &rows{0, 10}, nil},
		{"ignored: values it does not read", PagingIgnored, q("offset", "-1", "limit", "x"), 0, 10, 27, &rows{0, 10}, nil},
		{"ignored: window", PagingIgnored, window("offset", "5"), 0, 10, 8, nil, inWindow},
		{"ignored: a window of 13", PagingIgnored, q("begin_time", strconv.FormatInt(pagingBase+6000, 10)), 0, 10, 13, nil,
			[]string{"t24", "t22", "t23", "t20", "t21", "t18", "t19", "t16", "t17", "t14"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, clock, want := pagingSim(t, c.paging)
			m, data := page(t, s, clock, c.query)
			if got := [3]int64{num(t, m["offset"]), num(t, m["limit"]), num(t, m["count"])}; got != [3]int64{c.offset, c.limit, c.count} {
				t.Errorf("offset, limit, count = %v, want %v", got, [3]int64{c.offset, c.limit, c.count})
			}
			ids := []string{}
			for _, d := range data {
				ids = append(ids, d["task_id"].(string))
			}
			wantIDs := c.ids
			if c.all != nil {
				wantIDs = want[c.all.from:c.all.to]
			}
			if fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
				t.Errorf("rows %v, want %v", ids, wantIDs)
			}
		})
	}
}

func TestSearchTaskBadParameters(t *testing.T) {
	cases := []struct {
		paging, query string
		status        int
	}{
		{PagingRows, "offset=-1", 400},
		{PagingRows, "limit=x", 400},
		{PagingRows, "limit=-2", 400},
		{PagingRows, "begin_time=yesterday", 400},
		{PagingPages, "offset=x", 400},
		{PagingPages, "end_time=1.5", 400},
		{PagingIgnored, "begin_time=yesterday", 400},
		{PagingIgnored, "offset=-1&limit=x", 200},
		{"", "offset=1&limit=3", 200}, // unset: rows
	}
	for _, c := range cases {
		t.Run(c.paging+" "+c.query, func(t *testing.T) {
			s, clock := newSim(t, Options{Tasks: 3, SearchPaging: c.paging})
			a := serve(s, signed(clock, searchPath+"?"+c.query))
			if c.status == 400 {
				a.wantError(t, 400, "MSS.000000003", "Invalid parameter")
				return
			}
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.body)
			}
		})
	}
	s, clock := newSim(t, Options{Tasks: 3, SearchPaging: PagingRows})
	if raw := serve(s, signed(clock, searchPath+"?offset=100")).body; !bytes.Contains(raw, []byte(`"data":[]`)) {
		t.Errorf("an empty answer is not \"data\":[]: %s", raw)
	}
	s, clock = newSim(t, Options{Tasks: 3})
	m, _ := page(t, s, clock, url.Values{"offset": {"1"}, "limit": {"3"}})
	if num(t, m["offset"]) != 0 || num(t, m["limit"]) != 10 {
		t.Errorf("the default paging is not ignored: %v", m)
	}
}

// TestSearchTaskWaitingTasks: a seeded task that has not begun has no begin_time; it is
// listed (before the begun ones) when no begin_time or end_time filter is given, and
// matches no such filter.
func TestSearchTaskWaitingTasks(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 12, FieldStyle: StyleMixed, SearchPaging: PagingRows})
	waiting := []string{TaskID(kindWaiting), TaskID(kindWaiting + numKinds)}
	for _, id := range waiting {
		if m := serve(s, signed(clock, showPath(id))).json(t); m["begin_time"] != nil || num(t, m["task_status"]) != StatusWaiting {
			t.Fatalf("%s is not waiting: %v", id, m)
		}
	}
	_, data := page(t, s, clock, url.Values{"limit": {"100"}})
	if len(data) != 12 || data[0]["task_id"] != waiting[0] || data[1]["task_id"] != waiting[1] {
		t.Errorf("unfiltered: %d rows, first %v %v; want 12, the waiting tasks first", len(data), data[0]["task_id"], data[1]["task_id"])
	}
	// Every begun task began within 48 h before the start, so this window holds all of them.
	from := strconv.FormatInt(testStart.Add(-72*time.Hour).UnixMilli(), 10)
	to := strconv.FormatInt(testStart.UnixMilli(), 10)
	for _, query := range []url.Values{{"begin_time": {from}}, {"end_time": {to}}, {"begin_time": {from}, "end_time": {to}}} {
		m, data := page(t, s, clock, url.Values{"limit": {"100"}, "begin_time": query["begin_time"], "end_time": query["end_time"]})
		if num(t, m["count"]) != 10 || len(data) != 10 {
			t.Errorf("%v: count %v, %d rows; want the 10 begun tasks", query, m["count"], len(data))
		}
		prev := int64(1 << 62)
		for _, d := range data {
			b := num(t, d["begin_time"])
			if b > prev {
				t.Errorf("%v: not newest first: %d after %d", query, b, prev)
			}
			prev = b
		}
	}
	// Once begun, a waiting task matches and is the newest.
	clock.Advance(20 * time.Minute)
	_, data = page(t, s, clock, url.Values{"limit": {"100"}, "begin_time": {from}})
	if len(data) != 12 {
		t.Errorf("after 20 min, %d rows, want 12", len(data))
	}
}

// TestSearchTaskPassReadingEachMode: a client that reads offset as each mode does lists
// every one of 250 tasks once in ⌈250/100⌉ calls; under ignored it sees only the first 10.
func TestSearchTaskPassReadingEachMode(t *testing.T) {
	cases := []struct {
		paging string
		offset func(call int) int // the offset of the call-th request
		want   int
		calls  int64
	}{
		{PagingRows, func(call int) int { return 100 * call }, 250, 3},
		{PagingPages, func(call int) int { return call }, 250, 3},
		{PagingIgnored, func(call int) int { return 100 * call }, 10, 3},
	}
	for _, c := range cases {
		t.Run(c.paging, func(t *testing.T) {
			s, clock := newSim(t, Options{Tasks: 250, SearchPaging: c.paging})
			seen := map[string]bool{}
			for call := range 3 {
				_, data := page(t, s, clock, url.Values{"offset": {strconv.Itoa(c.offset(call))}, "limit": {"100"}})
				for _, d := range data {
					seen[d["task_id"].(string)] = true
				}
			}
			if len(seen) != c.want || s.Requests(OpSearchTask) != c.calls {
				t.Errorf("%d distinct tasks in %d calls, want %d in %d", len(seen), s.Requests(OpSearchTask), c.want, c.calls)
			}
		})
	}
}
