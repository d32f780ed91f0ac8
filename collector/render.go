package collector

import (
	"bufio"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// The per-task families in the order of their names, as the text exposition sorts them.
// A task's series are rendered as text once per values (kube-state-metrics' metrics
// store): a scrape writes each family's HELP and TYPE once and then concatenates the
// tasks' lines. Only scrape_success and data_age are written fresh.
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

// rendered is one task's series as exposition text: the lines of family f are
// text[ends[f-1]:ends[f]] (from 0 for the first). Fresh families (scrape_success,
// data_age) have no lines here.
type rendered struct {
	task *metastudio.Task // the values rendered; a new fetch brings a new pointer
	text string
	ends [nTaskFamilies]uint32
	seen uint64 // the last scrape that used it
}

func (r *rendered) lines(f int) string {
	start := uint32(0)
	if f > 0 {
		start = r.ends[f-1]
	}
	return r.text[start:r.ends[f]]
}

// renderTask renders the series of task id with values t. Like NewConstMetric, it drops
// a series whose label values are not valid UTF-8, rather than failing the scrape.
// scratch is a buffer reused from task to task; the rendering keeps a copy of its own.
func renderTask(id string, t *metastudio.Task, statusNames map[string]string, scratch *[]byte) *rendered {
	r := &rendered{task: t}
	if !utf8.ValidString(id) {
		return r // no series can carry this id (NewConstMetric refuses them all)
	}
	b := (*scratch)[:0]
	defer func() { *scratch = b }()
	number := func(f int, v float64, ok bool) {
		if ok {
			b = append(b, taskFamilies[f].name...)
			b = append(b, `{task_id="`...)
			b = appendEscaped(b, id)
			b = append(b, `"} `...)
			b = appendFloat(b, v)
			b = append(b, '\n')
		}
		r.ends[f] = uint32(len(b))
	}
	label := func(name, value string) {
		b = append(b, name...)
		b = append(b, `="`...)
		b = appendEscaped(b, value)
		b = append(b, '"')
	}
	v, ok := t.BeginTime.Seconds()
	number(famBegin, v, ok)
	r.ends[famDataAge] = uint32(len(b))
	v, ok = t.EndTime.Seconds()
	number(famEnd, v, ok)
	v, ok = t.FailureCount.Number()
	number(famFailed, v, ok)
	// Labels in the order of their names, as client_golang writes them.
	info := [...]struct{ name, value string }{
		{"operator", t.Operator.Text}, {"resource", t.Resource.Text}, {"task_id", id},
		{"task_name", t.TaskName.Text}, {"task_type", t.TaskType.Text}, {"user_id", t.UserID.Text},
	}
	valid := true
	for _, l := range info {
		valid = valid && utf8.ValidString(l.value)
	}
	if valid {
		b = append(b, taskFamilies[famInfo].name...)
		for i, l := range info {
			if i == 0 {
				b = append(b, '{')
			} else {
				b = append(b, ',')
			}
			label(l.name, l.value)
		}
		b = append(b, "} 1\n"...)
	}
	r.ends[famInfo] = uint32(len(b))
	v, ok = t.TotalCount.Number()
	number(famItems, v, ok)
	r.ends[famSuccess] = uint32(len(b))
	if t.TaskStatus.Set && t.TaskStatus.Text != "" {
		status := t.TaskStatus.Text
		if name, ok := statusNames[status]; ok {
			status = name
		}
		if utf8.ValidString(status) {
			b = append(b, taskFamilies[famStatus].name...)
			b = append(b, '{')
			label("status", status)
			b = append(b, ',')
			label("task_id", id)
			b = append(b, "} 1\n"...)
		}
	}
	r.ends[famStatus] = uint32(len(b))
	v, ok = t.SuccessCount.Number()
	number(famSucceeded, v, ok)
	r.text = string(b)
	return r
}

// appendEscaped appends a label value escaped as the text format wants.
func appendEscaped(b []byte, s string) []byte {
	if strings.ContainsAny(s, "\\\n\"") {
		return append(b, valueEscaper.Replace(s)...)
	}
	return append(b, s...)
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

// renderCache keeps each task's rendered series for as long as its values last. It lives
// with its Collector, so a reload (which may change status_names) renders afresh.
type renderCache struct {
	statusNames map[string]string

	mu    sync.Mutex
	byID  map[string]*rendered
	scans uint64 // scrapes so far
}

// get returns the rendered series of each result with values (nil for the others),
// rendering those whose values changed. A /metrics scrape (sweep) then forgets the tasks
// it did not see.
func (c *renderCache) get(results []result, sweep bool) []*rendered {
	out := make([]*rendered, len(results))
	var missing []int
	c.mu.Lock()
	if c.byID == nil {
		c.byID = map[string]*rendered{}
	}
	c.scans++
	scan := c.scans
	for i, r := range results {
		if r.err != nil || r.task == nil {
			continue
		}
		if cached := c.byID[r.id]; cached != nil && cached.task == r.task {
			cached.seen = scan
			out[i] = cached
		} else {
			missing = append(missing, i)
		}
	}
	c.mu.Unlock()
	var scratch []byte
	for _, i := range missing { // rendering needs no lock
		out[i] = renderTask(results[i].id, results[i].task, c.statusNames, &scratch)
		out[i].seen = scan
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range missing {
		c.byID[results[i].id] = out[i]
	}
	if sweep && len(c.byID) > len(results) {
		for id, r := range c.byID {
			if r.seen < scan-1 { // kept for one more scrape: a probe or a concurrent scrape
				delete(c.byID, id)
			}
		}
	}
	return out
}

// writeTaskFamily writes family f of the tasks in order: HELP and TYPE before the first
// line, and nothing at all when no task has a series in it.
func writeTaskFamily(w *bufio.Writer, scratch *[]byte, f int, results []result, rs []*rendered, order []int) {
	header := false
	for _, i := range order {
		r := &results[i]
		var fresh []byte
		var lines string
		switch f {
		case famSuccess, famDataAge:
			if f == famDataAge && r.err != nil {
				continue
			}
			*scratch = appendFresh((*scratch)[:0], f, r.id, r.err == nil, r.age)
			if fresh = *scratch; len(fresh) == 0 {
				continue
			}
		default:
			if rs[i] == nil {
				continue
			}
			if lines = rs[i].lines(f); lines == "" {
				continue
			}
		}
		if !header {
			_, _ = w.WriteString(familyHeaders[f])
			header = true
		}
		if fresh != nil {
			_, _ = w.Write(fresh)
		} else {
			_, _ = w.WriteString(lines)
		}
	}
}

// appendFresh renders a series written on every scrape: scrape_success (ok) or data_age
// (age). Nothing for an id that is not valid UTF-8.
func appendFresh(b []byte, f int, id string, ok bool, age time.Duration) []byte {
	if !utf8.ValidString(id) {
		return b
	}
	b = append(b, taskFamilies[f].name...)
	b = append(b, `{task_id="`...)
	b = appendEscaped(b, id)
	b = append(b, `"} `...)
	if f == famSuccess {
		if ok {
			return append(b, "1\n"...)
		}
		return append(b, "0\n"...)
	}
	b = appendFloat(b, age.Seconds())
	return append(b, '\n')
}
