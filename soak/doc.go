// Package soak holds the exporter's soak test, BenchmarkSoak: the built exporter binary
// against the built simulator binary (1,000 tasks, 50 ms latency, 5 % injected faults),
// with 20 concurrent scrapers hitting /metrics and /probe for SOAK_DURATION (default 5m)
// after a 20 s warm-up. It reports the scrape success rate, p50/p99 latencies, API calls
// per scrape, the tasks that fail per scrape, and the exporter's goroutines, RSS and open
// file descriptors over time, with a verdict on whether they stay flat.
//
// It is a benchmark so that `go test ./soak/` runs only the quick tests of its helpers.
// `make soak` runs it:
//
//	go test -run '^$' -bench BenchmarkSoak -benchtime 1x -timeout 15m ./soak/
//
// Everything listens on 127.0.0.1; both processes are stopped at the end, whatever
// happens. Linux only: it reads /proc/<pid>/status and /proc/<pid>/fd.
package soak
