// Package bench measures the exporter at scale against the bundled MetaStudio simulator:
// one scrape of 100, 1,000 and 10,000 tasks, cold (nothing cached), warm (every task
// finished and cached) and fed by discovery (with the simulator ignoring SearchTask's
// offset and limit, its default, and paging by rows), with the simulator answering after
// 50 ms. For each it reports the wall time of a scrape, the exporter's CPU per task, its
// peak RSS and the API calls made; and, in the same run, the yardsticks that the targets
// of docs/benchmarks.md compare against: the ideal cold time, a plain client_golang
// registry exposing the same series, a bare net/http GET to the same simulator, and two
// scrapers at once.
//
// The listing benchmarks measure discovery alone: BenchmarkDiscoveryPass, the listing pass
// over 10,000 tasks begun over 7 days in each of the simulator's paging behaviours (rows,
// pages, ignored): SearchTask calls against ceil(N / rows per answer) × 1.5 + 10, wall time
// and peak RSS; BenchmarkListedFinished, 100,000 finished tasks that only discovery knows:
// peak RSS and a warm scrape against the plain registry of the same series.
//
// BenchmarkProjects measures N tasks spread over 10 projects (each with its own id, AK/SK
// and N/10 tasks) against N tasks in one project, cold and warm, the two exporters scraped
// in turn in each run: the ratios of CPU per task and of peak RSS, whose target is 1.10.
//
// The exporter runs as the built binary in a process of its own, so that its CPU time
// (from /proc/<pid>/task/*/schedstat) and peak RSS (VmHWM) are its alone. The simulator
// runs in another process: the test binary started again with METASTUDIO_BENCH_ROLE set.
// Everything listens on 127.0.0.1. The package holds only benchmarks and quick tests of
// the harness; `go test ./bench/` runs no benchmark. `make bench` runs them and prints the
// tables of docs/benchmarks.md (bench/cmd/benchtable turns `go test -bench` output into
// them). Linux only: the measurements read /proc.
package bench
