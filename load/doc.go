// Package load holds the load cases: the built exporter binary against the built simulator
// binary. BenchmarkLoad measures one refresher for the whole process, with the simulator
// behind its throttling gateway: 400 running tasks (none finished, so no cache can answer), the
// gateway at 30 calls/s (burst 30), the exporter at max_requests_per_second 50 and
// concurrency 8 with everything else at its defaults, and 8 scrapers that each GET
// /metrics every 2 s for 75 s with X-Prometheus-Scrape-Timeout-Seconds: 10.
//
// After the first 25 s it measures, per scrape, the share of tasks with
// metastudio_task_scrape_success 1 and the largest metastudio_task_data_age_seconds; from
// the gateway's counts (the simulator's /-/sim/stats), the tasks never answered, the share
// of the gateway's allowance used, the share of calls throttled and the share of answered
// calls that repeat a task answered less than 1 s before; and the scrape latencies. It
// prints each acceptance target as met or missed, and fails on a miss unless
// LOAD_REPORT_ONLY=1.
//
// BenchmarkLoadProbes is the probe-churn case: /probe traffic of ever new ids must neither
// starve the configured tasks nor outlast its deadlines. 5 configured running tasks,
// probe.allow_unlisted, the exporter at max_requests_per_second 20 with everything else at
// its defaults, a simulator that answers in 50 ms (its gateway at 1,000/s, on only for its
// counts), and 1,200 distinct seeded ids that no config lists, probed once each, evenly over
// 3 s, with a 5 s timeout header, while one scraper GETs /metrics every second (timeout
// header 1 s). Targets: every probe answers within its timeout + 1 s; no id is called twice
// at once by the same client (the gateway's "overlaps" count stays 0); every configured
// task's metastudio_task_data_age_seconds stays <= 4 s in every scrape from the first
// probe on. About 15 s plus the build.
//
// BenchmarkLoadListing is discovery keeping many running tasks fresh with SearchTask pages:
// its two sizes run one after the other, each with a fresh simulator and exporter. The
// simulator seeds N running tasks begun one after another over the last hour (--spread 1h
// --running N), answers in 50 ms, pages SearchTask by rows (100 an answer) and throttles at
// 30 calls/s (burst 30). The exporter configures no task: discovery finds them all; it has
// scrape.min_refresh_interval 1900ms (just under the scrape interval, as the docs advise
// for several scrapers) and every other key at its default, max_requests_per_second
// included (10), except at 4,000 tasks, where it is 30. 4 scrapers each GET /metrics every
// 2 s for 60 s (timeout header 10 s), the n-th starting n × 500 ms after the first; the
// window measured starts at 20 s. It prints every scrape's largest data_age and tasks with
// scrape_success 1, the gateway's SearchTask and ShowTask answers (and which tasks got
// ShowTask), the API calls per task per minute against what one ShowTask per task and
// refresh would cost, and a 5-second timeline. Targets: 400 tasks, every scrape shows all
// 400 with data_age <= 6 s, and the calls reaching the gateway (answered or throttled)
// stay within 25 % of its allowance; 4,000 tasks, every scrape shows all 4,000 with
// data_age <= 10 s. About 2.5 minutes plus the builds.
//
// They are benchmarks so that `go test ./load/` (and `make test`) runs only the quick tests
// of their helpers. `make load` runs all three:
//
//	go test -run '^$' -bench '^(BenchmarkLoad|BenchmarkLoadProbes|BenchmarkLoadListing)$' -benchtime 1x -timeout 15m ./load/
//
// Everything listens on 127.0.0.1; both processes are stopped at the end, whatever
// happens. Linux only (the child processes die with the benchmark: Pdeathsig).
package load
