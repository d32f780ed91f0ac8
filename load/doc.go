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
// They are benchmarks so that `go test ./load/` (and `make test`) runs only the quick tests
// of their helpers. `make load` runs both:
//
//	go test -run '^$' -bench '^(BenchmarkLoad|BenchmarkLoadProbes)$' -benchtime 1x -timeout 10m ./load/
//
// Everything listens on 127.0.0.1; both processes are stopped at the end, whatever
// happens. Linux only (the child processes die with the benchmark: Pdeathsig).
package load
