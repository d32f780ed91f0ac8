// Command benchtable turns the output of `make bench` (go test -bench of ./bench/) into the
// Markdown tables of docs/benchmarks.md, with every target next to its measured value:
// each figure is the median over the runs (-count) of the per-run medians the benchmarks
// report. A ratio to a yardstick is the median of the per-run ratios: each run of
// BenchmarkScrape measures its yardstick right after itself (bare-us/req, plain-ms), so
// the two sides of a ratio are interleaved. Benchmarks missing from the input
// (bench-quick) show as "not run". BenchmarkProjects scrapes its two sides (N tasks in
// 10 projects, N in one) in turn and reports their ratios (x-cpu, x-RSS) itself.
//
//	go run ./bench/cmd/benchtable bench.out
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

func main() {
	in := io.Reader(os.Stdin)
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	r, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	write(os.Stdout, r)
}

// results are the metrics of every benchmark: name (without the -GOMAXPROCS suffix) ->
// unit -> one value per run.
type results struct {
	bench map[string]map[string][]float64
	cpu   string
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

func parse(in io.Reader) (*results, error) {
	r := &results{bench: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			r.cpu = strings.TrimSpace(cpu)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line
		}
		name := procsSuffix.ReplaceAllString(f[0], "")
		m := r.bench[name]
		if m == nil {
			m = map[string][]float64{}
			r.bench[name] = m
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			m[f[i+1]] = append(m[f[i+1]], v)
		}
	}
	return r, sc.Err()
}

// get returns the median of a benchmark's metric over its runs, and how many runs.
func (r *results) get(name, unit string) (float64, int) {
	v := r.bench[name][unit]
	if len(v) == 0 {
		return math.NaN(), 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], len(s)
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, len(s)
}

// span is "min–max" of a benchmark's metric over its runs.
func (r *results) span(name, unit string) string {
	v := r.bench[name][unit]
	if len(v) == 0 {
		return "not run"
	}
	return num(slices.Min(v)) + "–" + num(slices.Max(v))
}

// worst is the largest value of a metric over every run of some benchmarks.
func (r *results) worst(unit string, names ...string) float64 {
	w := math.NaN()
	for _, name := range names {
		for _, v := range r.bench[name][unit] {
			w = maxKnown(w, v)
		}
	}
	return w
}

func (r *results) val(name, unit string) float64 {
	v, _ := r.get(name, unit)
	return v
}

// num is val formatted by num.
func (r *results) num(name, unit string) string {
	return num(r.val(name, unit))
}

// num formats a value with about three significant digits; NaN is "not run".
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "not run"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return addCommas(strconv.FormatFloat(v, 'f', 0, 64))
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func addCommas(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ratio formats a/b as "1.23×".
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "not run"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}

// verdict is met, missed, or not run.
func verdict(ok bool, values ...float64) string {
	for _, v := range values {
		if math.IsNaN(v) {
			return "not run"
		}
	}
	if ok {
		return "**met**"
	}
	return "**missed**"
}

var sizes = []int{100, 1000, 10000}

func write(w io.Writer, r *results) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	row := func(cells ...string) { p("| %s |\n", strings.Join(cells, " | ")) }
	runs := func(name string) int { _, n := r.get(name, "wall-ms"); return n }
	runsOf := func(name string) string { return strconv.Itoa(runs(name)) }
	tasks := func(n int) string { return addCommas(strconv.Itoa(n)) }

	maxLoad := 0.0
	for _, m := range r.bench {
		for _, v := range m["load1"] {
			maxLoad = max(maxLoad, v)
		}
	}
	p("Machine: %d CPUs (%s), %s %s/%s. One-minute load average at the end of a benchmark: at most %s.\n\n",
		runtime.NumCPU(), orUnknown(r.cpu), runtime.Version(), runtime.GOOS, runtime.GOARCH, num(maxLoad))

	p("### Cold: nothing cached (cache.finished_ttl 0), concurrency 32, no rate limit\n\n")
	p("| tasks | scrape wall (ms) | ideal ceil(N/32)×50 ms | wall / ideal | first scrape after start (ms) | exporter CPU per task (µs) | bare GET CPU per request, same runs (µs) | CPU per task / bare GET | CPU per scrape (ms) | ShowTask calls per scrape | peak RSS (MiB) | runs |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		name := fmt.Sprintf("BenchmarkScrape/cold/tasks=%d", n)
		row(tasks(n), r.num(name, "wall-ms"), r.num(name, "ideal-ms"), ratio(r.val(name, "wall-ms"), r.val(name, "ideal-ms")),
			r.num(name, "first-ms"), r.num(name, "cpu-us/task"), r.num(name, "bare-us/req"), times(r.val(name, "x-bare")),
			r.num(name, "cpu-ms/scrape"), r.num(name, "ShowTask/scrape"), r.num(name, "RSS-MiB"), runsOf(name))
	}

	p("\n### Warm: every task finished and cached (cache.finished_ttl 1h)\n\n")
	p("| tasks | scrape wall (ms) | plain registry over HTTP, same runs (ms) | wall / plain | exporter CPU per task (µs) | CPU per scrape (ms) | ShowTask calls per scrape | body (MiB) | first scrape, filling the cache (ms) | peak RSS (MiB) | runs |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		name := fmt.Sprintf("BenchmarkScrape/warm/tasks=%d", n)
		row(tasks(n), r.num(name, "wall-ms"), r.num(name, "plain-ms"), times(r.val(name, "x-plain")),
			r.num(name, "cpu-us/task"), r.num(name, "cpu-ms/scrape"), r.num(name, "ShowTask/scrape"),
			r.num(name, "body-MiB"), r.num(name, "first-ms"), r.num(name, "RSS-MiB"), runsOf(name))
	}

	writeProjects(w, r)

	p("\n### Discovery: no configured task, N listed by SearchTask, 1 in 100 in progress\n\n")
	p("The simulator ignores offset and limit by default (10 rows an answer); `discovery-rows` pages by rows (100 an answer).\n\n")
	p("| tasks listed | simulator's paging | in progress | scrape wall (ms) | ShowTask calls per scrape | SearchTask calls per scrape | SearchTask calls per refresh | bound ceil(N/rows)×1.5+10 | refresh (ms) | exporter CPU per task (µs) | peak RSS (MiB) | runs |\n")
	p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		for _, m := range discoveryModes {
			name := fmt.Sprintf("BenchmarkScrape/%s/tasks=%d", m.mode, n)
			row(tasks(n), m.paging, strconv.Itoa((n+99)/100),
				r.num(name, "wall-ms"), r.num(name, "ShowTask/scrape"), r.num(name, "SearchTask/scrape"),
				r.num(name, "SearchTask/refresh"), num(callBound(n, m.perAnswer)), r.num(name, "refresh-ms"),
				r.num(name, "cpu-us/task"), r.num(name, "RSS-MiB"), runsOf(name))
		}
	}

	p("\n### Discovery pass: 10,000 finished tasks begun over 7 days, in each paging behaviour\n\n")
	p("| simulator's paging | rows per answer | SearchTask calls | bound ceil(N/rows)×1.5+10 | pass wall (s) | peak RSS after the pass (MiB) | paging detected | missed tasks | first scrape after the pass: tasks exported, ShowTask calls, wall (ms) | later scrapes (ms) | ShowTask calls per later scrape | runs |\n")
	p("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for _, pg := range passPagings {
		name := passName(pg.paging)
		row(pg.paging, strconv.Itoa(pg.perAnswer), r.num(name, "calls"),
			r.num(name, "bound"), r.num(name, "pass-s"), r.num(name, "pass-RSS-MiB"), r.detected(name), r.num(name, "missed"),
			r.num(name, "first-ok")+", "+r.num(name, "first-ShowTask")+", "+r.num(name, "first-ms"),
			r.num(name, "wall-ms"), r.num(name, "ShowTask/scrape"), runsOf(name))
	}

	listed := "BenchmarkListedFinished/tasks=100000"
	p("\n### 100,000 finished tasks that only discovery knows (paging by rows, max_tasks 200,000)\n\n")
	p("| SearchTask calls | bound | pass wall (s) | first scrape after the pass: tasks exported, ShowTask calls, wall (ms) | scrapes until one needed no call | warm scrape (ms) | plain registry over HTTP, same run (ms) | wall / plain | CPU per scrape (ms) | ShowTask calls per warm scrape | body (MiB) | peak RSS (MiB) | plain registry's peak RSS (MiB) | runs |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	p("| %s | %s | %s | %s, %s, %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", r.num(listed, "calls"), r.num(listed, "bound"),
		r.num(listed, "pass-s"), r.num(listed, "first-ok"), r.num(listed, "first-ShowTask"), r.num(listed, "first-ms"),
		r.num(listed, "settle-scrapes"), r.num(listed, "wall-ms"), r.num(listed, "plain-ms"), times(r.val(listed, "x-plain")),
		r.num(listed, "cpu-ms/scrape"), r.num(listed, "ShowTask/scrape"), r.num(listed, "body-MiB"),
		r.num(listed, "RSS-MiB"), r.num(listed, "plain-RSS-MiB"), runs(listed))

	p("\n### Yardsticks, measured in the same run\n\n")
	p("| yardstick | measured | runs |\n|---|---:|---:|\n")
	bare := "BenchmarkBareGET/requests=1000"
	p("| bare net/http GET of ShowTask, client CPU per request (µs) | %s | %d |\n", r.num(bare, "cpu-us/req"), runs(bare))
	p("| bare GET: 1,000 requests, 32 at a time (ms) | %s | %d |\n", r.num(bare, "wall-ms"), runs(bare))
	for _, n := range []int{1000, 10000} {
		g := fmt.Sprintf("BenchmarkPlainRegistry/gather/tasks=%d", n)
		h := fmt.Sprintf("BenchmarkPlainRegistry/http/tasks=%d", n)
		c := tasks(n)
		p("| plain registry, %s tasks (%s series): Gather + text encoding in process (ms) | %s | %d |\n", c, tasks(9*n), r.num(g, "wall-ms"), runs(g))
		p("| plain registry, %s tasks: served by promhttp, scraped like the exporter (ms) | %s | %d |\n", c, r.num(h, "wall-ms"), runs(h))
		p("| plain registry, %s tasks: its CPU per task (µs), peak RSS (MiB) | %s, %s | %d |\n", c, r.num(h, "cpu-us/task"), r.num(h, "RSS-MiB"), runs(h))
	}
	two := "BenchmarkTwoScrapers/tasks=1000"
	p("| two scrapers at the same moment, 1,000 tasks, no cache: ShowTask calls per task | %s | %d |\n", r.num(two, "calls/task"), runs(two))
	p("| two scrapers: wall of the slower scrape (ms) | %s | %d |\n", r.num(two, "wall-ms"), runs(two))

	p("\n### Micro-benchmarks (auth, metastudio, collector packages)\n\n| benchmark | time per op | runs |\n|---|---:|---:|\n")
	for _, m := range []struct{ name, what string }{
		{"BenchmarkSign", "signing one ShowTask request"},
		{"BenchmarkDecodeTask", "decoding one ShowTask answer"},
		{"BenchmarkScrape1000Tasks", "one in-process scrape of 1,000 tasks from a fake client, gathered"},
	} {
		v, n := r.get(m.name, "ns/op")
		t := num(v/1e3) + " µs"
		if v >= 1e6 {
			t = num(v/1e6) + " ms"
		}
		p("| `%s`: %s | %s | %d |\n", m.name, m.what, t, n)
	}

	limit := ""
	for name := range r.bench {
		if _, l, ok := strings.Cut(name, "gomemlimit="); ok && strings.HasPrefix(name, "BenchmarkMemLimit/") {
			limit = l
		}
	}
	var unlimited []string
	for _, mode := range []string{"cold", "warm", "discovery"} {
		unlimited = append(unlimited, "BenchmarkScrape/"+mode+"/tasks=10000")
	}
	if limit != "" {
		p("\n### Peak RSS at 10,000 tasks: default GC and GOMEMLIMIT\n\n")
		p("| mode | peak RSS, default GC (MiB) | peak RSS, GOMEMLIMIT=%s (MiB) | CPU per task, default (µs) | CPU per task, limited (µs) | scrape wall, default (ms) | scrape wall, limited (ms) |\n", limit)
		p("|---|---:|---:|---:|---:|---:|---:|\n")
		for _, mode := range []string{"cold", "warm", "discovery"} {
			d := "BenchmarkScrape/" + mode + "/tasks=10000"
			l := "BenchmarkMemLimit/" + mode + "/tasks=10000/gomemlimit=" + limit
			row(mode, r.num(d, "RSS-MiB"), r.num(l, "RSS-MiB"),
				r.num(d, "cpu-us/task"), r.num(l, "cpu-us/task"), r.num(d, "wall-ms"), r.num(l, "wall-ms"))
		}
	}
	worstDefault := r.worst("RSS-MiB", unlimited...)

	p("\n### Targets\n\n| target | measured (median over the runs; a ratio is the median of the per-run ratios) | verdict |\n|---|---|---|\n")
	cold1k, cold10k := "BenchmarkScrape/cold/tasks=1000", "BenchmarkScrape/cold/tasks=10000"
	for _, name := range []string{cold1k, cold10k} {
		n := strings.TrimPrefix(name, "BenchmarkScrape/cold/tasks=")
		x := r.val(name, "x-bare")
		p("| cold, %s tasks: exporter CPU per fetched task, exposition included, ≤ 1.5 × the bare GET of the same run | %s µs vs %s µs = %s (runs: %s) | %s |\n",
			addCommas(n), r.num(name, "cpu-us/task"), r.num(name, "bare-us/req"), times(x), r.span(name, "x-bare"), verdict(x <= 1.5, x))
	}
	warm1k, warm10k := "BenchmarkScrape/warm/tasks=1000", "BenchmarkScrape/warm/tasks=10000"
	xp := r.val(warm10k, "x-plain")
	p("| warm scrape of 10,000 ≤ 0.5 × the plain registry served by promhttp, both scraped over HTTP | %s ms vs %s ms = %s (runs: %s) | %s |\n",
		r.num(warm10k, "wall-ms"), r.num(warm10k, "plain-ms"), times(xp), r.span(warm10k, "x-plain"), verdict(xp <= 0.5, xp))
	w1, c1 := r.val(warm1k, "wall-ms"), r.val(warm1k, "ShowTask/scrape")
	p("| warm scrape of 1,000 finished tasks < 20 ms, no API call | %s ms (runs: %s), %s calls | %s |\n", num(w1), r.span(warm1k, "wall-ms"), num(c1), verdict(w1 < 20 && c1 == 0, w1, c1))
	rows10k := "BenchmarkScrape/" + modeDiscoveryRows + "/tasks=10000"
	worstDefault = maxKnown(worstDefault, r.worst("RSS-MiB", rows10k))
	p("| peak RSS at 10,000 tasks ≤ 48 MiB with the default GC (cold, warm, discovery) | %s MiB in the worst run (medians: cold %s, warm %s, discovery %s, discovery by rows %s) | %s |\n",
		num(worstDefault), r.num(unlimited[0], "RSS-MiB"), r.num(unlimited[1], "RSS-MiB"), r.num(unlimited[2], "RSS-MiB"),
		r.num(rows10k, "RSS-MiB"), verdict(worstDefault <= 48, worstDefault))
	x := r.val(cold1k, "wall-ms") / r.val(cold1k, "ideal-ms")
	p("| cold scrape of 1,000 tasks ≤ 1.2 × ceil(1000/32) × 50 ms = %s ms | %s ms (runs: %s) = %s the ideal | %s |\n",
		num(1.2*r.val(cold1k, "ideal-ms")), r.num(cold1k, "wall-ms"), r.span(cold1k, "wall-ms"),
		ratio(r.val(cold1k, "wall-ms"), r.val(cold1k, "ideal-ms")), verdict(x <= 1.2, x))
	c10 := r.val(warm10k, "ShowTask/scrape")
	p("| warm scrape of 10,000: no API call | %s calls | %s |\n", num(c10), verdict(c10 == 0, c10))
	for _, m := range discoveryModes {
		disc := "BenchmarkScrape/" + m.mode + "/tasks=10000"
		ds, dl, dr := r.val(disc, "ShowTask/scrape"), r.val(disc, "SearchTask/scrape"), r.val(disc, "SearchTask/refresh")
		bound := callBound(10000, m.perAnswer)
		p("| discovery, 10,000 listed, 100 in progress, paging %s: ≤ 100 ShowTask calls per scrape, no SearchTask call per scrape, ≤ ceil(N/%d)×1.5+10 = %s SearchTask calls per refresh | %s ShowTask and %s SearchTask per scrape; %s SearchTask per refresh | %s |\n",
			m.paging, m.perAnswer, num(bound), num(ds), num(dl), num(dr), verdict(ds <= 100 && dl == 0 && dr <= bound, ds, dl, dr))
	}
	for _, pg := range passPagings {
		name := passName(pg.paging)
		c, bound, missed := r.val(name, "calls"), callBound(passTasks, pg.perAnswer), r.val(name, "missed")
		p("| discovery pass over 10,000 tasks, paging %s: ≤ ceil(N/%d)×1.5+10 = %s SearchTask calls, 0 missed | %s calls (%s of the bound), %s missed | %s |\n",
			pg.paging, pg.perAnswer, num(bound), num(c), ratio(c, bound), num(missed), verdict(c <= bound && missed == 0, c, missed))
		ok, fs, sh := r.val(name, "first-ok"), r.val(name, "first-ShowTask"), r.val(name, "ShowTask/scrape")
		p("| discovery pass over 10,000 tasks, paging %s: every task exported and no ShowTask for a listed finished task, from the first scrape on | first scrape: %s tasks, %s ShowTask calls; later scrapes %s ShowTask calls | %s |\n",
			pg.paging, num(ok), num(fs), num(sh), verdict(ok == passTasks && fs == 0 && sh == 0, ok, fs, sh))
	}
	lc, lb := r.val(listed, "calls"), r.val(listed, "bound")
	lok, lfs := r.val(listed, "first-ok"), r.val(listed, "first-ShowTask")
	p("| 100,000 listed finished tasks: ≤ ceil(N/100)×1.5+10 SearchTask calls; every task exported and no ShowTask, from the first scrape on | %s calls of %s; first scrape: %s tasks, %s ShowTask calls | %s |\n",
		num(lc), num(lb), num(lok), num(lfs), verdict(lc <= lb && lok == 100000 && lfs == 0, lc, lb, lok, lfs))
	lr, lx := r.val(listed, "RSS-MiB"), r.val(listed, "x-plain")
	p("| 100,000 listed finished tasks: peak RSS ≤ 320 MiB | %s MiB | %s |\n", num(lr), verdict(lr <= 320, lr))
	p("| 100,000 listed finished tasks: warm scrape ≤ 0.5 × the plain registry served by promhttp, both scraped over HTTP | %s ms vs %s ms = %s | %s |\n",
		r.num(listed, "wall-ms"), r.num(listed, "plain-ms"), times(lx), verdict(lx <= 0.5, lx))
	writeProjectsTargets(w, r)
	ct := r.val(two, "calls/task")
	p("| two scrapers at the same moment: one call per task, not two | %s calls per task | %s |\n", num(ct), verdict(ct <= 1, ct))
}

// The discovery modes of BenchmarkScrape, with the simulator's paging and the rows one
// SearchTask answer delivers under it.
const modeDiscoveryRows = "discovery-rows"

var discoveryModes = []struct {
	mode, paging string
	perAnswer    int
}{{"discovery", "ignored (default)", 10}, {modeDiscoveryRows, "rows", 100}}

// The paging behaviours of BenchmarkDiscoveryPass, with the rows per answer.
const passTasks = 10000

var passPagings = []struct {
	paging    string
	perAnswer int
}{{"rows", 100}, {"pages", 100}, {"ignored", 10}}

func passName(paging string) string {
	return fmt.Sprintf("BenchmarkDiscoveryPass/paging=%s/tasks=%d", paging, passTasks)
}

// callBound is the most SearchTask calls a listing of n tasks may cost:
// ceil(n / rows per answer) × 1.5 + 10.
func callBound(n, perAnswer int) float64 {
	return float64((n+perAnswer-1)/perAnswer)*1.5 + 10
}

// detected names the paging the exporter detected in a benchmark (its paging-<mode>
// metrics), "none shown" when no mode was 1.
func (r *results) detected(name string) string {
	if len(r.bench[name]) == 0 {
		return "not run"
	}
	for _, mode := range []string{"rows", "pages", "none"} {
		if r.val(name, "paging-"+mode) == 1 {
			return mode
		}
	}
	return "none shown"
}

// times formats a ratio as "1.23×".
func times(v float64) string {
	if math.IsNaN(v) {
		return "not run"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}

func maxKnown(a, b float64) float64 {
	switch {
	case math.IsNaN(a):
		return b
	case math.IsNaN(b):
		return a
	}
	return max(a, b)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
