package e2e

// The Grafana dashboard's structure. Grafana itself is not installed here, so this is what
// can be held without it: a Grafana 10 schema, no import-time inputs, a datasource
// variable that every query goes through, the variables and panels the README describes.
// The end-to-end test evaluates every query against a real Prometheus.

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// selectorRE matches a selector of one of our metrics, with its label matchers if any.
var selectorRE = regexp.MustCompile(`\b(metastudio_\w+)(\{[^}]*\})?`)

// Panels the README and the e2e test rely on, by title.
var wantPanels = []string{
	"Tasks in progress", "Tasks with failures", "Failed items in range",
	"Tasks",
	"Items succeeded", "Items failed", "Failed items per interval",
	"API requests by code", "Call rate and 429s", "Tasks not scraped", "Credentials",
	"Tasks discovery missed", "Discovery at max_tasks", "Projects resolved",
}

// The metric a panel must show, by title: the ones a user looks for by name.
var wantPanelMetric = map[string]string{
	"Credentials":       "metastudio_auth_ok",
	"Projects resolved": "metastudio_project_resolved",
}

func TestDashboardStructure(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	d := readDashboard(t)
	if d.SchemaVersion < 38 {
		t.Errorf("schemaVersion %d, want 38 (Grafana 10) or later", d.SchemaVersion)
	}
	if d.Inputs != nil || strings.Contains(string(raw), "${DS_") {
		t.Error("the dashboard must not need __inputs: every query uses the ${datasource} variable")
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}

	vars := map[string]variable{}
	var order []string
	for _, v := range d.Templating.List {
		vars[v.Name] = v
		order = append(order, v.Name)
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query through ${datasource}", v.Name)
		}
	}
	if ds := vars["datasource"]; ds.Type != "datasource" || ds.QueryString != "prometheus" {
		t.Errorf("variable datasource: type %q query %q, want a datasource variable of type prometheus", ds.Type, ds.QueryString)
	}
	// Every variable lists values of metastudio_task_info, which every mode has (with
	// /probe, build_info and the exporter-wide series are on another job), and is a
	// multi-select with All.
	for name, want := range map[string]struct {
		label    string
		contains []string
	}{
		"job":      {"job", []string{"metastudio_task_info"}},
		"exporter": {"metastudio_exporter", []string{"metastudio_task_info{", `job=~"$job"`}},
		"project":  {"project", []string{"metastudio_task_info{", `job=~"$job"`, `metastudio_exporter=~"$exporter"`}},
		"resource": {"resource", []string{"metastudio_task_info{", `job=~"$job"`, `metastudio_exporter=~"$exporter"`, `project=~"$project"`}},
		"task":     {"task_id", []string{"metastudio_task_info{", `job=~"$job"`, `metastudio_exporter=~"$exporter"`, `project=~"$project"`, `resource=~"$resource"`}},
	} {
		v, ok := vars[name]
		if !ok || v.Type != "query" {
			t.Errorf("no query variable %s", name)
			continue
		}
		if m := labelValuesRE.FindStringSubmatch(v.QueryString); m == nil || m[2] != want.label {
			t.Errorf("variable %s: query %q, want label_values(..., %s)", name, v.QueryString, want.label)
		}
		for _, w := range want.contains {
			if !strings.Contains(v.QueryString, w) {
				t.Errorf("variable %s: query %q does not contain %s", name, v.QueryString, w)
			}
		}
		if !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
			t.Errorf("variable %s: multi %v includeAll %v allValue %q, want a multi-select with All = .*", name, v.Multi, v.IncludeAll, v.AllValue)
		}
	}
	// A variable may only use variables defined before it.
	for i, name := range order {
		for _, later := range order[i:] {
			if strings.Contains(vars[name].QueryString, "$"+later+"\"") {
				t.Errorf("variable %s uses $%s, which is defined after it", name, later)
			}
		}
	}

	ids := map[int]bool{}
	var titles []string
	type cell struct{ x, y int }
	occupied := map[cell]string{}
	for _, p := range d.allPanels() {
		titles = append(titles, p.Title)
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := occupied[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
					y, x = 1<<30, 1<<30 // one message per pair is enough
					continue
				}
				occupied[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want uid ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		if metric, ok := wantPanelMetric[p.Title]; ok {
			shown := false
			for _, tg := range p.Targets {
				for _, m := range selectorRE.FindAllStringSubmatch(tg.Expr, -1) {
					shown = shown || m[1] == metric
				}
			}
			if !shown {
				t.Errorf("panel %q does not show %s", p.Title, metric)
			}
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" || tg.Datasource.Type != "prometheus" {
				t.Errorf("panel %q target %s: datasource %+v, want prometheus ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s has no expression", p.Title, tg.RefID)
			}
			// Every selector follows the exporter selection; every metric of a project
			// (all but the process-wide ones) the project selection; and per-task metrics
			// the job and task selection too. Exporter-wide metrics do not filter on job:
			// with /probe they are on the exporter's own job, not the tasks'. A
			// process-wide metric has no project label, so a project filter would hide it.
			// Every join and grouping that keeps the exporter keeps the project.
			for _, g := range groupingRE.FindAllStringSubmatch(tg.Expr, -1) {
				if strings.Contains(g[2], "metastudio_exporter") && !strings.Contains(g[2], "project") {
					t.Errorf("panel %q target %s: %s (%s) keeps metastudio_exporter but not project", p.Title, tg.RefID, g[1], g[2])
				}
			}
			for _, m := range selectorRE.FindAllStringSubmatch(tg.Expr, -1) {
				if m[1] == "metastudio_exporter" {
					continue // the label, in by (...) or on (...)
				}
				want := []string{`metastudio_exporter=~"$exporter"`}
				if !processWide(m[1]) {
					want = append(want, `project=~"$project"`)
				} else if strings.Contains(m[2], "project") {
					t.Errorf("panel %q target %s: %s%s filters on project, which a process-wide series has not", p.Title, tg.RefID, m[1], m[2])
				}
				if strings.HasPrefix(m[1], "metastudio_task_") {
					want = append(want, `job=~"$job"`, `task_id=~"$task"`)
				}
				for _, w := range want {
					if !strings.Contains(m[2], w) {
						t.Errorf("panel %q target %s: %s%s does not filter %s", p.Title, tg.RefID, m[1], m[2], w)
					}
				}
			}
		}
	}
	for _, want := range wantPanels {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q", want)
		}
	}
}

// processWide reports whether a metric is about the exporter process rather than one of its
// projects: such series carry no project label.
func processWide(name string) bool {
	return strings.HasPrefix(name, "metastudio_config_") || name == "metastudio_scrape_duration_seconds" ||
		name == "metastudio_exporter_build_info"
}
