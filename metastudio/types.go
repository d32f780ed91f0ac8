package metastudio

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Value is one field of a task as the API sent it. The documentation types times, type and
// status as strings, while its own example sends numbers, and the counts may come either
// way, so every field accepts a JSON number, string, boolean or null, or may be absent.
// Decoding a Value never fails: a shape it cannot use (object, array) is simply not Set.
type Value struct {
	// Text is a string's content, or a number's or boolean's JSON literal, unchanged
	// ("1744276967708", not "1.744276967708e+12").
	Text string
	// Set is false for null, absent or unusable values.
	Set bool
}

// UnmarshalJSON accepts any JSON value.
func (v *Value) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	*v = Value{}
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case 'n', '{', '[':
		return nil // null, object, array: unusable
	case '"':
		// The common string has no escape and is valid UTF-8: its content is the bytes
		// between the quotes, with no second pass of the JSON decoder. Anything else
		// (escapes, invalid UTF-8 that becomes U+FFFD) goes through json.Unmarshal.
		if len(data) >= 2 && data[len(data)-1] == '"' {
			if inner := data[1 : len(data)-1]; bytes.IndexByte(inner, '\\') < 0 && plainString(inner) {
				*v = Value{Text: string(inner), Set: true}
				return nil
			}
		}
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil
		}
		*v = Value{Text: s, Set: true}
		return nil
	}
	*v = Value{Text: string(data), Set: true}
	return nil
}

// plainString reports whether b, the inside of a JSON string without a backslash, decodes
// to itself: valid UTF-8 with no control character and no quote.
func plainString(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' {
			return false
		} else if c >= utf8.RuneSelf {
			return utf8.Valid(b[i:])
		}
	}
	return true
}

// Number parses the value as a finite, non-negative number. ok is false for null, absent,
// empty, unparsable, negative or non-finite values: the series is then left out.
func (v Value) Number() (f float64, ok bool) {
	if !v.Set {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v.Text), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return f, true
}

// Seconds converts an epoch-milliseconds value to epoch seconds. A zero time counts as
// no time at all.
func (v Value) Seconds() (float64, bool) {
	ms, ok := v.Number()
	if !ok || ms == 0 {
		return 0, false
	}
	return ms / 1000, true
}

// Task is one import/export task, as ShowTask returns it and SearchTask lists it.
type Task struct {
	TaskID       Value `json:"task_id"`
	TaskName     Value `json:"task_name"`
	Resource     Value `json:"resource"`
	TaskType     Value `json:"task_type"`
	TaskStatus   Value `json:"task_status"`
	Operator     Value `json:"operator"`
	UserID       Value `json:"user_id"`
	BeginTime    Value `json:"begin_time"`
	EndTime      Value `json:"end_time"`
	TotalCount   Value `json:"total_count"`
	SuccessCount Value `json:"success_count"`
	FailureCount Value `json:"failure_count"`
}

// Finished reports whether the task has an end time (> 0). No status enum is assumed.
func (t *Task) Finished() bool {
	_, ok := t.EndTime.Seconds()
	return ok
}

// InProgress reports whether the task has begun and has no end time.
func (t *Task) InProgress() bool {
	_, begun := t.BeginTime.Seconds()
	return begun && !t.Finished()
}

// SearchParams is the query of SearchTask. Offset and Limit page through the result; the
// API does not document them, so callers must not trust the server to honour them.
type SearchParams struct {
	Resources  []string
	BusinessID string
	BeginTime  int64 // epoch ms; 0 leaves it out
	EndTime    int64 // epoch ms; 0 leaves it out
	Offset     int
	Limit      int
}

// TaskPage is one page of SearchTask.
type TaskPage struct {
	Offset Value  `json:"offset"`
	Limit  Value  `json:"limit"`
	Count  Value  `json:"count"`
	Data   []Task `json:"data"`
}
