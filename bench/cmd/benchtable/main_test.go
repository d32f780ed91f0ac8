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
		"| 49.2 MiB in the worst run (medians: cold 49.2, warm 47.5, discovery not run) | **missed** |",
		"GOMEMLIMIT=48MiB",
		"| warm scrape of 1,000 finished tasks < 20 ms, no API call | not run ms (runs: not run), not run calls | not run |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
