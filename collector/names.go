package collector

// MetricNames lists every metric family the exporter itself defines, as the contract names
// them. The collector's tests check that what it emits is in this list, and the shipped
// rules and dashboard are checked against it, so a rename is caught everywhere at once.
var MetricNames = []string{
	"metastudio_task_items",
	"metastudio_task_succeeded_items",
	"metastudio_task_failed_items",
	"metastudio_task_status",
	"metastudio_task_info",
	"metastudio_task_begin_timestamp_seconds",
	"metastudio_task_end_timestamp_seconds",
	"metastudio_task_scrape_success",
	"metastudio_scrape_duration_seconds",
	"metastudio_api_requests_total",
	"metastudio_api_request_duration_seconds",
	"metastudio_exporter_build_info",
	"metastudio_auth_ok",
	"metastudio_auth_backoff_seconds",
	"metastudio_clock_skew_seconds",
	"metastudio_task_data_age_seconds",
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
}
