package collector

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// useTaskFamilies makes table the per-task families (and MetricNames follow) until the
// test ends. Values kept before are not read after it: build the refresher afterwards.
// No test of this package runs in parallel, so nothing else reads families meanwhile.
func useTaskFamilies(t *testing.T, table []taskFamily) {
	t.Helper()
	fs, err := deriveFamilies(table)
	if err != nil {
		t.Fatal(err)
	}
	oldFamilies, oldNames := families, MetricNames
	families, MetricNames = fs, metricNames(fs)
	t.Cleanup(func() { families, MetricNames = oldFamilies, oldNames })
}

// describing is a scrape as a prometheus.Collector that also describes: a pedantic
// registry then checks every series against the descriptors.
type describing struct{ scrapeCollector }

func (d describing) Describe(ch chan<- *prometheus.Desc) { d.c.Describe(ch) }

// describeAll returns what c.Describe sends.
func describeAll(c *Collector) []string {
	ch := make(chan *prometheus.Desc, 64)
	c.Describe(ch)
	close(ch)
	var out []string
	for d := range ch {
		out = append(out, d.String())
	}
	return out
}

// gatherPedantic scrapes c into a pedantic registry and fails on any inconsistency with
// its descriptors.
func gatherPedantic(t *testing.T, c *Collector) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(describing{scrapeCollector{ctx: context.Background(), c: c}})
	if _, err := reg.Gather(); err != nil {
		t.Errorf("the series do not match the descriptors: %v", err)
	}
}

// TestDescribeMatchesCollect: every series Collect sends has its descriptor in Describe,
// with the same labels and help.
func TestDescribeMatchesCollect(t *testing.T) {
	ids, api := renderFixture(t)
	gatherPedantic(t, newTestCollector(t, testConfig(ids...), api, log.NewNopLogger()))
}

// testFamilies are two families that only tests define: one from the answer, with labels
// on both sides of task_id (in the order of their names) and one mapped by status_names,
// and one written on every scrape, of another type.
var testFamilies = []taskFamily{
	{
		name: "metastudio_task_remaining_items", kind: prometheus.UntypedValue,
		help: "Items not yet succeeded: total_count - success_count of ShowTask.",
		labels: []taskLabel{
			{name: "zone", value: func(t *metastudio.Task) string { return t.Resource.Text }},
			{name: "phase", value: func(t *metastudio.Task) string { return t.TaskStatus.Text }, statusNames: true},
			{name: "a_kind", value: func(t *metastudio.Task) string { return t.TaskType.Text }},
		},
		value: func(t *metastudio.Task) (float64, bool) {
			total, ok := t.TotalCount.Number()
			done, _ := t.SuccessCount.Number() // 0 when none
			return total - done, ok && done <= total
		},
	},
	{
		name: "metastudio_task_answered_total", kind: prometheus.CounterValue,
		help:   "1 if the task's values were fetched for this scrape.",
		scrape: func(r result) (float64, bool) { return 1, r.err == nil && r.age == 0 },
	},
}

// TestATableEntryIsAFamily: a family added to the table (here, by the test) is in the
// text exposition (with its HELP and TYPE, in the order of the names, as client_golang
// writes it), in protobuf, in Describe and in MetricNames, with no other change.
func TestATableEntryIsAFamily(t *testing.T) {
	useTaskFamilies(t, append(slices.Clone(taskFamilies), testFamilies...))

	rendered := checkRenderedEqualsClientGolang(t) // status_names: 2 -> succeeded
	for _, want := range []string{
		"# HELP metastudio_task_remaining_items Items not yet succeeded: total_count - success_count of ShowTask.",
		"# TYPE metastudio_task_remaining_items untyped",
		`metastudio_task_remaining_items{a_kind="0",phase="succeeded",project="default",task_id="full",zone="qa_pair"} 10`,
		`metastudio_task_remaining_items{a_kind="",phase="x\"y",project="default",task_id="escapes",zone=""} 0.5`,
		"# HELP metastudio_task_answered_total 1 if the task's values were fetched for this scrape.",
		"# TYPE metastudio_task_answered_total counter",
		`metastudio_task_answered_total{project="default",task_id="full"} 1`,
	} {
		if !strings.Contains(rendered, want+"\n") {
			t.Errorf("missing line %s in:\n%s", want, rendered)
		}
	}
	for _, unwanted := range []string{`remaining_items{a_kind="",phase="\xfe"`, `answered_total{project="default",task_id="fails"}`, `remaining_items{a_kind="",phase="",project="default",task_id="spaced"`} {
		if strings.Contains(rendered, unwanted) {
			t.Errorf("unwanted %q in:\n%s", unwanted, rendered)
		}
	}
	checkProtobufEqualsText(t)

	ids, api := renderFixture(t)
	c := newTestCollector(t, testConfig(ids...), api, log.NewNopLogger())
	descs := strings.Join(describeAll(c), "\n")
	for _, want := range []string{
		`fqName: "metastudio_task_remaining_items", help: "Items not yet succeeded: total_count - success_count of ShowTask."`,
		"variableLabels: {project,task_id,zone,phase,a_kind}",
		`fqName: "metastudio_task_answered_total"`,
		`fqName: "metastudio_task_items"`,
	} {
		if !strings.Contains(descs, want) {
			t.Errorf("Describe lacks %s:\n%s", want, descs)
		}
	}
	gatherPedantic(t, c)

	for _, name := range []string{"metastudio_task_remaining_items", "metastudio_task_answered_total", "metastudio_task_items", "metastudio_api_requests_total"} {
		if !slices.Contains(MetricNames, name) {
			t.Errorf("MetricNames lacks %s: %v", name, MetricNames)
		}
	}
}

// TestDeriveFamiliesRefusesMistakes: a table that cannot be exposed as written is refused
// with the family and the mistake named.
func TestDeriveFamiliesRefusesMistakes(t *testing.T) {
	one := func(*metastudio.Task) (float64, bool) { return 1, true }
	text := func(*metastudio.Task) string { return "" }
	good := taskFamily{name: "metastudio_task_x", help: "x", kind: prometheus.GaugeValue, value: one}
	for _, tc := range []struct {
		name string
		edit func(f *taskFamily) []taskFamily
		want string
	}{
		{"fine", func(f *taskFamily) []taskFamily { return []taskFamily{*f} }, ""},
		{"bad name", func(f *taskFamily) []taskFamily { f.name = "metastudio task"; return []taskFamily{*f} }, `"metastudio task": not a valid metric name`},
		{"twice", func(f *taskFamily) []taskFamily { return []taskFamily{*f, *f} }, `"metastudio_task_x": defined twice`},
		{"no help", func(f *taskFamily) []taskFamily { f.help = ""; return []taskFamily{*f} }, "no help"},
		{"no type", func(f *taskFamily) []taskFamily { f.kind = 0; return []taskFamily{*f} }, "a gauge, a counter or untyped"},
		{"no value", func(f *taskFamily) []taskFamily { f.value = nil; return []taskFamily{*f} }, "exactly one of value and scrape"},
		{"two values", func(f *taskFamily) []taskFamily {
			f.scrape = func(result) (float64, bool) { return 1, true }
			return []taskFamily{*f}
		}, "exactly one of value and scrape"},
		{"labels per scrape", func(f *taskFamily) []taskFamily {
			f.value, f.scrape = nil, func(result) (float64, bool) { return 1, true }
			f.labels = []taskLabel{{name: "a", value: text}}
			return []taskFamily{*f}
		}, "no label besides project and task_id"},
		{"task_id", func(f *taskFamily) []taskFamily {
			f.labels = []taskLabel{{name: "task_id", value: text}}
			return []taskFamily{*f}
		}, `label "task_id": twice`},
		{"project", func(f *taskFamily) []taskFamily {
			f.labels = []taskLabel{{name: "project", value: text}}
			return []taskFamily{*f}
		}, `label "project": twice`},
		{"reserved label", func(f *taskFamily) []taskFamily {
			f.labels = []taskLabel{{name: "__name__", value: text}}
			return []taskFamily{*f}
		}, `label "__name__": not a valid label name`},
		{"label without value", func(f *taskFamily) []taskFamily {
			f.labels = []taskLabel{{name: "a"}}
			return []taskFamily{*f}
		}, `label "a": no value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := good
			_, err := deriveFamilies(tc.edit(&f))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestDocsShowEveryTaskFamily: docs/metrics.md's table of per-task series has a line for
// each family of the table, with its labels besides task_id, and none for a family that
// is not in it.
func TestDocsShowEveryTaskFamily(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(metastudio_task_[^`]*)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	for _, f := range taskFamilies {
		want := f.name
		if len(f.labels) > 0 {
			var names []string
			for _, l := range f.labels {
				names = append(names, l.name)
			}
			want += "{" + strings.Join(names, ",") + "}"
		}
		if !documented[want] {
			t.Errorf("docs/metrics.md has no line | `%s` |", want)
		}
		delete(documented, want)
	}
	for line := range documented {
		t.Errorf("docs/metrics.md documents %s, which is not in taskFamilies", line)
	}
}

// TestTargetsCarryTheResource: /sd gives a configured task the resource of its kept
// values (the resource label of the table).
func TestTargetsCarryTheResource(t *testing.T) {
	ids, api := renderFixture(t)
	clock := testkit.NewClock(time.Unix(1_000_000_000, 0))
	r := startRefresher(t, api, clock.Now, 0, 2, 5*time.Second)
	cfg := testConfig(ids...)
	c := New(cfg, projectsOf(cfg, nil), r, Shard{}, log.NewNopLogger())
	c.scrape(context.Background(), c.Watched(""))
	clock.Advance(time.Second) // the targets are worked out once a second
	got := map[string]string{}
	for _, target := range c.Targets(false) {
		got[target.ID] = target.Resource
	}
	if got["full"] != "qa_pair" || got["empty"] != "" || len(got) != len(ids) {
		t.Errorf("targets' resources %q, want qa_pair for full and none for empty", got)
	}
}
