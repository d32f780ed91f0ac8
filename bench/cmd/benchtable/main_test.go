package main

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	out := `cpu: Test CPU
BenchmarkScrape/cold/tasks=1000-2   	       2	1700000000 ns/op	  1700 wall-ms	  1600 ideal-ms	  240.0 cpu-us/task
BenchmarkScrape/cold/tasks=1000-2   	       2	1710000000 ns/op	  1720 wall-ms	  1600 ideal-ms	  250.0 cpu-us/task
BenchmarkScrape/cold/tasks=1000-2   	       2	1690000000 ns/op	  2000 wall-ms	  1600 ideal-ms	  260.0 cpu-us/task
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
		"250 µs (runs: 240–260) vs 100 µs (100–100) = 2.50×",
		"GOMEMLIMIT=48MiB",
		"63.5 MiB in the worst run",
		"| warm scrape of 10,000: no API call | not run calls | not run |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
