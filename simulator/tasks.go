package simulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Task statuses of the seeded tasks. Huawei documents no enum for task_status; its one
// example is a finished task with task_status 0, so a finished task here has 0 too, whether
// every item was processed or it stopped part-way (failure_count and total_count tell
// those apart). The values of running and waiting tasks are the simulator's own invention,
// not the real service's. Numbers in "number" style, the same digits as strings in
// "string" style.
const (
	// StatusFinished is a finished task (end_time set), as in the documented example.
	StatusFinished = 0
	// StatusRunning is a started task: begin_time set, end_time unset, counts rising. The
	// value is the simulator's invention.
	StatusRunning = 1
	// StatusWaiting is a task that has not started: no begin_time, no counts yet. The value
	// is the simulator's invention.
	StatusWaiting = 2
)

// Task types of the seeded tasks.
const (
	// TypeImport is task_type 0, an import.
	TypeImport = 0
	// TypeExport is task_type 1, an export.
	TypeExport = 1
)

// Field styles of Options.FieldStyle.
const (
	// StyleNumber sends times, type, status and counts as JSON numbers (the documented example).
	StyleNumber = "number"
	// StyleString sends them as JSON strings (the documented types), counts as "42".
	StyleString = "string"
	// StyleMixed alternates per seeded task: even index number style, odd index string style.
	StyleMixed = "mixed"
)

// TaskID is the id of the i-th seeded task (i counts from 0): the 32 lower-case hex digits
// of i+1, zero-padded, so task 0 is "00000000000000000000000000000001". Ids do not depend on
// Options.Seed; the seed only changes the tasks' contents.
func TaskID(i int) string {
	return fmt.Sprintf("%032x", i+1)
}

// seedKinds is the life cycle of a seeded task, chosen by index modulo len(seedKinds), so
// that every six consecutive tasks cover every case whatever the seed.
const (
	kindFinished    = iota // finished long ago, few or no failures
	kindRunning            // started a few minutes before the start instant, no failures
	kindRunningFail        // started before the start instant, failures already counted
	kindWaiting            // starts 3-15 minutes after the start instant
	kindAborted            // stopped part-way hours ago, many failures
	kindLong               // runs for hours, a trickle of failures
	numKinds
)

var resources = []struct{ name, cjk string }{
	{"qa_pair", "问答对"},
	{"intent", "意图"},
	{"knowledge", "知识库"},
	{"entity", "实体"},
	{"slot", "词槽"},
}

var operators = []string{"zhang_san", "ops-bot", "li.si", "demo_user"}

// seedTask is a seeded task: fixed parameters from which its state at any instant follows.
type seedTask struct {
	index     int
	id        string
	resource  string
	name      string
	taskType  int
	operator  string
	userID    string
	total     int64
	begin     time.Time     // when it starts (or started)
	dur       time.Duration // how long processing every item would take
	stopMille int64         // the share of items processed before it stops, in 1/1000 (1000 = all)
	failMille int64         // the share of processed items that fail, in 1/1000
	style     string        // field style of its answers
	nullEnd   bool          // an unset end_time is sent as null (else left out); same for begin_time
}

// spreadRunFor is how long a running task of Options.Spread goes on after the start
// instant: longer than any benchmark or load case runs.
const spreadRunFor = 8 * time.Hour

// placement puts a seeded task at a chosen begin time instead of its kind's
// (Options.Spread).
type placement struct {
	ago     time.Duration // how long before the start instant it began
	running bool          // running until spreadRunFor after the start; else finished before the start
}

// newSeedTask draws task i from its own generator, so task i is the same whatever
// Options.Tasks is. A placement, if any, replaces the begin time and the life cycle of
// the task's kind; every other field is drawn alike.
func newSeedTask(i int, seed int64, start time.Time, style string, place *placement) *seedTask {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)+0x5eed))
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	res := resources[rng.IntN(len(resources))]
	t := &seedTask{
		index:     i,
		id:        TaskID(i),
		resource:  res.name,
		taskType:  rng.IntN(2),
		operator:  operators[rng.IntN(len(operators))],
		total:     200 + rng.Int64N(4801),
		stopMille: 1000,
		nullEnd:   (i/2)%2 == 1,
	}
	sum := sha256.Sum256([]byte(t.operator + "/" + strconv.FormatInt(seed, 10)))
	t.userID = hex.EncodeToString(sum[:16])

	switch i % numKinds {
	case kindFinished:
		t.begin = start.Add(-between(2*time.Hour, 48*time.Hour))
		t.dur = between(2*time.Minute, 90*time.Minute)
		if rng.IntN(2) == 1 {
			t.failMille = 1 + rng.Int64N(50)
		}
	case kindRunning:
		t.begin = start.Add(-between(1*time.Minute, 5*time.Minute))
		t.dur = between(20*time.Minute, 60*time.Minute)
	case kindRunningFail:
		t.begin = start.Add(-between(5*time.Minute, 15*time.Minute))
		t.dur = between(20*time.Minute, 45*time.Minute)
		t.failMille = 50 + rng.Int64N(251)
	case kindWaiting:
		t.begin = start.Add(between(3*time.Minute, 15*time.Minute))
		t.dur = between(5*time.Minute, 30*time.Minute)
		t.failMille = rng.Int64N(101)
	case kindAborted:
		t.begin = start.Add(-between(1*time.Hour, 24*time.Hour))
		t.dur = between(10*time.Minute, 50*time.Minute)
		t.stopMille = 100 + rng.Int64N(601)
		t.failMille = 300 + rng.Int64N(601)
	case kindLong:
		t.begin = start.Add(-between(10*time.Minute, 60*time.Minute))
		t.dur = between(3*time.Hour, 8*time.Hour)
		t.total = 10000 + rng.Int64N(40001)
		t.failMille = rng.Int64N(21)
	}
	if place != nil {
		t.begin, t.stopMille = start.Add(-place.ago), 1000
		t.dur = min(place.ago/2, 90*time.Minute) // ends before the start
		if place.running {
			t.dur = place.ago + spreadRunFor
		}
	}
	t.begin = t.begin.Truncate(time.Millisecond)
	t.dur = t.dur.Truncate(time.Millisecond)

	verb, cjkVerb := "import", "导入"
	if t.taskType == TypeExport {
		verb, cjkVerb = "export", "导出"
	}
	switch {
	case i%7 == 5:
		t.name = fmt.Sprintf(`FAQ "spring" %s #%d`, verb, i)
	case i%3 == 1:
		t.name = res.cjk + cjkVerb + "_" + t.begin.UTC().Format("20060102")
	default:
		t.name = res.name + "_" + verb + "_" + t.begin.UTC().Format("200601021504")
	}

	switch style {
	case StyleString:
		t.style = StyleString
	case StyleMixed:
		t.style = StyleNumber
		if i%2 == 1 {
			t.style = StyleString
		}
	default:
		t.style = StyleNumber
	}
	return t
}

// taskState is a seeded task at one instant.
type taskState struct {
	begun, ended     bool
	beginMs, endMs   int64
	status           int
	success, failure int64
}

// runTime is how long the task runs until it stops (all items, or its abort point).
func (t *seedTask) runTime() time.Duration {
	return time.Duration(int64(t.dur) * t.stopMille / 1000)
}

// stateAt computes the task's state at now. Counts only grow with now, and
// success+failure never exceeds total.
func (t *seedTask) stateAt(now time.Time) taskState {
	var s taskState
	if now.Before(t.begin) {
		s.status = StatusWaiting
		return s
	}
	s.begun = true
	s.beginMs = t.begin.UnixMilli()
	elapsed := now.Sub(t.begin)
	var processed int64
	if run := t.runTime(); elapsed >= run {
		s.ended = true
		s.endMs = t.begin.Add(run).UnixMilli()
		processed = t.total * t.stopMille / 1000
		s.status = StatusFinished
	} else {
		s.status = StatusRunning
		processed = t.total * elapsed.Milliseconds() / max(t.dur.Milliseconds(), 1)
		processed = min(processed, t.total*t.stopMille/1000)
	}
	s.failure = processed * t.failMille / 1000
	s.success = processed - s.failure
	return s
}

// field is one key of an ordered JSON object.
type field struct {
	key string
	val any
}

// object is a JSON object that keeps its keys in order, like the API's answers.
type object []field

// MarshalJSON writes the fields in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// render is the task's JSON object at now, in its field style.
func (t *seedTask) render(now time.Time) object {
	s := t.stateAt(now)
	num := func(v int64) any {
		if t.style == StyleString {
			return strconv.FormatInt(v, 10)
		}
		return v
	}
	o := object{{"resource", t.resource}, {"task_name", t.name}}
	optional := func(key string, set bool, v int64) {
		switch {
		case set:
			o = append(o, field{key, num(v)})
		case t.nullEnd:
			o = append(o, field{key, nil})
		}
	}
	optional("begin_time", s.begun, s.beginMs)
	optional("end_time", s.ended, s.endMs)
	o = append(o,
		field{"task_type", num(int64(t.taskType))},
		field{"operator", t.operator},
		field{"total_count", num(t.total)},
		field{"success_count", num(s.success)},
		field{"failure_count", num(s.failure)},
		field{"task_status", num(int64(s.status))},
		field{"task_id", t.id},
		field{"user_id", t.userID},
	)
	return o
}

// fixedTask is a task set with SetTask: its fields are answered as given.
type fixedTask map[string]any

// resourceOf is the task's resource, for SearchTask's filter.
func resourceOf(o any) string {
	switch t := o.(type) {
	case fixedTask:
		s, _ := t["resource"].(string)
		return s
	case object:
		for _, f := range t {
			if f.key == "resource" {
				s, _ := f.val.(string)
				return s
			}
		}
	}
	return ""
}

// beginOf is the task's begin_time in epoch ms, for SearchTask's filter; ok is false when
// it has none usable.
func beginOf(o any) (int64, bool) {
	switch t := o.(type) {
	case fixedTask:
		return toInt64(t["begin_time"])
	case object:
		for _, f := range t {
			if f.key == "begin_time" {
				return toInt64(f.val)
			}
		}
	}
	return 0, false
}

// toInt64 reads a number or a digit string.
func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if n != n || n > 9e18 || n < -9e18 {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		f, err := n.Float64()
		if err != nil {
			return 0, false
		}
		return toInt64(f)
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}
