package simulator

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestSpreadLayout: with Spread, task i began (i+½)·Spread/Tasks before the start (ms
// resolution), the Running newest run on with rising counts, the others have ended before
// the start, and SearchTask lists them in index order. Without Spread, Running changes
// nothing.
func TestSpreadLayout(t *testing.T) {
	const n, running = 40, 7
	spread := 10 * time.Hour
	cases := []struct {
		name  string
		style string
	}{
		{"number style", StyleNumber},
		{"string style", StyleString},
		{"mixed style", StyleMixed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, clock := newSim(t, Options{Tasks: n, Spread: spread, Running: running, FieldStyle: c.style, SearchPaging: PagingRows})
			before := map[string]int64{}
			for i := range n {
				id := TaskID(i)
				m := serve(s, signed(clock, showPath(id))).json(t)
				// 15 minutes apart, the first 7.5 minutes before the start.
				wantBegin := testStart.Add(-time.Duration(2*i+1) * 450 * time.Second).UnixMilli()
				if got := num(t, m["begin_time"]); got != wantBegin {
					t.Errorf("task %d: begin_time %d, want %d", i, got, wantBegin)
				}
				if i < running {
					if m["end_time"] != nil || num(t, m["task_status"]) != StatusRunning {
						t.Errorf("task %d: want running, got end_time %v, status %v", i, m["end_time"], m["task_status"])
					}
					before[id] = num(t, m["success_count"]) + num(t, m["failure_count"])
					continue
				}
				if end := num(t, m["end_time"]); end > testStart.UnixMilli() || end < wantBegin || num(t, m["task_status"]) != StatusFinished {
					t.Errorf("task %d: want finished before the start, got end_time %d, status %v", i, end, m["task_status"])
				}
			}

			// Hours later the running tasks still run, their counts higher.
			clock.Advance(2 * time.Hour)
			for id, processed := range before {
				m := serve(s, signed(clock, showPath(id))).json(t)
				if m["end_time"] != nil || num(t, m["success_count"])+num(t, m["failure_count"]) <= processed {
					t.Errorf("%s after 2 h: end_time %v, processed %d then %d", id, m["end_time"], processed,
						num(t, m["success_count"])+num(t, m["failure_count"]))
				}
			}

			from := strconv.FormatInt(testStart.Add(-spread).UnixMilli(), 10)
			m, data := page(t, s, clock, url.Values{"begin_time": {from}, "limit": {"100"}})
			if num(t, m["count"]) != n || len(data) != n {
				t.Fatalf("the spread's window: count %v, %d rows; want %d", m["count"], len(data), n)
			}
			for i, d := range data {
				if d["task_id"] != TaskID(i) {
					t.Fatalf("row %d is %v, want %s: not in index order", i, d["task_id"], TaskID(i))
				}
			}
		})
	}

	// Without Spread, Running is ignored: the usual kinds (task 0 finished, 1 running, 3 waiting).
	s, clock := newSim(t, Options{Tasks: 6, Running: 6})
	for i, want := range map[int]int64{0: StatusFinished, 1: StatusRunning, 3: StatusWaiting} {
		if m := serve(s, signed(clock, showPath(TaskID(i)))).json(t); num(t, m["task_status"]) != want {
			t.Errorf("no spread, task %d: status %v, want %d", i, m["task_status"], want)
		}
	}
}
