//lint:file-ignore SA1019 the classic dashboard JSON (dashboard.Dashboard) is what every Grafana imports; dashboardv2 is Grafana 12 only.

// Command grafana writes the Grafana dashboard of metastudio_exporter,
// metastudio-dashboard.json, built with the Grafana Foundation SDK (`make dashboard`).
//
// The dashboard works in every deployment mode: its variables come from
// metastudio_task_info, which every mode has (with /probe, /metrics serves no task series
// and build_info is on another job), task panels select on job, metastudio_exporter,
// project and task_id, the panels of a project's calls on metastudio_exporter and project,
// and the process-wide ones (config reloads) on metastudio_exporter only, the target label
// every shipped scrape configuration sets (docs/metrics.md). Every series of a project
// carries project, its entry's name in the config ("default" for the one-project form).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

func main() {
	out, err := Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

// The selectors of the variables: every task series, every series of a project's calls,
// and the process-wide series.
const (
	taskSel     = `job=~"$job", metastudio_exporter=~"$exporter", project=~"$project", task_id=~"$task"`
	infoSel     = taskSel + `, resource=~"$resource"`
	projectSel  = `metastudio_exporter=~"$exporter", project=~"$project"`
	exporterSel = `metastudio_exporter=~"$exporter"`
)

// onTask is the join of two series of one task.
const onTask = "on (job, instance, metastudio_exporter, project, task_id)"

// task selects a per-task metric; withInfo joins it to the task's name and resource (and so
// applies the resource variable).
func task(metric string) string { return metric + "{" + taskSel + "}" }

func withInfo(expr string) string {
	return expr + " * " + onTask + " group_left (task_name, resource) metastudio_task_info{" + infoSel + "}"
}

func ds() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

func query(ref, expr, legend string) *prometheus.DataqueryBuilder {
	q := prometheus.NewDataqueryBuilder().RefId(ref).Expr(expr).Datasource(ds())
	if legend != "" {
		q = q.LegendFormat(legend)
	}
	return q
}

func pos(x, y, w, h uint32) dashboard.GridPos { return dashboard.GridPos{X: x, Y: y, W: w, H: h} }

// variable is a multi-select query variable with All (= .*) listing label of selector.
func variable(name, label, selector, valueLabel string) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", selector, valueLabel)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(ds()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(q)}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")}})
}

func statPanel(id uint32, title, desc, expr string, p dashboard.GridPos) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Id(id).Title(title).Description(desc).Datasource(ds()).GridPos(p).
		Unit("none").
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		WithTarget(query("A", expr, "").Instant())
}

func graph(id uint32, title, desc, unit string, p dashboard.GridPos, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	b := timeseries.NewPanelBuilder().Id(id).Title(title).Description(desc).Datasource(ds()).GridPos(p).Unit(unit)
	for _, t := range targets {
		b = b.WithTarget(t.Range())
	}
	return b
}

// resolvedPanel shows, per project, whether the exporter has resolved it:
// metastudio_project_resolved, 1 or 0, shown as text on green or red.
func resolvedPanel(id uint32, p dashboard.GridPos) *stat.PanelBuilder {
	result := func(text, color string) dashboard.ValueMappingResult {
		return dashboard.ValueMappingResult{Text: cog.ToPtr(text), Color: cog.ToPtr(color)}
	}
	resolved := dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{
		"1": result("resolved", "green"), "0": result("not resolved", "red")}}
	return stat.NewPanelBuilder().Id(id).Title("Projects resolved").
		Description("Per project, whether the exporter has resolved it (metastudio_project_resolved): 1 once its project id is known, from the config or from IAM; 0 while it is not, and none of the project's tasks is read (MetaStudioProjectUnresolved).").
		Datasource(ds()).GridPos(p).Unit("none").
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		ColorMode(common.BigValueColorModeBackground).
		Mappings([]dashboard.ValueMapping{{ValueMap: &resolved}}).
		WithTarget(query("A", "metastudio_project_resolved{"+projectSel+"}", "{{metastudio_exporter}} {{project}}").Instant())
}

// Build returns the dashboard.
func Build() (dashboard.Dashboard, error) {
	inProgress := "count(" + withInfo("("+task("metastudio_task_begin_timestamp_seconds")+
		" unless "+onTask+" "+task("metastudio_task_end_timestamp_seconds")+")") + ") or vector(0)"
	withFailures := "count(" + withInfo("("+task("metastudio_task_failed_items")+" > 0)") + ") or vector(0)"
	// Over a range, one task may have series with different target labels (with /probe,
	// resource appears once /sd knows it): aggregate to the task before joining.
	const byTask = "by (job, instance, metastudio_exporter, project, task_id)"
	failedInRange := "sum(" + withInfo("(max "+byTask+" (max_over_time("+task("metastudio_task_failed_items")+"[$__range])) - min "+byTask+" (min_over_time("+
		task("metastudio_task_failed_items")+"[$__range])))") + ") or vector(0)"

	tq := func(ref, expr string) *prometheus.DataqueryBuilder {
		return query(ref, expr, "").Instant().Format(prometheus.PromQueryFormatTable)
	}
	begin, end := task("metastudio_task_begin_timestamp_seconds"), task("metastudio_task_end_timestamp_seconds")
	tasks := table.NewPanelBuilder().Id(4).Title("Tasks").Datasource(ds()).GridPos(pos(0, 4, 24, 10)).
		Description("One row per task: its project, name, resource and status (task_status, or its name from status_names), its items, the share done, start, end and duration (until now while it runs).").
		WithTarget(tq("A", "max by (job, instance, metastudio_exporter, project, task_id, task_name, resource) (metastudio_task_info{"+infoSel+"})")).
		WithTarget(tq("B", withInfo(task("metastudio_task_status")))).
		WithTarget(tq("C", withInfo(task("metastudio_task_items")))).
		WithTarget(tq("D", withInfo(task("metastudio_task_succeeded_items")))).
		WithTarget(tq("E", withInfo(task("metastudio_task_failed_items")))).
		WithTarget(tq("F", withInfo("("+task("metastudio_task_succeeded_items")+" + "+task("metastudio_task_failed_items")+") / ("+task("metastudio_task_items")+" > 0)"))).
		WithTarget(tq("G", withInfo(begin+" * 1000"))).
		WithTarget(tq("H", withInfo(end+" * 1000"))).
		WithTarget(tq("I", withInfo("(("+end+" or "+onTask+" (0 * "+begin+" + time())) - "+onTask+" "+begin+")"))).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})).
		WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": map[string]any{"Time": true, "job": true, "instance": true, "Value #A": true, "Value #B": true},
			"renameByName": map[string]any{"project": "Project", "task_name": "Task", "task_id": "Task id", "resource": "Resource", "status": "Status",
				"metastudio_exporter": "Exporter", "Value #C": "Total", "Value #D": "Succeeded", "Value #E": "Failed",
				"Value #F": "Done", "Value #G": "Start", "Value #H": "End", "Value #I": "Duration"},
			"indexByName": map[string]any{"project": 0, "task_name": 1, "resource": 2, "status": 3, "Value #C": 4, "Value #D": 5,
				"Value #E": 6, "Value #F": 7, "Value #G": 8, "Value #H": 9, "Value #I": 10, "task_id": 11, "metastudio_exporter": 12},
		}}).
		OverrideByName("Done", []dashboard.DynamicConfigValue{{Id: "unit", Value: "percentunit"}, {Id: "decimals", Value: 1}}).
		OverrideByName("Start", []dashboard.DynamicConfigValue{{Id: "unit", Value: "dateTimeAsIso"}}).
		OverrideByName("End", []dashboard.DynamicConfigValue{{Id: "unit", Value: "dateTimeAsIso"}}).
		OverrideByName("Duration", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}})

	legend := "{{project}}: {{task_name}} ({{task_id}})"
	b := dashboard.NewDashboardBuilder("MetaStudio import/export tasks").
		Uid("metastudio-tasks").
		Description("Huawei Cloud MetaStudio import/export tasks, from metastudio_exporter. Works with /metrics and with /sd + /probe: the exporter is chosen by the metastudio_exporter target label, the project by the project label.").
		Tags([]string{"metastudio", "prometheus"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("1m").
		Time("now-6h", "now").
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(variable("job", "Job", "metastudio_task_info", "job")).
		WithVariable(variable("exporter", "Exporter", `metastudio_task_info{job=~"$job"}`, "metastudio_exporter")).
		WithVariable(variable("project", "Project", `metastudio_task_info{job=~"$job", metastudio_exporter=~"$exporter"}`, "project")).
		WithVariable(variable("resource", "Resource", `metastudio_task_info{job=~"$job", metastudio_exporter=~"$exporter", project=~"$project"}`, "resource")).
		WithVariable(variable("task", "Task", `metastudio_task_info{job=~"$job", metastudio_exporter=~"$exporter", project=~"$project", resource=~"$resource"}`, "task_id")).
		WithPanel(statPanel(1, "Tasks in progress", "Tasks that have begun and not ended.", inProgress, pos(0, 0, 8, 4))).
		WithPanel(statPanel(2, "Tasks with failures", "Tasks with at least one failed item.", withFailures, pos(8, 0, 8, 4))).
		WithPanel(statPanel(3, "Failed items in range", "Items that failed during the dashboard's time range, over all selected tasks.", failedInRange, pos(16, 0, 8, 4))).
		WithPanel(tasks).
		WithPanel(graph(5, "Items succeeded", "success_count per task.", "none", pos(0, 14, 12, 8),
			query("A", withInfo(task("metastudio_task_succeeded_items")), legend))).
		WithPanel(graph(6, "Items failed", "failure_count per task.", "none", pos(12, 14, 12, 8),
			query("A", withInfo(task("metastudio_task_failed_items")), legend))).
		WithPanel(graph(7, "Failed items per interval", "How many more items of each task failed in each interval (bars only where the count rose).", "none", pos(0, 22, 24, 7),
			query("A", withInfo("(("+task("metastudio_task_failed_items")+" - "+task("metastudio_task_failed_items")+" offset $__interval) > 0)"), legend)).
			DrawStyle(common.GraphDrawStyleBars)).
		WithRow(dashboard.NewRowBuilder("Exporter health").Id(8).GridPos(pos(0, 29, 24, 1))).
		WithPanel(graph(9, "API requests by code", "MetaStudio and IAM calls per second, by operation and HTTP status (error: no response).", "reqps", pos(0, 30, 12, 8),
			query("A", "sum by (metastudio_exporter, project, operation, code) (rate(metastudio_api_requests_total{"+projectSel+"}[$__rate_interval]))", "{{metastudio_exporter}} {{project}} {{operation}} {{code}}"))).
		WithPanel(graph(10, "API call duration (95th percentile)", "How long API calls take, by operation.", "s", pos(12, 30, 12, 8),
			query("A", "histogram_quantile(0.95, sum by (le, metastudio_exporter, project, operation) (rate(metastudio_api_request_duration_seconds_bucket{"+projectSel+"}[$__rate_interval])))", "{{metastudio_exporter}} {{project}} {{operation}}"))).
		WithPanel(graph(11, "Call rate and 429s", "The call rate in force (adaptive, or the quota a 429 stated), and answers per second of 429 or of a used-up quota.", "reqps", pos(0, 38, 8, 8),
			query("A", "metastudio_api_rate_limit_per_second{"+projectSel+"}", "{{metastudio_exporter}} {{project}} rate in force"),
			query("B", "rate(metastudio_api_throttled_total{"+projectSel+"}[$__rate_interval])", "{{metastudio_exporter}} {{project}} 429/s"))).
		WithPanel(graph(12, "Tasks not scraped", "Tasks whose values the exporter does not have (metastudio_task_scrape_success 0).", "none", pos(8, 38, 8, 8),
			query("A", "sum by (metastudio_exporter, project) (1 - "+task("metastudio_task_scrape_success")+")", "{{metastudio_exporter}} {{project}}"))).
		WithPanel(statPanel(13, "Credentials", "Whether the API accepted each project's credentials on its last call (1), and the cool-down left after a refusal.", "metastudio_auth_ok{"+projectSel+"}", pos(16, 38, 8, 8)).
			WithTarget(query("B", "metastudio_auth_backoff_seconds{"+projectSel+"}", "{{metastudio_exporter}} {{project}} cool-down").Instant())).
		WithPanel(graph(14, "Age of task values", "Seconds since each task's values were fetched: high while the rate budget does not reach a task.", "s", pos(0, 46, 12, 8),
			query("A", "max by (metastudio_exporter, project) ("+task("metastudio_task_data_age_seconds")+")", "{{metastudio_exporter}} {{project}} oldest"))).
		WithPanel(graph(15, "Config reloads and clock", "Whether the last config reload worked, and the clock's offset from the API's.", "none", pos(12, 46, 12, 8),
			query("A", "metastudio_config_last_reload_successful{"+exporterSel+"}", "{{metastudio_exporter}} reload ok"),
			query("B", "metastudio_clock_skew_seconds{"+projectSel+"}", "{{metastudio_exporter}} {{project}} clock skew (s)"))).
		WithPanel(statPanel(16, "Tasks discovery missed", "Tasks that discovery's last listing counted but no SearchTask answer returned: more tasks began in one millisecond than one answer delivers, and they are not watched (MetaStudioDiscoveryMissedTasks). 0 when the listing was complete, and without discovery.",
			"sum(metastudio_discovery_missed_tasks{"+projectSel+"}) or vector(0)", pos(0, 54, 8, 4))).
		WithPanel(statPanel(17, "Discovery at max_tasks", "1 when discovery's last listing stopped at discovery.max_tasks with more tasks to list: the oldest tasks are not watched. Raise max_tasks, or narrow discovery.resources or business_id.",
			"max(metastudio_discovery_capped{"+projectSel+"}) or vector(0)", pos(8, 54, 8, 4))).
		WithPanel(resolvedPanel(18, pos(16, 54, 8, 4)))
	return b.Build()
}

// Generate returns the dashboard's JSON, as committed.
func Generate() ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	if strings.Contains(string(out), "${DS_") {
		return nil, fmt.Errorf("the dashboard must not need import-time inputs")
	}
	return append(out, '\n'), nil
}
