{{/* Generated from examples/alerts.yml by `make chart-rules`: do not edit. */}}
{{- define "metastudio-exporter.alertRules" -}}
# Alert rules for metastudio_exporter. Load them from prometheus.yml (rule_files) and check
# them with:
#   promtool check rules examples/alerts.yml
#   promtool test rules examples/alerts_test.yml
# docs/alerting.md explains each alert; runbook_url points there.
#
# The rules find the exporter by one target label, metastudio_exporter, which every shipped
# scrape configuration sets (examples/prometheus*.yml, the ServiceMonitor, the Helm chart):
# the exporter's address, on its own /metrics target and on every /probe target it serves.
# Task series and exporter-wide series (metastudio_auth_ok, up) are joined on it, whatever
# the job and instance labels of the deployment mode. Scrape jobs of your own need it too
# (docs/metrics.md, "Labels the scrape adds"); without it MetaStudioExporterDown fires.
#
# The exporter labels every task series and every series of a project's calls (auth, API,
# quota, discovery, clock, credentials) with project, the name of the project's entry in
# its config ("default" for a config without a projects list). The rules group and join on
# it: each alert is about one project of one exporter, and names the project in its
# summary. A project whose credentials are refused or that cannot be resolved raises its
# own alert and silences its own task alerts, never another project's.
# Every task alert carries project and task_id, and task_name and resource from
# metastudio_task_info.
groups:
  - name: metastudio
    rules:
      # The share of a finished task's items that may fail before MetaStudioTaskFailureRatioHigh
      # fires: 0.1 = 10 %. This is the one place to change it.
      - record: metastudio:task_failure_ratio:threshold
        expr: vector(0.1)

      # A task's failed items rose. The current count is compared with the highest count
      # Prometheus saw between 75 and 15 minutes ago, so the alert fires for 15 minutes after
      # a rise and then resolves for good: a restarted exporter, a task that disappears and
      # comes back, or a count that dips and recovers do not report the same failures twice,
      # and a task seen for the first time does not report the failures it already had.
      # A task that disappears resolves at once. The value is the number of new failed items.
      - alert: MetaStudioTaskItemsFailed
        expr: |
          (
            (
              metastudio_task_failed_items
                - max_over_time(metastudio_task_failed_items[1h] offset 15m)
            ) > 0
          )
          * on (job, instance, metastudio_exporter, project, task_id) group_left (task_name, resource) metastudio_task_info
        labels:
          severity: warning
        annotations:
          summary: "MetaStudio task {{ "{{" }} $labels.task_name {{ "}}" }} of project {{ "{{" }} $labels.project {{ "}}" }} has new failed items"
          description: >-
            {{ "{{" }} $value {{ "}}" }} more item(s) of the {{ "{{" }} $labels.resource {{ "}}" }} task
            {{ "{{" }} $labels.task_name {{ "}}" }} ({{ "{{" }} $labels.task_id {{ "}}" }}, project {{ "{{" }} $labels.project {{ "}}" }}, exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }})
            failed in the last 15 minutes.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudiotaskitemsfailed

      # A task that finished within the last hour with more than the threshold above of its
      # items failed. It resolves an hour after the task's end: it reports the outcome
      # once, not for as long as the exporter keeps the finished task.
      - alert: MetaStudioTaskFailureRatioHigh
        expr: |
          (
            (
              metastudio_task_failed_items / (metastudio_task_items > 0)
                and on (job, instance, metastudio_exporter, project, task_id) (time() - metastudio_task_end_timestamp_seconds < 3600)
            )
            > on () group_left () metastudio:task_failure_ratio:threshold
          )
          * on (job, instance, metastudio_exporter, project, task_id) group_left (task_name, resource) metastudio_task_info
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "MetaStudio task {{ "{{" }} $labels.task_name {{ "}}" }} of project {{ "{{" }} $labels.project {{ "}}" }} finished with many failed items"
          description: >-
            {{ "{{" }} $value | humanizePercentage {{ "}}" }} of the items of the finished {{ "{{" }} $labels.resource {{ "}}" }}
            task {{ "{{" }} $labels.task_name {{ "}}" }} ({{ "{{" }} $labels.task_id {{ "}}" }}, project {{ "{{" }} $labels.project {{ "}}" }}, exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }})
            failed, more than the threshold set by metastudio:task_failure_ratio:threshold.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudiotaskfailureratiohigh

      # A task that has begun and not ended, whose succeeded and failed counts have not moved
      # for 30 minutes. Prometheus must have seen the task begun 30 minutes ago, so a task
      # that was just added to the exporter does not fire. The values must be fresh (fetched
      # in the last 5 minutes): a task the rate budget has not reached keeps its old counts,
      # and that is not a stall. The value is how long it has run.
      - alert: MetaStudioTaskStalled
        expr: |
          (
            (time() - metastudio_task_begin_timestamp_seconds)
              unless on (job, instance, metastudio_exporter, project, task_id) metastudio_task_end_timestamp_seconds
              unless on (job, instance, metastudio_exporter, project, task_id) (changes(metastudio_task_succeeded_items[30m]) > 0)
              unless on (job, instance, metastudio_exporter, project, task_id) (changes(metastudio_task_failed_items[30m]) > 0)
              and on (job, instance, metastudio_exporter, project, task_id) (metastudio_task_begin_timestamp_seconds offset 30m)
              and on (job, instance, metastudio_exporter, project, task_id) (metastudio_task_data_age_seconds < 300)
          )
          * on (job, instance, metastudio_exporter, project, task_id) group_left (task_name, resource) metastudio_task_info
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "MetaStudio task {{ "{{" }} $labels.task_name {{ "}}" }} of project {{ "{{" }} $labels.project {{ "}}" }} has stalled"
          description: >-
            The {{ "{{" }} $labels.resource {{ "}}" }} task {{ "{{" }} $labels.task_name {{ "}}" }} ({{ "{{" }} $labels.task_id {{ "}}" }},
            project {{ "{{" }} $labels.project {{ "}}" }}, exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }}) has run for {{ "{{" }} $value | humanizeDuration {{ "}}" }}
            and processed no item in the last 30 minutes.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudiotaskstalled

      # The exporter cannot read a task. Quiet while MetaStudioAuthFailing or
      # MetaStudioProjectUnresolved speaks for the task's project: one refused key must not
      # raise one alert per task. The join is on metastudio_exporter and project, which task
      # series share with the exporter's own series in every mode (with /probe, they come
      # from different jobs); another project's tasks still alert.
      - alert: MetaStudioTaskScrapeFailing
        expr: |
          (metastudio_task_scrape_success == 0)
          unless on (metastudio_exporter, project) (metastudio_auth_ok == 0)
          unless on (metastudio_exporter, project) (metastudio_project_resolved == 0)
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "The exporter cannot read MetaStudio task {{ "{{" }} $labels.task_id {{ "}}" }} of project {{ "{{" }} $labels.project {{ "}}" }}"
          description: >-
            Exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }} has failed to get task {{ "{{" }} $labels.task_id {{ "}}" }}
            of project {{ "{{" }} $labels.project {{ "}}" }} from the MetaStudio API for 10 minutes. Its log says why (the HTTP status,
            error_code and request id).
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudiotaskscrapefailing

      # The API gateway answers 429: the exporter asks more often than the quota allows.
      # Projects that share an AK share its rate, and each shows the same 429s.
      # metastudio_api_throttled_total exists from the start at 0, so the first 429 counts
      # (a requests_total{code="429"} series only appears with it).
      - alert: MetaStudioAPIThrottled
        expr: |
          sum by (metastudio_exporter, project) (increase(metastudio_api_throttled_total[5m])) > 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "The MetaStudio API throttles the calls of project {{ "{{" }} $labels.project {{ "}}" }}"
          description: >-
            {{ "{{" }} $value | printf "%.0f" {{ "}}" }} call(s) of project {{ "{{" }} $labels.project {{ "}}" }} (exporter
            {{ "{{" }} $labels.metastudio_exporter {{ "}}" }}) were answered 429 (throttled) in the last 5 minutes, and this has gone on for
            10 minutes.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudioapithrottled

      # The API gateway says the call quota is used up (APIGW.0501, or a 429 that states a
      # quota over more than a minute, such as a daily one). The exporter pauses every call
      # (5 minutes, doubling up to an hour) and serves the tasks' last values, until a call
      # gets through again. Not an authentication problem; quiet while the project's key is
      # refused.
      - alert: MetaStudioAPIQuotaExhausted
        expr: |
          (metastudio_api_quota_exhausted == 1)
          unless on (metastudio_exporter, project) (metastudio_auth_ok == 0)
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: "The MetaStudio API quota of project {{ "{{" }} $labels.project {{ "}}" }} is used up"
          description: >-
            The API gateway has answered the calls of project {{ "{{" }} $labels.project {{ "}}" }} (exporter
            {{ "{{" }} $labels.metastudio_exporter {{ "}}" }}) for 5 minutes that the call quota is used up. The exporter pauses its calls
            (metastudio_api_quota_pause_seconds) and serves the tasks' last values, which
            grow old: raise the quota, or make fewer calls.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudioapiquotaexhausted

      # Prometheus cannot reach the exporter: every target it serves (its /metrics and, in
      # probe mode, each /probe target) is down; or no target carries metastudio_exporter
      # at all (a broken service discovery, or a scrape job without the label).
      - alert: MetaStudioExporterDown
        expr: |
          max by (metastudio_exporter) (up{metastudio_exporter!=""}) == 0
          or absent(up{metastudio_exporter!=""})
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: "metastudio_exporter is down"
          description: >-
            {{ "{{" }} with $labels.metastudio_exporter {{ "}}" }}Prometheus has not been able to scrape
            the exporter at {{ "{{" }} . {{ "}}" }} for 5 minutes.{{ "{{" }} else {{ "}}" }}No scrape target carries the
            label metastudio_exporter: Prometheus scrapes no exporter, or its scrape job
            does not set the label.{{ "{{" }} end {{ "}}" }} No MetaStudio task is watched meanwhile.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudioexporterdown

      # The API refuses a project's credentials (or they cannot be had). Every task of that
      # project fails meanwhile, and its MetaStudioTaskScrapeFailing stays quiet. Projects
      # that share the AK share its refusal, and each fires.
      - alert: MetaStudioAuthFailing
        expr: metastudio_auth_ok == 0
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: "The MetaStudio API refuses the credentials of project {{ "{{" }} $labels.project {{ "}}" }}"
          description: >-
            The last API call of project {{ "{{" }} $labels.project {{ "}}" }} (exporter
            {{ "{{" }} $labels.metastudio_exporter {{ "}}" }}) did not authenticate, for 5 minutes. None of its
            tasks can be read. The exporter backs off between attempts
            (metastudio_auth_backoff_seconds) so as not to lock the access key.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudioauthfailing

      # The config file changed and does not load: the exporter keeps the running config,
      # so a change someone made is not in force.
      - alert: MetaStudioConfigReloadFailed
        expr: metastudio_config_last_reload_successful == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "The exporter's config file does not load"
          description: >-
            Exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }} could not load its config file for
            5 minutes and runs with the last good config. Its log says why.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudioconfigreloadfailed

      # IAM or the ECS metadata service cannot be reached (timeouts, network errors, 5xx):
      # the exporter cannot get or renew its token or temporary keys. Not a refusal: that is
      # MetaStudioAuthFailing. Failures in every 10 minutes for 15 minutes.
      - alert: MetaStudioCredentialsUnavailable
        expr: |
          sum by (metastudio_exporter, project, source) (
            increase(metastudio_credential_fetch_failures_total[10m])
          ) > 0
          unless on (metastudio_exporter, project) (metastudio_auth_ok == 0)
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "The exporter cannot fetch the credentials of project {{ "{{" }} $labels.project {{ "}}" }}"
          description: >-
            Exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }} failed {{ "{{" }} $value | printf "%.0f" {{ "}}" }}
            time(s) in the last 10 minutes to fetch the credentials of project
            {{ "{{" }} $labels.project {{ "}}" }} from {{ "{{" }} $labels.source {{ "}}" }},
            and this has gone on for 15 minutes. Once its token or temporary key expires,
            no task can be read.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudiocredentialsunavailable

      # The local clock is more than 5 minutes off the API's. The gateway refuses requests
      # signed more than 15 minutes off; the exporter corrects its signing time past 60 s,
      # but fix NTP before the skew reaches 15 minutes. The clock is measured per API host:
      # projects on one host show the same skew, each under its own label.
      - alert: MetaStudioClockSkew
        expr: abs(metastudio_clock_skew_seconds) > 300
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "The exporter's clock is off for project {{ "{{" }} $labels.project {{ "}}" }}"
          description: >-
            The clock of exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }} differs from the
            MetaStudio API of project {{ "{{" }} $labels.project {{ "}}" }} by {{ "{{" }} $value | humanizeDuration {{ "}}" }}. The API gateway refuses
            requests signed more than 15 minutes off: fix NTP on that host.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudioclockskew

      # Discovery has not listed the tasks for 30 minutes (6 default refresh intervals), or
      # never since the exporter started: the project's new tasks are not watched. Quiet
      # while the project's key is refused (MetaStudioAuthFailing says why).
      - alert: MetaStudioDiscoveryStale
        expr: |
          (time() - metastudio_discovery_last_success_timestamp_seconds > 1800)
          unless on (metastudio_exporter, project) (metastudio_auth_ok == 0)
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "The task discovery of project {{ "{{" }} $labels.project {{ "}}" }} is stale"
          description: >-
            Exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }} has not listed the tasks of project
            {{ "{{" }} $labels.project {{ "}}" }} with SearchTask for {{ "{{" }} $value | humanizeDuration {{ "}}" }}. Tasks begun since then are not
            watched. Its log says why.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudiodiscoverystale

      # Discovery's last listing left tasks out: SearchTask counted tasks that no answer
      # returned, because more of them began in one millisecond than one answer delivers
      # (its time filters cannot split a millisecond). Those tasks are not watched. Tasks
      # left out by discovery.max_tasks do not count (metastudio_discovery_capped says so).
      # Quiet while the project's key is refused.
      - alert: MetaStudioDiscoveryMissedTasks
        expr: |
          (metastudio_discovery_missed_tasks > 0)
          unless on (metastudio_exporter, project) (metastudio_auth_ok == 0)
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "The task discovery of project {{ "{{" }} $labels.project {{ "}}" }} misses tasks"
          description: >-
            The last listing of project {{ "{{" }} $labels.project {{ "}}" }} (exporter
            {{ "{{" }} $labels.metastudio_exporter {{ "}}" }}) missed
            {{ "{{" }} $value | printf "%.0f" {{ "}}" }} task(s) for 15 minutes: SearchTask counted them, but
            more tasks began in one millisecond than one answer delivers, so no answer
            returned them and they are not watched.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudiodiscoverymissedtasks

      # A project the exporter has not resolved for 10 minutes: it has no project id yet
      # (IAM did not name one for the region) or could not set up its calls. None of its
      # tasks is read; the other projects are not held up. Quiet while the project's key is
      # refused (MetaStudioAuthFailing says why).
      - alert: MetaStudioProjectUnresolved
        expr: |
          (metastudio_project_resolved == 0)
          unless on (metastudio_exporter, project) (metastudio_auth_ok == 0)
        for: 10m
        labels:
          severity: critical
        annotations:
          summary: "The exporter cannot resolve project {{ "{{" }} $labels.project {{ "}}" }}"
          description: >-
            Exporter {{ "{{" }} $labels.metastudio_exporter {{ "}}" }} has not resolved project
            {{ "{{" }} $labels.project {{ "}}" }} for 10 minutes, and reads none of its tasks. The other
            projects are served. Its log and /-/ready say why.
          runbook_url: https://github.com/metastudio-exporter/metastudio_exporter/blob/main/docs/alerting.md#metastudioprojectunresolved
{{- end -}}
