package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// pagingServer answers SearchTask as a server of one paging reading would: begin_time and
// end_time filter inclusively on a task's begin time, rows come newest first (or in id
// order with shuffled), count is the filtered total, limit defaults to 10.
type pagingServer struct {
	mode     string // pagingRows, pagingPages or "ignored"
	begins   map[string]int64
	shuffled bool // rows not newest first
	calls    int
	broken   func(p metastudio.SearchParams, page map[string]any) // spoils an answer
}

func (s *pagingServer) search(_ context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error) {
	s.calls++
	var ids []string
	for id, b := range s.begins {
		if (p.BeginTime == 0 || b >= p.BeginTime) && (p.EndTime == 0 || b <= p.EndTime) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if s.shuffled {
			return cmpString(a, b)
		}
		if d := s.begins[b] - s.begins[a]; d != 0 {
			return int(math.Copysign(1, float64(d)))
		}
		return cmpString(a, b)
	})
	offset, limit := 0, 10
	if s.mode != "ignored" && p.Limit > 0 {
		offset, limit = p.Offset, min(p.Limit, 100)
	}
	start := offset
	if s.mode == pagingPages {
		start = offset * limit
	}
	start = min(start, len(ids))
	rows := []map[string]any{}
	for _, id := range ids[start:min(start+limit, len(ids))] {
		rows = append(rows, map[string]any{"task_id": id, "begin_time": s.begins[id], "total_count": 5})
	}
	page := map[string]any{"offset": offset, "limit": limit, "count": len(ids), "data": rows}
	if s.broken != nil {
		s.broken(p, page)
	}
	body, _ := json.Marshal(page)
	var out metastudio.TaskPage
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// spread makes n tasks that began over span ms before end, a few sharing a millisecond.
func spread(n int, end, span int64) map[string]int64 {
	out := make(map[string]int64, n)
	for i := range n {
		out[fmt.Sprintf("t%05d", i)] = end - int64(i)*span/int64(n) - int64(i%3)
	}
	return out
}

func runLister(s *pagingServer, lo, hi int64, maxTasks int) (*lister, error) {
	l := &lister{search: s.search, max: maxTasks, seen: map[string]bool{}}
	err := l.window(context.Background(), lo, hi)
	return l, err
}

// TestListingFindsEveryTask: under each paging reading, a pass finds every task, misses
// none, and costs at most ⌈N / rows per answer⌉ × 1.5 + 10 calls.
func TestListingFindsEveryTask(t *testing.T) {
	const end, week = int64(1_800_000_000_000), int64(7 * 24 * 3600 * 1000)
	for _, tc := range []struct {
		mode     string
		perCall  int // rows per answer once paging is known
		shuffled bool
		wantMode string
	}{
		{pagingRows, 100, false, pagingRows},
		{pagingPages, 100, false, pagingPages},
		{"ignored", 10, false, pagingNone},
		{"ignored, not newest first", 10, true, pagingNone},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			n := 2000
			s := &pagingServer{mode: tc.mode, begins: spread(n, end, week), shuffled: tc.shuffled}
			if tc.shuffled {
				s.mode = "ignored"
			}
			l, err := runLister(s, end-week, end, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.found) != n || l.missed != 0 || l.capped {
				t.Errorf("found %d of %d, missed %d, capped %v", len(l.found), n, l.missed, l.capped)
			}
			if l.paging != tc.wantMode {
				t.Errorf("paging %q, want %q", l.paging, tc.wantMode)
			}
			bound := (n+tc.perCall-1)/tc.perCall*3/2 + 10
			if tc.shuffled {
				bound = 4*n/tc.perCall + 10 // halving: no cursor to follow
			}
			if l.calls > bound || l.calls != s.calls {
				t.Errorf("%d calls (server saw %d), want at most %d", l.calls, s.calls, bound)
			}
		})
	}
}

// TestListingUnsplittableMillisecond: 25 tasks in one millisecond, paging ignored: the 10
// an answer shows are kept, the other 15 are counted as missed.
func TestListingUnsplittableMillisecond(t *testing.T) {
	begins := spread(40, 1_000_000, 100_000)
	for i := range 25 {
		begins[fmt.Sprintf("same%02d", i)] = 950_000
	}
	s := &pagingServer{mode: "ignored", begins: begins}
	l, err := runLister(s, 0, 2_000_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, task := range l.found {
		if task.BeginTime.Text == "950000" {
			same++
		}
	}
	if same < 10 || l.missed < 15 || len(l.found)+l.missed != 65 {
		t.Errorf("%d of the 25 in one millisecond found, %d missed, %d found in all; want ≥ 10, ≥ 15, found + missed = 65", same, l.missed, len(l.found))
	}
}

// TestListingStopsAtMaxTasks: the newest max_tasks are listed, and the cap is said.
func TestListingStopsAtMaxTasks(t *testing.T) {
	s := &pagingServer{mode: "ignored", begins: spread(500, 1_000_000, 500_000)}
	l, err := runLister(s, 0, 1_000_000, 50)
	if err != nil {
		t.Fatal(err)
	}
	if !l.capped || len(l.found) < 50 || len(l.found) > 60 || s.calls > 10 {
		t.Errorf("found %d, capped %v, %d calls; want about 50, capped, a few calls", len(l.found), l.capped, s.calls)
	}
	for _, task := range l.found {
		if b, _ := task.BeginTime.Number(); b < 1_000_000-60*1000 {
			t.Errorf("task %s (begun %v) is not among the newest", task.TaskID.Text, b)
		}
	}
}

// TestListingMalformedAnswers: an answer that cannot be trusted is an error of its window
// with its reason; a row whose begin time is missing or outside the window is kept.
func TestListingMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spoil  func(page map[string]any)
		reason string
	}{
		{"no count", func(p map[string]any) { delete(p, "count") }, reasonNoCount},
		{"count below rows", func(p map[string]any) { p["count"] = 1 }, reasonCountBelowRows},
		{"row without task_id", func(p map[string]any) { delete(p["data"].([]map[string]any)[2], "task_id") }, reasonRowWithoutID},
		{"the same task twice", func(p map[string]any) {
			rows := p["data"].([]map[string]any)
			rows[1]["task_id"] = rows[0]["task_id"]
		}, reasonDuplicateID},
		{"begin outside the window", func(p map[string]any) { p["data"].([]map[string]any)[0]["begin_time"] = 1 }, ""},
		{"no begin time", func(p map[string]any) { delete(p["data"].([]map[string]any)[9], "begin_time") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &pagingServer{mode: "ignored", begins: spread(30, 1_000_000, 100_000)}
			s.broken = func(_ metastudio.SearchParams, page map[string]any) {
				if len(page["data"].([]map[string]any)) == 10 {
					tc.spoil(page)
				}
			}
			l, err := runLister(s, 0, 2_000_000, 0)
			var le *listError
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("a row with an odd begin time failed the pass: %v", err)
			case tc.reason == "" && len(l.found) != 30:
				t.Errorf("found %d of 30", len(l.found))
			case tc.reason != "" && (!errors.As(err, &le) || le.reason != tc.reason):
				t.Errorf("error %v, want reason %s", err, tc.reason)
			}
		})
	}
}

// FuzzListing: whatever the server answers, a pass ends, never panics, and stays within
// a bound of calls; against an honest newest-first server that ignores paging, found +
// missed is the number of tasks, and missed is what no answer can show (beyond 10 in one
// millisecond).
func FuzzListing(f *testing.F) {
	f.Add([]byte{1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 9}, uint8(0), uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(1), uint8(3))
	f.Add([]byte("a few tasks at odd times, some at the same millisecond"), uint8(2), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, mode, spoil uint8) {
		if len(data) > 300 {
			return
		}
		begins := map[string]int64{}
		perMs := map[int64]int{}
		for i, b := range data {
			ms := 1000 + int64(b)*7
			begins[fmt.Sprintf("t%03d", i)] = ms
			perMs[ms]++
		}
		s := &pagingServer{mode: []string{"ignored", pagingRows, pagingPages}[mode%3], begins: begins, shuffled: mode%5 == 4}
		if spoil%8 == 7 {
			s.broken = func(p metastudio.SearchParams, page map[string]any) {
				if p.EndTime%3 == 0 {
					page["offset"], page["count"] = 7, len(data)+int(spoil)
				}
			}
		}
		l, err := runLister(s, 1000, 1000+255*7, 0)
		if s.calls > 20*len(data)+20 {
			t.Fatalf("%d calls for %d tasks", s.calls, len(data))
		}
		if err != nil || s.broken != nil || s.shuffled || s.mode != "ignored" {
			return
		}
		want := 0
		for _, k := range perMs {
			want += max(k-10, 0)
		}
		if l.missed != want || len(l.found)+l.missed != len(data) {
			t.Fatalf("found %d, missed %d of %d tasks; want %d missed", len(l.found), l.missed, len(data), want)
		}
	})
}
