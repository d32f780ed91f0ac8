package collector

import (
	"bufio"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// values is what the exporter keeps of a task's answer, in place of the decoded task,
// in the spirit of kube-state-metrics' metrics store: the value of each family of
// taskFamilies formatted as the text exposition writes it, and the label values, as
// pieces of one string (families.go gives each its place). A scrape writes each line
// from the family's name, the task's id and these pieces, so nothing is parsed or
// formatted again while the values last, and a task keeps about 280 bytes where its
// decoded form and its rendered lines took 1,150 (10,000 tasks within 48 MiB).
// status_names is applied when a line is written, so a reload takes effect at the next
// scrape. Only the families written on every scrape (scrape_success, data_age) are
// formatted per scrape.
type values struct {
	// text starts with the offsets in text of the pieces, 4 bytes each, little endian:
	// where each piece starts, then where the last ends (families.pieces + 1 of them).
	// The pieces follow, concatenated. One allocation for both: a scrape finds a piece's
	// bounds beside it, and a task keeps two objects, this and its text.
	text     string
	finished bool // the task has an end time: what the freshness rules ask
	plain    bool // no label value has a character to escape: a scrape copies them as they are
}

// piecesPool holds the buffers in which newValues puts a task's pieces together before
// copying them into a string of the exact size.
var piecesPool = sync.Pool{New: func() any { return new([]byte) }}

// newValues keeps what the series of t need: for each family of the table, its labels'
// values as the API sent them, then its value formatted, or "" when the series is left
// out (no usable value, or a label value that is not valid UTF-8, which NewConstMetric
// would refuse; status_names cannot make one valid, its keys being valid). The text is
// one allocation of the exact size.
func newValues(t *metastudio.Task) *values {
	fs := families
	v := &values{plain: true}
	bp := piecesPool.Get().(*[]byte)
	b := append((*bp)[:0], make([]byte, 4*(fs.pieces+1))...)
	// Offset 0 is where the first piece starts, offset p+1 where piece p ends.
	offset := func(i int) { binary.LittleEndian.PutUint32(b[4*i:], uint32(len(b))) }
	offset(0)
	for _, f := range fs.all {
		if f.value == nil {
			continue // written on every scrape: nothing kept
		}
		valid := true
		for i, l := range f.labels {
			s := l.value(t)
			b = append(b, s...)
			offset(f.labelPieces[i] + 1)
			valid = valid && utf8.ValidString(s)
			v.plain = v.plain && !needsEscape(s)
		}
		if x, ok := f.value(t); ok && valid {
			b = appendFloat(b, x)
		}
		offset(f.valuePiece + 1)
	}
	v.text, v.finished = string(b), t.Finished()
	*bp = b
	piecesPool.Put(bp)
	return v
}

// Finished reports whether the task has ended (refresh.Value).
func (v *values) Finished() bool { return v.finished }

// piece is piece p of the text.
func (v *values) piece(p int) string {
	o := v.text[4*p : 4*p+8]
	start := uint32(o[0]) | uint32(o[1])<<8 | uint32(o[2])<<16 | uint32(o[3])<<24
	end := uint32(o[4]) | uint32(o[5])<<8 | uint32(o[6])<<16 | uint32(o[7])<<24
	return v.text[start:end]
}

// label is the value of the first label of this name in taskFamilies ("" when none).
func (v *values) label(name string) string {
	p, ok := families.labelPiece[name]
	if !ok {
		return ""
	}
	return v.piece(p)
}

// named is a label value with status_names applied.
func named(s string, names map[string]string) string {
	if name, ok := names[s]; ok {
		return name
	}
	return s
}

// appendLine appends f's line of task t, or nothing when the task has no such series.
// Like NewConstMetric, it leaves out a series whose label values are not valid UTF-8
// rather than failing the scrape.
func (f *family) appendLine(b []byte, t taskLine) []byte {
	var number string // the kept value
	var scraped float64
	switch {
	case f.scrape != nil:
		x, ok := f.scrape(*t.r)
		if !ok {
			return b
		}
		scraped = x
	case t.vals.text == "":
		return b
	default:
		if number = t.vals.piece(f.valuePiece); number == "" {
			return b
		}
	}
	if len(f.text) == 2 { // project and task_id alone: most families
		b = append(b, f.text[0].prefix...)
		b = append(b, t.r.project...)
		b = append(b, f.text[1].prefix...)
		b = append(b, t.id...)
	} else {
		start := len(b)
		vals := &t.vals
		for i := range f.text {
			part := &f.text[i]
			b = append(b, part.prefix...)
			switch {
			case part.piece == pieceID:
				b = append(b, t.id...)
			case part.piece == pieceProject:
				b = append(b, t.r.project...)
			case part.statusNames:
				s := vals.piece(part.piece)
				if name, ok := t.statusNames[s]; ok {
					if !utf8.ValidString(name) {
						return b[:start]
					}
					s = name
				}
				b = appendEscaped(b, s)
			case vals.plain:
				b = append(b, vals.piece(part.piece)...)
			default:
				b = appendEscaped(b, vals.piece(part.piece))
			}
		}
	}
	b = append(b, `"} `...)
	if f.scrape != nil {
		b = appendFloat(b, scraped)
	} else {
		b = append(b, number...)
	}
	return append(b, '\n')
}

// taskLine is a task as the exposition writes it: its result, a copy of its values (the
// zero values when it has none), its id escaped, and its project's status_names. (A
// project name needs no escaping.) Every family's line reads the task's values; with the
// copy here, in the order of the lines, that is one pointer less to follow into memory
// where the values lie in the order their answers came, not in this one.
type taskLine struct {
	r           *result
	vals        values
	id          string
	statusNames map[string]string
}

// writeTaskFamily writes family f of the tasks in order: HELP and TYPE before the first
// line, and nothing at all when no task has a series in it. Lines are built in the
// writer's own buffer.
func writeTaskFamily(w *bufio.Writer, f *family, tasks []taskLine) {
	header := false
	for _, t := range tasks {
		b := w.AvailableBuffer()
		if !header {
			b = append(b, f.header...)
		}
		start := len(b)
		b = f.appendLine(b, t)
		if len(b) == start {
			continue // no series: nor the header yet
		}
		header = true
		_, _ = w.Write(b)
	}
}

// escaped is a label value escaped as the text format wants.
func escaped(s string) string {
	if needsEscape(s) {
		return valueEscaper.Replace(s)
	}
	return s
}

// appendEscaped appends a label value escaped as the text format wants.
func appendEscaped(b []byte, s string) []byte {
	if needsEscape(s) {
		return append(b, valueEscaper.Replace(s)...)
	}
	return append(b, s...)
}

// needsEscape reports whether a label value has a character to escape. (A plain loop:
// strings.ContainsAny builds its set on every call, and this runs for every line.)
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '\n' || c == '"' {
			return true
		}
	}
	return false
}

// appendFloat writes a value as client_golang's text encoder does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
