package e2e

// Every PromQL expression we ship (alert rules, dashboard panels and variables) may only
// select metrics the exporter exports, as listed in collector.MetricNames, the list the
// collector's own tests hold the exporter to. A rename there fails here.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
)

// promqlWords are the PromQL words that look like identifiers but select nothing.
var promqlWords = map[string]bool{
	"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "offset": true, "bool": true,
	"atan2": true, "inf": true, "nan": true,
	// aggregation operators, which may be followed by by/without instead of "("
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// labelListWords are followed by a parenthesised list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// selectedMetrics returns the metric names an expression selects, in order of appearance.
// It is a small PromQL lexer: it skips strings, comments, numbers and durations, label
// matchers in {...}, ranges in [...], label lists after by/without/on/ignoring/group_*,
// and function names (an identifier followed by "(").
func selectedMetrics(expr string) ([]string, error) {
	var names []string
	i, n := 0, len(expr)
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(j int) int {
		for j < n && strings.IndexByte(" \t\r\n", expr[j]) >= 0 {
			j++
		}
		return j
	}
	// skipString returns the index after the string literal that starts at j.
	skipString := func(j int) (int, error) {
		quote := expr[j]
		for j++; j < n; j++ {
			switch {
			case expr[j] == '\\' && quote != '`':
				j++
			case expr[j] == quote:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string in %q", expr)
	}
	// skipTo returns the index after the closing byte that matches the opener at j.
	skipTo := func(j int, closing byte) (int, error) {
		for j++; j < n; {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				var err error
				if j, err = skipString(j); err != nil {
					return 0, err
				}
			case c == closing:
				return j + 1, nil
			default:
				j++
			}
		}
		return 0, fmt.Errorf("unclosed %q in %q", closing, expr)
	}
	for i < n {
		c := expr[i]
		switch {
		case strings.IndexByte(" \t\r\n", c) >= 0:
			i++
		case c == '#':
			for i < n && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			var err error
			if i, err = skipString(i); err != nil {
				return nil, err
			}
		case c == '{':
			end, err := skipTo(i, '}')
			if err != nil {
				return nil, err
			}
			if regexp.MustCompile(`(^|[{,\s])__name__\s*[=!]`).MatchString(expr[i:end]) {
				return nil, fmt.Errorf("%q: select metrics by name outside the braces, so that they can be checked", expr)
			}
			i = end
		case c == '$':
			// a Grafana variable: $name, ${name} or ${name:format}
			i++
			if i < n && expr[i] == '{' {
				end, err := skipTo(i, '}')
				if err != nil {
					return nil, err
				}
				i = end
			} else {
				for i < n && isIdent(expr[i]) {
					i++
				}
			}
		case c == '[':
			end, err := skipTo(i, ']')
			if err != nil {
				return nil, err
			}
			i = end
		case c >= '0' && c <= '9' || c == '.' && i+1 < n && expr[i+1] >= '0' && expr[i+1] <= '9':
			for i < n && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < n && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case labelListWords[strings.ToLower(word)] && next < n && expr[next] == '(':
				end, err := skipTo(next, ')')
				if err != nil {
					return nil, err
				}
				j = end
			case promqlWords[strings.ToLower(word)]:
			case next < n && expr[next] == '(':
				// a function
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

func TestSelectedMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (job, instance) (rate(metastudio_api_requests_total{code="429", operation=~"Show.*"}[5m])) > 0`,
			[]string{"metastudio_api_requests_total"}},
		{`sum(x) without (le) / on (job) group_left (task_name, "odd") y offset 1h30m`, []string{"x", "y"}},
		{`max_over_time(a[1h] offset 15m) - b @ 1609746000 unless on(job) c:recorded:rule`, []string{"a", "b", "c:recorded:rule"}},
		{`histogram_quantile(0.95, sum by (le) (rate(h_bucket{a="}"}[$__rate_interval])))`, []string{"h_bucket"}},
		{`vector(1e3) + time() * 0x1f # a comment mentioning not_a_metric
		  and count(z > bool 0.5) or inf`, []string{"z"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`topk by (job) (3, k)`, []string{"k"}},
		{`(a - a offset $__interval) > ${threshold} * b{job=~"$job"}`, []string{"a", "a", "b"}},
	} {
		got, err := selectedMetrics(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("selectedMetrics(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{__name__="metastudio_task_items"}`, `x{a="b}`, `rate(x[5m)`} {
		if got, err := selectedMetrics(bad); err == nil {
			t.Errorf("selectedMetrics(%q) = %q, want an error", bad, got)
		}
	}
}

// rule is one rule of a Prometheus rule file.
type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T, path string) []rule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", path)
	}
	return rules
}

// dashboard is the part of a Grafana dashboard JSON that the tests look at.
type dashboard struct {
	Inputs        json.RawMessage `json:"__inputs"`
	UID           string          `json:"uid"`
	Title         string          `json:"title"`
	SchemaVersion int             `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Datasource *datasourceRef `json:"datasource"`
			Expr       string         `json:"expr"`
			Name       string         `json:"name"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Query       json.RawMessage `json:"query"`
	Definition  string          `json:"definition"`
	Datasource  *datasourceRef  `json:"datasource"`
	Multi       bool            `json:"multi"`
	IncludeAll  bool            `json:"includeAll"`
	AllValue    string          `json:"allValue"`
	QueryString string          `json:"-"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
		Instant    bool           `json:"instant"`
		Range      bool           `json:"range"`
		Format     string         `json:"format"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for i, v := range d.Templating.List {
		var s string
		if json.Unmarshal(v.Query, &s) != nil {
			var q struct {
				Query string `json:"query"`
			}
			_ = json.Unmarshal(v.Query, &q)
			s = q.Query
		}
		d.Templating.List[i].QueryString = s
	}
	return d
}

// allPanels flattens rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// labelValuesRE matches a Grafana variable query label_values(selector, label).
var labelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// exprs returns every PromQL expression of the dashboard, named for messages: panel
// targets, Prometheus variable queries (the selector of label_values) and annotations.
func (d dashboard) exprs() map[string]string {
	out := map[string]string{}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			if m := labelValuesRE.FindStringSubmatch(v.QueryString); m != nil {
				out[fmt.Sprintf("variable %s", v.Name)] = m[1]
			} else {
				out[fmt.Sprintf("variable %s", v.Name)] = v.QueryString
			}
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out[fmt.Sprintf("annotation %q", a.Name)] = a.Expr
		}
	}
	return out
}

// allowedNames is what an expression may select: the exporter's metric names (with the
// series names a histogram adds), Prometheus' own up, and the recording rules of
// alerts.yml.
func allowedNames(t *testing.T) map[string]bool {
	t.Helper()
	ok := map[string]bool{"up": true}
	// Package auth defines two families of its own (credential fetch failures, the clock
	// correction); collector.MetricNames lists the others.
	names := append(slices.Clone(auth.MetricNames), collector.MetricNames...)
	for _, n := range names {
		ok[n] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			ok[n+suffix] = true
		}
	}
	for _, r := range readRules(t, alertsFile) {
		if r.Record != "" {
			ok[r.Record] = true
		}
	}
	return ok
}

// checkNames reports every expression that selects a name outside allowed.
func checkNames(t *testing.T, allowed map[string]bool, exprs map[string]string) {
	t.Helper()
	where := make([]string, 0, len(exprs))
	for w := range exprs {
		where = append(where, w)
	}
	sort.Strings(where)
	for _, w := range where {
		names, err := selectedMetrics(exprs[w])
		if err != nil {
			t.Errorf("%s: %v", w, err)
			continue
		}
		if len(names) == 0 && !strings.Contains(exprs[w], "vector(") {
			t.Errorf("%s selects no metric: %q", w, exprs[w])
		}
		for _, n := range names {
			if !allowed[n] {
				t.Errorf("%s uses %s, which the exporter does not export (collector.MetricNames): %q", w, n, exprs[w])
			}
		}
	}
}

func TestRulesUseExportedNames(t *testing.T) {
	allowed := allowedNames(t)
	exprs := map[string]string{}
	for i, r := range readRules(t, alertsFile) {
		exprs[fmt.Sprintf("rule %d (%s%s)", i, r.Alert, r.Record)] = r.Expr
	}
	checkNames(t, allowed, exprs)
}

func TestDashboardUsesExportedNames(t *testing.T) {
	exprs := readDashboard(t).exprs()
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in the dashboard", len(exprs))
	}
	checkNames(t, allowedNames(t), exprs)
}

// TestDocsListEveryMetric: docs/metrics.md has a line for every family the exporter
// defines (collector.MetricNames, which the per-task families feed from their table, and
// auth.MetricNames), and documents no other.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(metastudio_[a-z0-9_]+)").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	names := append(slices.Clone(auth.MetricNames), collector.MetricNames...)
	for _, n := range names {
		if !documented[n] {
			t.Errorf("docs/metrics.md has no line for %s", n)
		}
	}
	for n := range documented {
		if !slices.Contains(names, n) {
			t.Errorf("docs/metrics.md documents %s, which the exporter does not define", n)
		}
	}
}
