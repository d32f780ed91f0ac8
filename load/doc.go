// Package load holds BenchmarkLoad, the measurement of issue 10 ("one refresher for the
// whole process"): the built exporter binary against the built simulator binary behind its
// throttling gateway. 400 running tasks (none finished, so no cache can answer), the
// gateway at 30 calls/s (burst 30), the exporter at max_requests_per_second 50 and
// concurrency 8 with everything else at its defaults, and 8 scrapers that each GET
// /metrics every 2 s for 75 s with X-Prometheus-Scrape-Timeout-Seconds: 10.
//
// After the first 25 s it measures, per scrape, the share of tasks with
// metastudio_task_scrape_success 1 and the largest metastudio_task_data_age_seconds; from
// the gateway's counts (the simulator's /-/sim/stats), the tasks never answered, the share
// of the gateway's allowance used, the share of calls throttled and the share of answered
// calls that repeat a task answered less than 1 s before; and the scrape latencies. It
// prints each acceptance target of issue 10 as met or missed, and fails on a miss unless
// LOAD_REPORT_ONLY=1.
//
// It is a benchmark so that `go test ./load/` (and `make test`) runs only the quick tests of
// its helpers. `make load` runs it (about 90 s plus the build):
//
//	go test -run '^$' -bench BenchmarkLoad -benchtime 1x -timeout 10m ./load/
//
// Everything listens on 127.0.0.1; both processes are stopped at the end, whatever
// happens. Linux only (the child processes die with the benchmark: Pdeathsig).
package load
