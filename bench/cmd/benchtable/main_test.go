package main

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	out := `cpu: Test CPU
BenchmarkScrape/cold/tasks=1000-2   	       2	1700000000 ns/op	  1700 wall-ms	  1600 ideal-ms	  240.0 cpu-us/task	  100 bare-us/req	  2.4 x-bare
BenchmarkScrape/cold/tasks=1000-2   	       2	1710000000 ns/op	  1720 wall-ms	  1600 ideal-ms	  250.0 cpu-us/task	  200 bare-us/req	  1.25 x-bare
BenchmarkScrape/cold/tasks=1000-2   	       2	1690000000 ns/op	  2000 wall-ms	  1600 ideal-ms	  260.0 cpu-us/task	  180 bare-us/req	  1.444 x-bare
BenchmarkScrape/warm/tasks=10000-2   	       2	1 ns/op	  150 wall-ms	  400 plain-ms	  0.375 x-plain	  47.5 RSS-MiB
BenchmarkScrape/cold/tasks=10000-2   	       2	1 ns/op	  49.2 RSS-MiB
BenchmarkBareGET/requests=1000-2    	       2	1650000000 ns/op	   100.0 cpu-us/req	  1650 wall-ms
BenchmarkMemLimit/warm/tasks=10000/gomemlimit=48MiB-2	2	1 ns/op	  63.5 RSS-MiB	 900 wall-ms
BenchmarkScrape/discovery/tasks=10000-2	3	1 ns/op	  100 ShowTask/scrape	0 SearchTask/scrape	1113 SearchTask/refresh	40.5 RSS-MiB
BenchmarkScrape/discovery-rows/tasks=10000-2	3	1 ns/op	  100 ShowTask/scrape	0 SearchTask/scrape	102 SearchTask/refresh	33.0 RSS-MiB
BenchmarkDiscoveryPass/paging=rows/tasks=10000-2	2	1 ns/op	  102 calls	160 bound	6.1 pass-s	30.9 pass-RSS-MiB	0 missed	0 paging-none	0 paging-pages	1 paging-rows	75.4 wall-ms	0 ShowTask/scrape	10000 first-ok	0 first-ShowTask	111 first-ms
BenchmarkDiscoveryPass/paging=ignored/tasks=10000-2	2	1 ns/op	  1600 calls	1510 bound	60 pass-s	30.9 pass-RSS-MiB	0 missed	1 paging-none	0 paging-pages	0 paging-rows	75.4 wall-ms	0 ShowTask/scrape	10000 first-ok	9766 first-ShowTask	15852 first-ms
BenchmarkListedFinished/tasks=100000-2	3	1 ns/op	  1003 calls	1510 bound	300 RSS-MiB	900 wall-ms	3600 plain-ms	0.25 x-plain	100000 first-ok	0 first-ShowTask	2 settle-scrapes
PASS
`
	r, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if v, n := r.get("BenchmarkScrape/cold/tasks=1000", "wall-ms"); v != 1720 || n != 3 {
		t.Errorf("median wall = %v over %d runs; want 1720 over 3", v, n)
	}
	var b strings.Builder
	write(&b, r)
	table := b.String()
	for _, want := range []string{
		"| 1,000 | 1,720 | 1,600 | 1.07× |",
		"1,720 ms (runs: 1,700–2,000) = 1.07× the ideal | **met** |",
		"| cold, 1,000 tasks: exporter CPU per fetched task, exposition included, ≤ 1.5 × the bare GET of the same run | 250 µs vs 180 µs = 1.44× (runs: 1.25–2.40) | **met** |",
		"| cold, 10,000 tasks: exporter CPU per fetched task, exposition included, ≤ 1.5 × the bare GET of the same run | not run µs vs not run µs = not run (runs: not run) | not run |",
		"150 ms vs 400 ms = 0.38× (runs: 0.375–0.375) | **met** |",
		"| 49.2 MiB in the worst run (medians: cold 49.2, warm 47.5, discovery 40.5, discovery by rows 33.0) | **missed** |",
		"| 10,000 | ignored (default) | 100 | not run | 100 | 0 | 1,113 | 1,510 |",
		"| 10,000 | rows | 100 | not run | 100 | 0 | 102 | 160 |",
		"paging ignored (default): ≤ 100 ShowTask calls per scrape, no SearchTask call per scrape, ≤ ceil(N/10)×1.5+10 = 1,510 SearchTask calls per refresh | 100 ShowTask and 0 SearchTask per scrape; 1,113 SearchTask per refresh | **met** |",
		"| rows | 100 | 102 | 160 | 6.10 | 30.9 | rows | 0 | 10,000, 0, 111 | 75.4 | 0 | 1 |",
		"| ignored | 10 | 1,600 | 1,510 | 60.0 | 30.9 | none | 0 | 10,000, 9,766, 15,852 | 75.4 | 0 | 1 |",
		"| pages | 100 | not run | not run | not run | not run | not run | not run | not run, not run, not run | not run | not run | 0 |",
		"| discovery pass over 10,000 tasks, paging rows: ≤ ceil(N/100)×1.5+10 = 160 SearchTask calls, 0 missed | 102 calls (0.64× of the bound), 0 missed | **met** |",
		"| discovery pass over 10,000 tasks, paging rows: every task exported and no ShowTask for a listed finished task, from the first scrape on | first scrape: 10,000 tasks, 0 ShowTask calls; later scrapes 0 ShowTask calls | **met** |",
		"| discovery pass over 10,000 tasks, paging ignored: ≤ ceil(N/10)×1.5+10 = 1,510 SearchTask calls, 0 missed | 1,600 calls (1.06× of the bound), 0 missed | **missed** |",
		"| discovery pass over 10,000 tasks, paging ignored: every task exported and no ShowTask for a listed finished task, from the first scrape on | first scrape: 10,000 tasks, 9,766 ShowTask calls; later scrapes 0 ShowTask calls | **missed** |",
		"| discovery pass over 10,000 tasks, paging pages: ≤ ceil(N/100)×1.5+10 = 160 SearchTask calls, 0 missed | not run calls (not run of the bound), not run missed | not run |",
		"| 1,003 | 1,510 | not run | 100,000, 0, not run | 2.00 | 900 | 3,600 | 0.25× |",
		"| 100,000 listed finished tasks: ≤ ceil(N/100)×1.5+10 SearchTask calls; every task exported and no ShowTask, from the first scrape on | 1,003 calls of 1,510; first scrape: 100,000 tasks, 0 ShowTask calls | **met** |",
		"| 100,000 listed finished tasks: peak RSS ≤ 320 MiB | 300 MiB | **met** |",
		"| 100,000 listed finished tasks: warm scrape ≤ 0.5 × the plain registry served by promhttp, both scraped over HTTP | 900 ms vs 3,600 ms = 0.25× | **met** |",
		"GOMEMLIMIT=48MiB",
		"| warm scrape of 1,000 finished tasks < 20 ms, no API call | not run ms (runs: not run), not run calls | not run |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// TestProjectsTable: the several-projects rows take the medians of the runs' ratios, and
// the target is met only when both ratios of a mode are at most 1.10.
func TestProjectsTable(t *testing.T) {
	out := `BenchmarkProjects/cold/tasks=10000/projects=10-2	3	1 ns/op	16200 wall-ms	107 cpu-us/task	56.7 RSS-MiB	10000 ShowTask/scrape	16100 one-wall-ms	98 one-cpu-us/task	52.4 one-RSS-MiB	10000 one-ShowTask/scrape	1.00 x-cpu	1.08 x-RSS
BenchmarkProjects/cold/tasks=10000/projects=10-2	3	1 ns/op	16300 wall-ms	110 cpu-us/task	57.0 RSS-MiB	10000 ShowTask/scrape	16200 one-wall-ms	99 one-cpu-us/task	52.0 one-RSS-MiB	10000 one-ShowTask/scrape	1.20 x-cpu	1.09 x-RSS
BenchmarkProjects/cold/tasks=10000/projects=10-2	3	1 ns/op	16250 wall-ms	108 cpu-us/task	56.0 RSS-MiB	10000 ShowTask/scrape	16150 one-wall-ms	97 one-cpu-us/task	52.2 one-RSS-MiB	10000 one-ShowTask/scrape	1.05 x-cpu	1.07 x-RSS
BenchmarkProjects/warm/tasks=10000/projects=10-2	3	1 ns/op	91 wall-ms	3.9 cpu-us/task	48.9 RSS-MiB	0 ShowTask/scrape	107 one-wall-ms	5.2 one-cpu-us/task	51.1 one-RSS-MiB	0 one-ShowTask/scrape	1.05 x-cpu	1.15 x-RSS
`
	r, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	write(&b, r)
	table := b.String()
	for _, want := range []string{
		"| cold | 10,000 | 16,150 / 16,250 | 98.0 / 108 | 1.05× | 52.2 / 56.7 | 1.08× | 10,000 / 10,000 | 3 |",
		"| warm | 1,000 | not run / not run | not run / not run | not run | not run / not run | not run | not run / not run | 0 |",
		"| cold, 10,000 tasks in 10 projects: CPU per task and peak RSS ≤ 1.10 × 10,000 in one project, same runs | CPU 1.05× (runs: 1.00–1.20), RSS 1.08× (runs: 1.07–1.09) | **met** |",
		"| warm, 10,000 tasks in 10 projects: CPU per task and peak RSS ≤ 1.10 × 10,000 in one project, same runs | CPU 1.05× (runs: 1.05–1.05), RSS 1.15× (runs: 1.15–1.15) | **missed** |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
