package metastudio

import "bytes"

// taskFieldNames are the field names of a ShowTask answer, in the order of Task.fields
// (TestTaskFieldsFollowTheTags checks them against Task's json tags).
var taskFieldNames = [...]string{"task_id", "task_name", "resource", "task_type", "task_status",
	"operator", "user_id", "begin_time", "end_time", "total_count", "success_count", "failure_count"}

// fields returns the places of t's fields, in the order of taskFieldNames.
func (t *Task) fields() [len(taskFieldNames)]*Value {
	return [...]*Value{&t.TaskID, &t.TaskName, &t.Resource, &t.TaskType, &t.TaskStatus,
		&t.Operator, &t.UserID, &t.BeginTime, &t.EndTime, &t.TotalCount, &t.SuccessCount, &t.FailureCount}
}

// taskFieldIndex is the place in taskFieldNames of each name.
var taskFieldIndex = func() map[string]int {
	m := make(map[string]int, len(taskFieldNames))
	for i, name := range taskFieldNames {
		m[name] = i
	}
	return m
}()

// decodeTask decodes a ShowTask answer into t exactly as decodeObject (encoding/json and
// Value.UnmarshalJSON) does, in one pass over the common answer: an object whose keys
// are plain lower-case names. A string value with escapes is decoded by encoding/json
// alone. Anything else (keys with escapes or that encoding/json would match
// case-insensitively, deep nesting, invalid JSON) is left to decodeObject, so both agree
// on every input; FuzzDecode checks it. Each kept field is a string of its own, so that a
// large unknown field never stays in memory with the task.
func decodeTask(body []byte, t *Task) error {
	if !fastTask(body, t) {
		*t = Task{}
		return decodeObject(body, t)
	}
	return nil
}

// fastTask is decodeTask's single pass. It returns false, with t in any state, when the
// body is not a valid plain object it can read alone.
func fastTask(body []byte, t *Task) bool {
	*t = Task{}
	fields := t.fields()
	s := scanner{b: body}
	s.space()
	if !s.byte('{') {
		return false
	}
	s.space()
	if s.byte('}') {
		return s.end()
	}
	for {
		s.space()
		key, plain, ok := s.str()
		if !ok || !plain || !plainKey(key) {
			return false
		}
		s.space()
		if !s.byte(':') {
			return false
		}
		s.space()
		field, known := taskFieldIndex[string(key)]
		start := s.i
		kind, ok := s.value(0)
		if !ok {
			return false
		}
		if known {
			v := fields[field]
			*v = Value{}
			switch kind {
			case kindString:
				*v = Value{Text: string(body[start+1 : s.i-1]), Set: true}
			case kindLiteral:
				*v = Value{Text: string(body[start:s.i]), Set: true}
			case kindEscaped: // rare: read as decodeObject reads every value
				_ = v.UnmarshalJSON(body[start:s.i])
			}
		}
		s.space()
		if s.byte('}') {
			return s.end()
		}
		if !s.byte(',') {
			return false
		}
	}
}

// plainKey reports whether encoding/json matches key to a field only when it is spelled
// exactly: no upper-case letter and nothing outside ASCII, which it would fold.
func plainKey(key []byte) bool {
	for _, c := range key {
		if c >= 'A' && c <= 'Z' || c >= 0x80 {
			return false
		}
	}
	return true
}

// scanner reads JSON from b at i. Its methods return false for anything it does not take.
type scanner struct {
	b []byte
	i int
}

const (
	kindString  = iota + 1 // a plain string: valid UTF-8, no escape, no control character
	kindEscaped            // any other string
	kindLiteral            // a number, true or false: its text as it stands
	kindOther              // null, an object or an array: valid, never kept
)

// maxDepth bounds the nesting that the fast path reads itself (far below encoding/json's).
const maxDepth = 32

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only white space follows.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// str reads a string. plain is true when it has no escape and its content decodes to
// itself (valid UTF-8, no quote); the other valid strings (escapes, invalid UTF-8) are
// read too, and their content is left to encoding/json.
func (s *scanner) str() (inner []byte, plain, ok bool) {
	if !s.byte('"') {
		return nil, false, false
	}
	start := s.i
	end := bytes.IndexByte(s.b[start:], '"')
	if end < 0 {
		return nil, false, false
	}
	if inner = s.b[start : start+end]; bytes.IndexByte(inner, '\\') < 0 && plainString(inner) {
		s.i = start + end + 1
		return inner, true, true
	}
	for s.i < len(s.b) { // escapes, control characters or invalid UTF-8: byte by byte
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], false, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			if !s.escape() {
				return nil, false, false
			}
		default:
			s.i++
		}
	}
	return nil, false, false
}

// escape reads one escape sequence, whose backslash is at i.
func (s *scanner) escape() bool {
	s.i++
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i++
		return true
	case 'u':
		if s.i+5 > len(s.b) {
			return false
		}
		for _, c := range s.b[s.i+1 : s.i+5] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		s.i += 5
		return true
	}
	return false
}

// value reads one JSON value and says what it was.
func (s *scanner) value(depth int) (int, bool) {
	if s.i >= len(s.b) {
		return 0, false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, plain, ok := s.str()
		if !plain {
			return kindEscaped, ok
		}
		return kindString, ok
	case c == '{' || c == '[':
		return kindOther, depth < maxDepth && s.container(depth+1)
	case c == 'n':
		return kindOther, s.word("null")
	case c == 't':
		return kindLiteral, s.word("true")
	case c == 'f':
		return kindLiteral, s.word("false")
	default:
		return kindLiteral, s.number()
	}
}

// container reads an object or an array, whose opening bracket is at i.
func (s *scanner) container(depth int) bool {
	closing, object := byte(']'), s.b[s.i] == '{'
	if object {
		closing = '}'
	}
	s.i++
	s.space()
	if s.byte(closing) {
		return true
	}
	for {
		s.space()
		if object {
			if _, _, ok := s.str(); !ok {
				return false
			}
			s.space()
			if !s.byte(':') {
				return false
			}
			s.space()
		}
		if _, ok := s.value(depth); !ok {
			return false
		}
		s.space()
		if s.byte(closing) {
			return true
		}
		if !s.byte(',') {
			return false
		}
	}
}

func (s *scanner) word(w string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(w)) {
		return false
	}
	s.i += len(w)
	return true
}

// number reads a number as JSON spells it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	s.byte('-')
	switch {
	case s.byte('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.byte('.') && !s.digits() {
		return false
	}
	if s.byte('e') || s.byte('E') {
		if !s.byte('+') {
			s.byte('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits reads one digit or more.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
