package collector

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// taskFamily defines one per-task metric family, in the manner of kube-state-metrics'
// FamilyGenerator. Every series of the family carries the project and task_id labels.
type taskFamily struct {
	name   string
	help   string               // what the value is and which API field it comes from
	kind   prometheus.ValueType // GaugeValue, CounterValue or UntypedValue
	labels []taskLabel          // the labels besides project and task_id, in the descriptor's order

	// value gives the series' value from a task's answer; ok false leaves the series
	// out. It is formatted once per answer (newValues), not per scrape.
	value func(t *metastudio.Task) (v float64, ok bool)
	// scrape gives the value of a family written on every scrape from what the scrape
	// knows of the task, even when its call failed; ok false leaves the series out.
	// Such a family has no label besides project and task_id. Exactly one of value and
	// scrape is set.
	scrape func(r result) (v float64, ok bool)
}

// taskLabel is a label whose value comes from the task's answer, kept as the API sent it.
type taskLabel struct {
	name  string
	value func(t *metastudio.Task) string
	// statusNames: the value is replaced by its name in status_names, when it has one,
	// as the series is written, so that a reload takes effect at the next scrape.
	statusNames bool
}

// cached ends the HELP of the series that may come from the cache.
const cached = " A finished task's values may come from the cache for up to cache.finished_ttl (see metastudio_task_data_age_seconds)."

// taskFamilies is every per-task family: the one place a family is defined. Its
// descriptor, its HELP and TYPE lines, where it goes in the text exposition, the series
// of both exposition paths, MetricNames and the docs check all derive from its entry.
// docs/metrics.md has a line for each (TestDocsShowEveryTaskFamily).
var taskFamilies = []taskFamily{
	{
		name: namespace + "_task_items", kind: prometheus.GaugeValue,
		help:  "Items in the task: total_count of ShowTask." + cached,
		value: func(t *metastudio.Task) (float64, bool) { return t.TotalCount.Number() },
	},
	{
		name: namespace + "_task_succeeded_items", kind: prometheus.GaugeValue,
		help:  "Items of the task that succeeded so far: success_count of ShowTask." + cached,
		value: func(t *metastudio.Task) (float64, bool) { return t.SuccessCount.Number() },
	},
	{
		name: namespace + "_task_failed_items", kind: prometheus.GaugeValue,
		help:  "Items of the task that failed so far: failure_count of ShowTask." + cached,
		value: func(t *metastudio.Task) (float64, bool) { return t.FailureCount.Number() },
	},
	{
		name: namespace + "_task_status", kind: prometheus.GaugeValue,
		help:   "Always 1; status is task_status of ShowTask as text, or its name from status_names.",
		labels: []taskLabel{{name: "status", value: func(t *metastudio.Task) string { return t.TaskStatus.Text }, statusNames: true}},
		value:  func(t *metastudio.Task) (float64, bool) { return 1, t.TaskStatus.Text != "" },
	},
	{
		name: namespace + "_task_info", kind: prometheus.GaugeValue,
		help: "Always 1; the labels carry task_name, resource, task_type, operator and user_id of ShowTask.",
		labels: []taskLabel{
			{name: "task_name", value: func(t *metastudio.Task) string { return t.TaskName.Text }},
			{name: "resource", value: func(t *metastudio.Task) string { return t.Resource.Text }},
			{name: "task_type", value: func(t *metastudio.Task) string { return t.TaskType.Text }},
			{name: "operator", value: func(t *metastudio.Task) string { return t.Operator.Text }},
			{name: "user_id", value: func(t *metastudio.Task) string { return t.UserID.Text }},
		},
		value: func(*metastudio.Task) (float64, bool) { return 1, true },
	},
	{
		name: namespace + "_task_begin_timestamp_seconds", kind: prometheus.GaugeValue,
		help:  "When the task began, in seconds since the epoch: begin_time of ShowTask / 1000.",
		value: func(t *metastudio.Task) (float64, bool) { return t.BeginTime.Seconds() },
	},
	{
		name: namespace + "_task_end_timestamp_seconds", kind: prometheus.GaugeValue,
		help:  "When the task ended, in seconds since the epoch: end_time of ShowTask / 1000.",
		value: func(t *metastudio.Task) (float64, bool) { return t.EndTime.Seconds() },
	},
	{
		name: namespace + "_task_scrape_success", kind: prometheus.GaugeValue,
		help: "1 if this scrape has the task's values (from ShowTask, or known ones as metastudio_task_data_age_seconds tells), 0 if its call failed or nothing is known (then its other series are absent).",
		scrape: func(r result) (float64, bool) {
			if r.err != nil {
				return 0, true
			}
			return 1, true
		},
	},
	{
		name: namespace + "_task_data_age_seconds", kind: prometheus.GaugeValue,
		help:   "Seconds since the task's values were fetched by ShowTask or listed by SearchTask: 0 for a call of this scrape, more for a finished task served from the cache or a task the rate limit did not reach.",
		scrape: func(r result) (float64, bool) { return r.age.Seconds(), r.err == nil },
	},
}

// family is an entry of taskFamilies with what derives from it.
type family struct {
	taskFamily
	desc   *prometheus.Desc // project, task_id, then the labels
	header string           // the "# HELP" and "# TYPE" lines, escaped as the text format wants

	// The pieces of values that hold the family's formatted value (-1 for a scrape
	// family) and each label's value.
	valuePiece  int
	labelPieces []int

	// A text line is each part of text (the labels in the order of their names, as
	// client_golang writes them, project and task_id among them), then `"} `, the value
	// and "\n".
	text []textPart
}

// The pieces of a text line that come from the task's key rather than its values.
const (
	pieceID      = -1 // task_id
	pieceProject = -2 // project
)

// textPart is a label of a text line: what comes before its value, and where the value
// comes from.
type textPart struct {
	prefix      string // `name{label="` for the first label, `",label="` for the others
	piece       int    // the piece of values that holds the value; pieceID or pieceProject
	statusNames bool   // the value is replaced by its name in status_names
}

// familySet is taskFamilies with what derives from it.
type familySet struct {
	all        []*family      // in the table's order
	byName     []*family      // in the order of their names, as the text exposition sorts them
	pieces     int            // how many pieces values keeps of an answer
	maxLabels  int            // the most labels of one family, project and task_id included
	labelPiece map[string]int // the piece of the first label of each name (values.label)
}

// families is what the exporter derives from taskFamilies, once, as the package loads.
var families = mustDeriveFamilies(taskFamilies)

func mustDeriveFamilies(table []taskFamily) *familySet {
	fs, err := deriveFamilies(table)
	if err != nil {
		panic(err) // a mistake in the table: every test of the package fails on it
	}
	return fs
}

// deriveFamilies checks a table of families and derives the rest from it.
func deriveFamilies(table []taskFamily) (*familySet, error) {
	fs := &familySet{labelPiece: map[string]int{}}
	seen := map[string]bool{}
	for _, def := range table {
		if err := checkFamily(def, seen); err != nil {
			return nil, fmt.Errorf("metric family %q: %w", def.name, err)
		}
		f := &family{taskFamily: def, valuePiece: -1}
		names := []string{"project", "task_id"}
		if def.value != nil { // the labels' pieces, then the value's (newValues)
			for _, l := range def.labels {
				if _, ok := fs.labelPiece[l.name]; !ok {
					fs.labelPiece[l.name] = fs.pieces
				}
				f.labelPieces = append(f.labelPieces, fs.pieces)
				fs.pieces++
				names = append(names, l.name)
			}
			f.valuePiece = fs.pieces
			fs.pieces++
		}
		f.desc = prometheus.NewDesc(def.name, def.help, names, nil)
		if err := f.desc.Err(); err != nil {
			return nil, fmt.Errorf("metric family %q: %w", def.name, err)
		}
		f.header = "# HELP " + def.name + " " + helpEscaper.Replace(def.help) + "\n# TYPE " + def.name + " " + typeNames[def.kind] + "\n"
		f.text = []textPart{{prefix: "project", piece: pieceProject}, {prefix: "task_id", piece: pieceID}} // the label's name, for now
		for i, l := range def.labels {
			f.text = append(f.text, textPart{prefix: l.name, piece: f.labelPieces[i], statusNames: l.statusNames})
		}
		slices.SortFunc(f.text, func(a, b textPart) int { return strings.Compare(a.prefix, b.prefix) })
		for i := range f.text {
			before := `",`
			if i == 0 {
				before = def.name + "{"
			}
			f.text[i].prefix = before + f.text[i].prefix + `="`
		}
		fs.all = append(fs.all, f)
		fs.maxLabels = max(fs.maxLabels, len(names))
	}
	fs.byName = slices.Clone(fs.all)
	slices.SortFunc(fs.byName, func(a, b *family) int { return strings.Compare(a.name, b.name) })
	return fs, nil
}

// typeNames are the text format's names of the types a family may have.
var typeNames = map[prometheus.ValueType]string{
	prometheus.GaugeValue: "gauge", prometheus.CounterValue: "counter", prometheus.UntypedValue: "untyped",
}

// checkFamily reports what is wrong with a family's definition; seen holds the names of
// the families before it.
func checkFamily(f taskFamily, seen map[string]bool) error {
	switch {
	case !model.LegacyValidation.IsValidMetricName(f.name):
		return errors.New("not a valid metric name")
	case seen[f.name]:
		return errors.New("defined twice")
	case f.help == "":
		return errors.New("no help")
	case typeNames[f.kind] == "":
		return errors.New("the type must be a gauge, a counter or untyped")
	case (f.value == nil) == (f.scrape == nil):
		return errors.New("exactly one of value and scrape must be set")
	case f.scrape != nil && len(f.labels) > 0:
		return errors.New("a family written on every scrape has no label besides project and task_id")
	}
	seen[f.name] = true
	labels := map[string]bool{"project": true, "task_id": true}
	for _, l := range f.labels {
		switch {
		case !model.LegacyValidation.IsValidLabelName(l.name) || strings.HasPrefix(l.name, "__"):
			return fmt.Errorf("label %q: not a valid label name", l.name)
		case labels[l.name]:
			return fmt.Errorf("label %q: twice (project and task_id are always there)", l.name)
		case l.value == nil:
			return fmt.Errorf("label %q: no value", l.name)
		}
		labels[l.name] = true
	}
	return nil
}

// Describe sends the descriptors of what Collect sends: every per-task family and
// scrape_duration_seconds.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families.all {
		ch <- f.desc
	}
	ch <- durationDesc
}
