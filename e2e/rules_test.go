package e2e

// The alert rules: promtool checks them and runs their unit tests; every alert has the
// annotations and the unit-test cases the README promises, and every runbook_url points
// at a heading of the README.

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// wantAlerts are the alerts the issue asks for.
var wantAlerts = []string{
	"MetaStudioTaskItemsFailed",
	"MetaStudioTaskFailureRatioHigh",
	"MetaStudioTaskStalled",
	"MetaStudioTaskScrapeFailing",
	"MetaStudioAPIThrottled",
	"MetaStudioExporterDown",
	"MetaStudioAuthFailing",
	"MetaStudioConfigReloadFailed",
	"MetaStudioCredentialsUnavailable",
	"MetaStudioClockSkew",
	"MetaStudioDiscoveryStale",
	"MetaStudioDiscoveryMissedTasks",
	"MetaStudioAPIQuotaExhausted",
	"MetaStudioProjectUnresolved",
}

const runbookBase = "https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#"

func TestPromtoolCheckRules(t *testing.T) {
	promtool := need(t, "promtool")
	out, err := run(t, promtool, "check", "rules", alertsFile)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules %s: %v\n%s", alertsFile, err, out)
	}
	// check config also checks the rule files it names.
	out, err = run(t, promtool, "check", "config", prometheusFile)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check config %s: %v\n%s", prometheusFile, err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := need(t, "promtool")
	out, err := run(t, promtool, "test", "rules", alertsTestFile)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules %s: %v\n%s", alertsTestFile, err, out)
	}
}

// githubAnchors returns the anchors GitHub gives the Markdown headings of text.
func githubAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	inFence := false
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		slug := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(title), ""), " ", "-")
		anchors[slug] = true
	}
	return anchors
}

func TestAlertRules(t *testing.T) {
	readme, err := os.ReadFile(alertingDoc)
	if err != nil {
		t.Fatal(err)
	}
	anchors := githubAnchors(string(readme))
	var alerts []string
	for _, r := range readRules(t, alertsFile) {
		if r.Alert == "" {
			continue
		}
		alerts = append(alerts, r.Alert)
		if r.For != "" {
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for: %v", r.Alert, err)
			}
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s has no %s annotation", r.Alert, a)
			}
		}
		url := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(url, runbookBase)
		if !ok || anchor != strings.ToLower(r.Alert) {
			t.Errorf("%s: runbook_url %q, want %s%s", r.Alert, url, runbookBase, strings.ToLower(r.Alert))
		} else if !anchors[anchor] {
			t.Errorf("%s: runbook_url points at #%s, which is no heading of docs/alerting.md", r.Alert, anchor)
		}
	}
	for _, want := range wantAlerts {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yml has no alert %s", want)
		}
	}
}

// ruleTests is a promtool rule unit-test file.
type ruleTests struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Name        string `yaml:"name"`
		Interval    string `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromqlExprTest []yaml.Node `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// TestEveryAlertHasUnitTests: each alert has a case where it fires (with its labels and
// every annotation), one where it must not, one where it fires and then resolves, and one
// where it stays quiet while MetaStudioAuthFailing fires. TestAlertRulesInEveryMode runs
// them all in every deployment mode.
func TestEveryAlertHasUnitTests(t *testing.T) {
	var f ruleTests
	readYAML(t, alertsTestFile, &f, true)
	if !slices.Equal(f.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("rule_files = %q, want [alerts.yml]", f.RuleFiles)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	resolves, quietWhileAuth := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		type eval struct {
			at     time.Duration
			firing bool
		}
		evals := map[string][]eval{}
		for _, at := range tc.AlertRuleTest {
			d, err := model.ParseDuration(at.EvalTime)
			if err != nil {
				t.Fatalf("%q: eval_time %q: %v", tc.Name, at.EvalTime, err)
			}
			evals[at.Alertname] = append(evals[at.Alertname], eval{time.Duration(d), len(at.ExpAlerts) > 0})
		}
		for name, es := range evals {
			slices.SortFunc(es, func(a, b eval) int { return int(a.at - b.at) })
			for i := 1; i < len(es); i++ {
				if es[i-1].firing && !es[i].firing {
					resolves[name] = true
				}
			}
			for _, e := range es {
				if !e.firing && slices.Contains(evals["MetaStudioAuthFailing"], eval{e.at, true}) {
					quietWhileAuth[name] = true
				}
			}
		}
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) == 0 {
				quiet[at.Alertname]++
				continue
			}
			fires[at.Alertname]++
			for _, ea := range at.ExpAlerts {
				if ea.ExpLabels["severity"] == "" {
					t.Errorf("%q at %s: %s expected without its severity label", tc.Name, at.EvalTime, at.Alertname)
				}
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if ea.ExpAnnotations[a] == "" {
						t.Errorf("%q at %s: %s expected without its %s annotation", tc.Name, at.EvalTime, at.Alertname, a)
					}
				}
			}
		}
	}
	for _, r := range readRules(t, alertsFile) {
		if r.Alert == "" {
			continue
		}
		if fires[r.Alert] == 0 {
			t.Errorf("%s has no unit test where it fires", r.Alert)
		}
		if quiet[r.Alert] == 0 {
			t.Errorf("%s has no unit test where it must not fire", r.Alert)
		}
		if !resolves[r.Alert] {
			t.Errorf("%s has no unit test where it fires and then resolves", r.Alert)
		}
		if r.Alert != "MetaStudioAuthFailing" && !quietWhileAuth[r.Alert] {
			t.Errorf("%s has no unit test where it stays quiet while MetaStudioAuthFailing fires", r.Alert)
		}
	}
}

// processAlerts are the alerts about the exporter process, not about one of its projects.
var processAlerts = []string{"MetaStudioExporterDown", "MetaStudioConfigReloadFailed"}

// groupingRE matches the label lists of on (...) and by (...).
var groupingRE = regexp.MustCompile(`\b(on|by)\s*\(([^)]*)\)`)

// TestAlertsArePerProject: every alert about a project names it in its summary, and every
// join or aggregation that keeps the exporter keeps the project too, so that one project's
// state never silences or merges into another's (alerts_test.yml's two-project cases show
// the behaviour; this holds the rules to it as they are added).
func TestAlertsArePerProject(t *testing.T) {
	for _, r := range readRules(t, alertsFile) {
		if r.Alert == "" || slices.Contains(processAlerts, r.Alert) {
			continue
		}
		if !strings.Contains(r.Annotations["summary"], "{{ $labels.project }}") {
			t.Errorf("%s: summary %q does not name the project", r.Alert, r.Annotations["summary"])
		}
		for _, m := range groupingRE.FindAllStringSubmatch(r.Expr, -1) {
			var labels []string
			for _, l := range strings.Split(m[2], ",") {
				labels = append(labels, strings.TrimSpace(l))
			}
			if slices.Contains(labels, "metastudio_exporter") && !slices.Contains(labels, "project") {
				t.Errorf("%s: %s (%s) keeps metastudio_exporter but not project", r.Alert, m[1], m[2])
			}
		}
	}
}
