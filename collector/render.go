package collector

import (
	"bufio"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// The per-task families in the order of their names, as the text exposition sorts them.
// A task's values are formatted as exposition text once per answer (values, in the spirit
// of kube-state-metrics' metrics store): a scrape writes each family's HELP and TYPE once
// and then the tasks' lines, put together from the family's name, the id and those
// pieces. Only scrape_success and data_age are formatted on every scrape.
const (
	famBegin = iota
	famDataAge
	famEnd
	famFailed
	famInfo
	famItems
	famSuccess
	famStatus
	famSucceeded
	nTaskFamilies
)

// taskFamilies names the per-task families and gives their HELP, indexed by fam*.
var taskFamilies = [nTaskFamilies]struct{ name, help string }{
	famBegin:     {namespace + "_task_begin_timestamp_seconds", beginHelp},
	famDataAge:   {namespace + "_task_data_age_seconds", dataAgeHelp},
	famEnd:       {namespace + "_task_end_timestamp_seconds", endHelp},
	famFailed:    {namespace + "_task_failed_items", failedHelp},
	famInfo:      {namespace + "_task_info", infoHelp},
	famItems:     {namespace + "_task_items", itemsHelp},
	famSuccess:   {namespace + "_task_scrape_success", successHelp},
	famStatus:    {namespace + "_task_status", statusHelp},
	famSucceeded: {namespace + "_task_succeeded_items", succeededHelp},
}

// familyHeaders holds each family's "# HELP" and "# TYPE" lines, escaped as the text
// format wants.
var familyHeaders = func() (h [nTaskFamilies]string) {
	for i, f := range taskFamilies {
		h[i] = "# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n# TYPE " + f.name + " gauge\n"
	}
	return h
}()

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// values is what the exporter keeps of a task's answer, in place of the decoded task:
// its numbers formatted as the text exposition writes them, and its label values, in one
// string. A scrape writes each line from the family's name, the task's id and these
// pieces, so nothing is parsed or formatted again while the values last, and a task
// keeps about 280 bytes where its decoded form and its rendered lines took 1,150
// (10,000 tasks within 48 MiB). status_names is applied when a line is written, so a
// reload takes effect at the next scrape.
type values struct {
	text     string          // the pieces, concatenated
	ends     [nPieces]uint32 // piece p is text[ends[p-1]:ends[p]] (from 0 for the first)
	finished bool            // the task has an end time: what the freshness rules ask
	info     bool            // every label value of metastudio_task_info is valid UTF-8
}

// The pieces of values. Numbers are "" when the API sent none that can be used; label
// values are as the API sent them (unescaped); pStatus is "" when there is no status.
const (
	pBegin = iota
	pEnd
	pFailed
	pItems
	pSucceeded
	pOperator
	pResource
	pTaskName
	pTaskType
	pUserID
	pStatus
	nPieces
)

// numberPieces gives the piece of each family whose value is one of the task's numbers;
// -1 for the others.
var numberPieces = [nTaskFamilies]int{
	famBegin: pBegin, famDataAge: -1, famEnd: pEnd, famFailed: pFailed, famInfo: -1,
	famItems: pItems, famSuccess: -1, famStatus: -1, famSucceeded: pSucceeded,
}

// newValues keeps what the series of t need, in one allocation of the exact size.
func newValues(t *metastudio.Task) *values {
	v := &values{finished: t.Finished(), info: true}
	numbers := [...]struct {
		p     int
		value func() (float64, bool)
	}{{pBegin, t.BeginTime.Seconds}, {pEnd, t.EndTime.Seconds}, {pFailed, t.FailureCount.Number},
		{pItems, t.TotalCount.Number}, {pSucceeded, t.SuccessCount.Number}}
	labels := [...]struct {
		p int
		s string
	}{{pOperator, t.Operator.Text}, {pResource, t.Resource.Text}, {pTaskName, t.TaskName.Text},
		{pTaskType, t.TaskType.Text}, {pUserID, t.UserID.Text}, {pStatus, t.TaskStatus.Text}}
	var formatted [5 * 24]byte // a float64 in 'g' format takes at most 24 bytes
	nums := formatted[:0]
	for _, n := range numbers {
		if f, ok := n.value(); ok {
			nums = appendFloat(nums, f)
		}
		v.ends[n.p] = uint32(len(nums))
	}
	size := len(nums)
	for _, l := range labels {
		size += len(l.s)
	}
	var b strings.Builder
	b.Grow(size)
	b.Write(nums)
	for _, l := range labels {
		b.WriteString(l.s)
		v.ends[l.p] = uint32(b.Len())
		v.info = v.info && (l.p == pStatus || utf8.ValidString(l.s))
	}
	v.text = b.String()
	return v
}

// Finished reports whether the task has ended (refresh.Value).
func (v *values) Finished() bool { return v.finished }

func (v *values) piece(p int) string {
	start := uint32(0)
	if p > 0 {
		start = v.ends[p-1]
	}
	return v.text[start:v.ends[p]]
}

// status is the value of the status label, status_names applied; ok is false when the
// task has no status or it is not valid UTF-8 (NewConstMetric would refuse it).
func (v *values) status(names map[string]string) (string, bool) {
	status := v.piece(pStatus)
	if status == "" {
		return "", false
	}
	if name, ok := names[status]; ok {
		status = name
	}
	return status, utf8.ValidString(status)
}

// appendLine appends family f's line of a task whose id, escaped, is id, or nothing when
// the task has no such series. Like NewConstMetric, it leaves out a series whose label
// values are not valid UTF-8 rather than failing the scrape.
func (v *values) appendLine(b []byte, f int, id string, statusNames map[string]string) []byte {
	label := func(name, value string) {
		b = append(b, name...)
		b = append(b, `="`...)
		b = appendEscaped(b, value)
		b = append(b, '"')
	}
	switch f {
	case famInfo:
		if !v.info {
			return b
		}
		// Labels in the order of their names, as client_golang writes them.
		b = append(b, taskFamilies[f].name...)
		b = append(b, '{')
		label("operator", v.piece(pOperator))
		b = append(b, ',')
		label("resource", v.piece(pResource))
		b = append(b, `,task_id="`...)
		b = append(b, id...)
		b = append(b, `",`...)
		label("task_name", v.piece(pTaskName))
		b = append(b, ',')
		label("task_type", v.piece(pTaskType))
		b = append(b, ',')
		label("user_id", v.piece(pUserID))
		return append(b, "} 1\n"...)
	case famStatus:
		status, ok := v.status(statusNames)
		if !ok {
			return b
		}
		b = append(b, taskFamilies[f].name...)
		b = append(b, '{')
		label("status", status)
		b = append(b, `,task_id="`...)
		b = append(b, id...)
		return append(b, "\"} 1\n"...)
	}
	number := v.piece(numberPieces[f])
	if number == "" {
		return b
	}
	b = append(b, linePrefixes[f]...)
	b = append(b, id...)
	b = append(b, `"} `...)
	b = append(b, number...)
	return append(b, '\n')
}

// linePrefixes is the start of each family's line for a series with the task_id label
// alone: `name{task_id="`.
var linePrefixes = func() (p [nTaskFamilies]string) {
	for f, fam := range taskFamilies {
		p[f] = fam.name + `{task_id="`
	}
	return p
}()

// taskLine is a task as the exposition writes it: its result and its id, escaped.
type taskLine struct {
	r  *result
	id string
}

// writeTaskFamily writes family f of the tasks in order: HELP and TYPE before the first
// line, and nothing at all when no task has a series in it. Lines are built in the
// writer's own buffer.
func writeTaskFamily(w *bufio.Writer, f int, tasks []taskLine, statusNames map[string]string) {
	header := false
	for _, t := range tasks {
		b := w.AvailableBuffer()
		if !header {
			b = append(b, familyHeaders[f]...)
		}
		start := len(b)
		switch {
		case f == famSuccess || f == famDataAge:
			b = appendFresh(b, f, t)
		case t.r.vals != nil:
			b = t.r.vals.appendLine(b, f, t.id, statusNames)
		}
		if len(b) == start {
			continue // no series: nor the header yet
		}
		header = true
		_, _ = w.Write(b)
	}
}

// appendFresh appends a series written on every scrape: scrape_success, or the data_age
// of a task with values.
func appendFresh(b []byte, f int, t taskLine) []byte {
	if f == famDataAge && t.r.err != nil {
		return b
	}
	b = append(b, linePrefixes[f]...)
	b = append(b, t.id...)
	b = append(b, `"} `...)
	switch {
	case f == famDataAge:
		b = appendFloat(b, t.r.age.Seconds())
	case t.r.err == nil:
		b = append(b, '1')
	default:
		b = append(b, '0')
	}
	return append(b, '\n')
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
