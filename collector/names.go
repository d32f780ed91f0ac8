package collector

// MetricNames lists every metric family the exporter itself defines, as the contract names
// them: the per-task families of taskFamilies, then the exporter-wide ones. The collector's
// tests check that what it emits is in this list, and the shipped rules, dashboard and
// docs are checked against it, so a rename is caught everywhere at once.
var MetricNames = metricNames(families)

// metricNames is the names of the families of fs, then exporterMetricNames.
func metricNames(fs *familySet) []string {
	names := make([]string, 0, len(fs.all)+len(exporterMetricNames))
	for _, f := range fs.all {
		names = append(names, f.name)
	}
	return append(names, exporterMetricNames...)
}

// exporterMetricNames are the exporter-wide families, each defined beside its collector.
var exporterMetricNames = []string{
	"metastudio_scrape_duration_seconds",
	"metastudio_api_requests_total",
	"metastudio_api_request_duration_seconds",
	"metastudio_exporter_build_info",
	"metastudio_auth_ok",
	"metastudio_auth_backoff_seconds",
	"metastudio_clock_skew_seconds",
	"metastudio_api_rate_limit_per_second",
	"metastudio_api_throttled_total",
	"metastudio_api_quota_exhausted",
	"metastudio_api_quota_pause_seconds",
	"metastudio_discovery_tasks",
	"metastudio_discovery_last_success_timestamp_seconds",
	"metastudio_discovery_missed_tasks",
	"metastudio_discovery_capped",
	"metastudio_discovery_errors_total",
	"metastudio_discovery_paging",
	"metastudio_config_last_reload_successful",
	"metastudio_config_last_reload_success_timestamp_seconds",
	"metastudio_probe_success",
	"metastudio_probe_duration_seconds",
	"metastudio_project_resolved",
}
