//go:build linux

package soak

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// The load. The simulator answers every call after simLatency and injects 5 % of faults,
// split over the four kinds it can inject.
const (
	numTasks = 1000
	warmUp   = 20 * time.Second
	// The defaults of SOAK_DURATION (the measured window after the warm-up), SOAK_SCRAPERS
	// and SOAK_FAULTS.
	defaultDuration = 5 * time.Minute
	defaultScrapers = 20
	// 500 MSS.000000002; 429 APIGW.0308 (each halves the exporter's rate for a minute);
	// answers delayed by slowDelay; 200 with truncated JSON.
	defaultFaults = "error=0.02,throttle=0.01,slow=0.01,malformed=0.01"

	simLatency = 50 * time.Millisecond
	slowDelay  = 15 * time.Second // past every scrape's deadline: the call is cut

	// What each scraper sends as X-Prometheus-Scrape-Timeout-Seconds. Prometheus gives up at
	// its scrape_timeout, so a later answer counts as a failed scrape; the scrapers wait
	// clientTimeout to learn how late it was.
	promTimeout   = 10 * time.Second
	clientTimeout = promTimeout + 5*time.Second
	// Each scraper pauses between requests for a random time in [pauseMin, pauseMax).
	pauseMin = 250 * time.Millisecond
	pauseMax = 750 * time.Millisecond

	// The exporter's config; docs/reliability.md says why.
	scrapeTimeout = 15 * time.Second
	concurrency   = 8
	maxRPS        = 10
	finishedTTL   = 2 * time.Minute

	// timeoutOffset is what the exporter keeps of Prometheus' timeout for itself.
	timeoutOffset = 500 * time.Millisecond

	projectID = "0123456789abcdef0123456789abcdef"
	accessKey = "SOAKAKSOAKAKSOAKAK00"
)

// taskID is the id of configured task i: the simulator seeds the same ids.
func taskID(i int) string { return fmt.Sprintf("%032x", i+1) }

// settings are the soak's knobs, from the environment. Only SOAK_DURATION is meant for
// routine use (30s while developing); the others serve experiments.
type settings struct {
	dur      time.Duration // SOAK_DURATION
	scrapers int           // SOAK_SCRAPERS
	faults   faultMix      // SOAK_FAULTS
	keep     bool          // SOAK_KEEP=1: keep the temporary directory with both logs
}

func loadSettings(b *testing.B) settings {
	st := settings{dur: defaultDuration, scrapers: defaultScrapers, keep: os.Getenv("SOAK_KEEP") == "1"}
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Second {
			b.Fatalf("SOAK_DURATION=%q: want a duration of at least 10s", s)
		}
		st.dur = d
	}
	if s := os.Getenv("SOAK_SCRAPERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			b.Fatalf("SOAK_SCRAPERS=%q: want 1 to 200", s)
		}
		st.scrapers = n
	}
	faults := defaultFaults
	if s, ok := os.LookupEnv("SOAK_FAULTS"); ok {
		faults = s
	}
	var err error
	if st.faults, err = parseFaults(faults); err != nil {
		b.Fatalf("SOAK_FAULTS: %v", err)
	}
	return st
}

func exporterConfig(simAddr, skFile string) string {
	var c strings.Builder
	fmt.Fprintf(&c, "region: cn-north-4\nproject_id: %s\nendpoint: http://%s\n", projectID, simAddr)
	fmt.Fprintf(&c, "credentials:\n  access_key: %s\n  secret_key_file: %s\n", accessKey, skFile)
	fmt.Fprintf(&c, "scrape:\n  timeout: %s\n  concurrency: %d\n  max_requests_per_second: %d\n",
		scrapeTimeout, concurrency, maxRPS)
	fmt.Fprintf(&c, "cache:\n  finished_ttl: %s\n", finishedTTL)
	c.WriteString("tasks:\n")
	for i := range numTasks {
		fmt.Fprintf(&c, "  - %s\n", taskID(i))
	}
	return c.String()
}

// kinds of request.
const (
	kindMetrics = iota
	kindProbe
	numKinds
)

var kindNames = [numKinds]string{"/metrics", "/probe"}

// record is one scraper request.
type record struct {
	kind    int
	at      time.Duration // when it was sent, since the start of the measured window (negative in the warm-up)
	latency time.Duration // until the whole body was read
	status  int
	err     string // transport or parse error
	expo    exposition
}

// ok: Prometheus would have stored this scrape.
func (r record) ok() bool { return r.err == "" && r.status == http.StatusOK && !r.late() }

// late: the answer came after Prometheus' timeout.
func (r record) late() bool { return r.latency > promTimeout }

// BenchmarkSoak runs the soak once (b.N is ignored: run it with -benchtime 1x).
func BenchmarkSoak(b *testing.B) {
	st := loadSettings(b)
	dir := b.TempDir()
	if st.keep {
		var err error
		if dir, err = os.MkdirTemp("", "metastudio-soak-"); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("soak: keeping %s (SOAK_KEEP=1)\n", dir)
	}
	stack := testkit.StartStack(b, "..", dir, []string{
		"--project-id=" + projectID,
		"--ak=" + accessKey,
		"--tasks=" + strconv.Itoa(numTasks),
		"--latency=" + simLatency.String(),
		"--error-rate=" + strconv.FormatFloat(st.faults.errors, 'g', -1, 64),
		"--throttle-rate=" + strconv.FormatFloat(st.faults.throttle, 'g', -1, 64),
		"--slow-rate=" + strconv.FormatFloat(st.faults.slow, 'g', -1, 64),
		"--slow-delay=" + slowDelay.String(),
		"--malformed-rate=" + strconv.FormatFloat(st.faults.malformed, 'g', -1, 64),
		"--field-style=mixed",
		// A gateway far above the exporter's rate: it throttles nothing and counts each
		// task's answers, so the report can say whether a task was never fetched.
		"--rate-limit=" + strconv.Itoa(countingGateway), "--rate-burst=" + strconv.Itoa(countingGateway),
	}, func(simAddr, skFile string) string { return exporterConfig(simAddr, skFile) })
	sim, exp, simAddr, expAddr := stack.Sim, stack.Exporter, stack.SimAddr, stack.ExporterAddr

	f := st.faults
	fmt.Printf("soak: %d tasks, simulator latency %s, faults %g %% (500 %g %%, 429 %g %%, slow %s %g %%, malformed %g %%)\n",
		numTasks, simLatency, 100*f.total(), 100*f.errors, 100*f.throttle, slowDelay, 100*f.slow, 100*f.malformed)
	fmt.Printf("soak: exporter scrape.timeout %s, concurrency %d, max_requests_per_second %d, finished_ttl %s; "+
		"%d scrapers with a %s timeout header; warm-up %s, measured %s; load average %s\n",
		scrapeTimeout, concurrency, maxRPS, finishedTTL, st.scrapers, promTimeout, warmUp, st.dur, loadAverage())

	b.ResetTimer()
	started := time.Now()
	res := runSoak(b, exp, "http://"+expAddr, st)
	b.StopTimer()
	reportFirstPass(b, "http://"+simAddr, started)

	expStop, simStop := exp.Stop(), sim.Stop()
	res.report(b, expStop, simStop, exp.Log)
	b.ReportMetric(0, "ns/op") // one run of a fixed duration: ns/op means nothing
}

// countingGateway is the simulator's gateway rate in the soak: far above the exporter's,
// there only to count each task's answers.
const countingGateway = 10000

// reportFirstPass reads the simulator's per-task counts: the tasks never answered, and
// when the others were first answered (a call cut by the exporter's timeout is not an
// answer). Once the first full pass (the tasks ÷ the rate in force) is over, no task may be
// left unfetched.
func reportFirstPass(b *testing.B, simBase string, began time.Time) {
	b.Helper()
	resp, err := http.Get(simBase + simulator.StatsPath)
	if err != nil {
		b.Errorf("the simulator's stats: %v", err)
		return
	}
	defer resp.Body.Close()
	var stats simulator.GatewayStats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		b.Errorf("the simulator's stats: %v", err)
		return
	}
	var firsts []float64 // seconds after the load began
	for _, t := range stats.Tasks {
		if t.Answered > 0 {
			firsts = append(firsts, t.FirstAnswered.Sub(began).Seconds())
		}
	}
	answered := len(firsts)
	fmt.Printf("soak: %d of %d tasks answered at least once; first answers after the load began: p50 %.0f s, p90 %.0f s, p99 %.0f s, last %.0f s\n",
		answered, numTasks, testkit.Quantile(firsts, 0.5), testkit.Quantile(firsts, 0.9), testkit.Quantile(firsts, 0.99), testkit.Quantile(firsts, 1))
	if answered < numTasks {
		b.Errorf("%d of %d tasks were never fetched", numTasks-answered, numTasks)
	}
}

// soakResult is what one soak measured.
type soakResult struct {
	dur                     time.Duration
	window                  time.Duration // the first and last `window` are compared for growth
	records                 []record
	rss, threads, fds       []point // from /proc, every second
	goroutines, promRSS     []point // from the scrapers' /metrics answers
	idleBefore, idleAfter   exposition
	atStart, atEnd          exposition    // monitor scrapes at the start and end of the window,
	atStartAt, atEndAt      time.Duration // ... answered at these times
	resStart, resEnd        resources
	resErr                  error
	loadStart, loadEnd      string
	idleFDsBefore, idleFDsA int
}

// monitor scrapes /metrics once with a short timeout header (1.5 s of API calls at most).
func monitor(client *http.Client, base string) (exposition, error) {
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "2")
	resp, err := client.Do(req)
	if err != nil {
		return exposition{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return exposition{}, fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	return summarize(resp.Body)
}

func idleSample(b *testing.B, exp *testkit.Proc, base string) (exposition, int) {
	b.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	e, err := monitor(client, base)
	if err != nil {
		b.Fatalf("monitor scrape: %v\n%s", err, exp.Tail())
	}
	r, err := readResources(exp.Pid())
	if err != nil {
		b.Fatal(err)
	}
	return e, r.fds
}

func runSoak(b *testing.B, exp *testkit.Proc, base string, st settings) *soakResult {
	dur := st.dur
	res := &soakResult{dur: dur, window: min(time.Minute, (dur / 3).Round(time.Second)), loadStart: loadAverage()}

	// The idle baseline: one scrape to authenticate and fill the keep-alive pool, then
	// the goroutines of an exporter with no scrape in flight.
	if _, err := monitor(&http.Client{Timeout: 5 * time.Second}, base); err != nil {
		b.Fatalf("first scrape: %v\n%s", err, exp.Tail())
	}
	time.Sleep(2 * time.Second)
	res.idleBefore, res.idleFDsBefore = idleSample(b, exp, base)

	begin := time.Now()
	windowStart := begin.Add(warmUp)
	end := windowStart.Add(dur)
	since := func(t time.Time) time.Duration { return t.Sub(windowStart) }

	var mu sync.Mutex
	transport := &http.Transport{MaxIdleConnsPerHost: st.scrapers, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}
	client := &http.Client{Timeout: clientTimeout, Transport: transport}
	defer transport.CloseIdleConnections()
	header := strconv.FormatFloat(promTimeout.Seconds(), 'f', -1, 64)

	do := func(kind int, url string) record {
		r := record{kind: kind}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", header)
		start := time.Now()
		r.at = since(start)
		resp, err := client.Do(req)
		if err != nil {
			r.latency, r.err = time.Since(start), err.Error()
			return r
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		r.latency, r.status = time.Since(start), resp.StatusCode
		if err != nil {
			r.err = "reading the body: " + err.Error()
			return r
		}
		if r.status != http.StatusOK {
			r.err = fmt.Sprintf("status %d: %.200s", r.status, body)
			return r
		}
		if r.expo, err = summarize(bytes.NewReader(body)); err != nil {
			r.err = "exposition: " + err.Error()
		}
		return r
	}

	var wg sync.WaitGroup
	for i := range st.scrapers {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(7, uint64(i)))
			pause := func() {
				time.Sleep(pauseMin + time.Duration(rng.Int64N(int64(pauseMax-pauseMin))))
			}
			time.Sleep(time.Duration(i) * (pauseMax / time.Duration(st.scrapers))) // spread the first requests
			for time.Now().Before(end) {
				r := do(kindMetrics, base+"/metrics")
				mu.Lock()
				res.records = append(res.records, r)
				if r.ok() && !math.IsNaN(r.expo.goroutines) {
					at := r.at + r.latency // the gauges are read at the end of the scrape
					res.goroutines = append(res.goroutines, point{at, r.expo.goroutines})
					res.promRSS = append(res.promRSS, point{at, r.expo.rss})
				}
				mu.Unlock()
				pause()
				if !time.Now().Before(end) {
					break
				}
				r = do(kindProbe, base+"/probe?task="+taskID(rng.IntN(numTasks)))
				mu.Lock()
				res.records = append(res.records, r)
				mu.Unlock()
				pause()
			}
		})
	}

	// /proc every second, from the start of the window to its end; the monitor scrape at
	// the start of the window.
	time.Sleep(time.Until(windowStart))
	var err error
	if res.atStart, err = monitor(&http.Client{Timeout: 5 * time.Second}, base); err != nil {
		b.Errorf("monitor scrape at the start of the window: %v", err)
	}
	res.atStartAt = since(time.Now())
	tick := time.NewTicker(time.Second)
	for now := time.Now(); now.Before(end); now = <-tick.C {
		r, err := readResources(exp.Pid())
		if err != nil {
			res.resErr = err
			break
		}
		at := since(now)
		if len(res.rss) == 0 {
			res.resStart = r
		}
		res.resEnd = r
		res.rss = append(res.rss, point{at, r.rss})
		res.threads = append(res.threads, point{at, r.threads})
		res.fds = append(res.fds, point{at, float64(r.fds)})
	}
	tick.Stop()
	wg.Wait()
	res.loadEnd = loadAverage()
	if res.atEnd, err = monitor(&http.Client{Timeout: 5 * time.Second}, base); err != nil {
		b.Errorf("monitor scrape at the end of the window: %v", err)
	}
	res.atEndAt = since(time.Now())

	// The idle sample after the load: scraper connections closed, in-flight work drained.
	transport.CloseIdleConnections()
	time.Sleep(3 * time.Second)
	res.idleAfter, res.idleFDsA = idleSample(b, exp, base)
	slices.SortFunc(res.goroutines, func(a, b point) int { return cmp.Compare(a.at, b.at) })
	slices.SortFunc(res.promRSS, func(a, b point) int { return cmp.Compare(a.at, b.at) })
	return res
}

// inWindow keeps the points of the measured window.
func inWindow(ps []point, dur time.Duration) []point {
	var out []point
	for _, p := range ps {
		if p.at >= 0 && p.at <= dur {
			out = append(out, p)
		}
	}
	return out
}

const mib = 1 << 20

func (res *soakResult) report(b *testing.B, expStop, simStop, expLog string) {
	out := func(format string, a ...any) { fmt.Printf("soak: "+format+"\n", a...) }
	if res.resErr != nil {
		b.Errorf("reading /proc of the exporter: %v", res.resErr)
	}

	// Requests sent within the measured window.
	var byKind [numKinds][]record
	for _, r := range res.records {
		if r.at >= 0 && r.at < res.dur {
			byKind[r.kind] = append(byKind[r.kind], r)
		}
	}
	totalScrapes := len(byKind[kindMetrics]) + len(byKind[kindProbe])
	for k, rs := range byKind {
		name := kindNames[k]
		if len(rs) == 0 {
			b.Errorf("no %s request in the window", name)
			continue
		}
		var lat []float64
		ok := 0
		errs := map[string]int{}
		for _, r := range rs {
			lat = append(lat, r.latency.Seconds())
			switch {
			case r.ok():
				ok++
			case r.err == "" && r.late():
				errs[fmt.Sprintf("answered after the %s Prometheus timeout (200, but Prometheus would have given up)", promTimeout)]++
			default:
				msg := r.err
				if strings.Contains(msg, "Client.Timeout") {
					msg = fmt.Sprintf("no answer within %s", clientTimeout)
				}
				errs[msg]++
			}
		}
		rate := 100 * float64(ok) / float64(len(rs))
		p50, p99, pmax := testkit.Quantile(lat, 0.5), testkit.Quantile(lat, 0.99), slices.Max(lat)
		out("%-8s %5d requests, %6.2f %% successful (200, a parseable exposition, within %s); latency p50 %.3f s, p99 %.3f s, max %.3f s",
			name, len(rs), rate, promTimeout, p50, p99, pmax)
		var own, overhead []float64
		for _, r := range rs {
			if r.err == "" && !math.IsNaN(r.expo.duration) {
				own = append(own, r.expo.duration)
				overhead = append(overhead, r.latency.Seconds()-r.expo.duration)
			}
		}
		out("%-8s   the exporter's own %s_duration_seconds p50 %.3f s, p99 %.3f s, max %.3f s (deadline %.1f s); "+
			"the rest of the latency (gathering, encoding, transfer) p50 %.3f s, p99 %.3f s, max %.3f s",
			name, map[int]string{kindMetrics: "scrape", kindProbe: "probe"}[k], testkit.Quantile(own, 0.5), testkit.Quantile(own, 0.99), maxOr(own),
			(promTimeout - timeoutOffset).Seconds(), testkit.Quantile(overhead, 0.5), testkit.Quantile(overhead, 0.99), maxOr(overhead))
		for msg, n := range errs {
			out("%-8s   %d failed: %s", name, n, msg)
		}
		unit := strings.TrimPrefix(name, "/")
		b.ReportMetric(rate, unit+"_success_%")
		b.ReportMetric(p50, unit+"_p50_s")
		b.ReportMetric(p99, unit+"_p99_s")
		if rate < 99 {
			b.Errorf("%s: only %.2f %% of scrapes succeeded", name, rate)
		}
	}

	// Tasks failing per /metrics scrape, data age, rate limit in force.
	var failed, failedLast, meanAge, maxAge, rateLimit, finished []float64
	for _, r := range byKind[kindMetrics] {
		if !r.ok() {
			continue
		}
		if r.expo.tasks != numTasks {
			b.Errorf("a /metrics answer has %d tasks, want %d", r.expo.tasks, numTasks)
		}
		failed = append(failed, float64(r.expo.failed))
		if r.at >= res.dur-res.window {
			failedLast = append(failedLast, float64(r.expo.failed))
			meanAge = append(meanAge, r.expo.meanAge)
			maxAge = append(maxAge, r.expo.maxAge)
		}
		rateLimit = append(rateLimit, r.expo.rateLimit)
		finished = append(finished, float64(r.expo.finished))
	}
	out("tasks with scrape_success 0 per /metrics scrape: mean %.1f (last %s: mean %.1f, max %.0f); finished tasks %.0f..%.0f",
		mean(failed), res.window, mean(failedLast), maxOr(failedLast), minOr(finished), maxOr(finished))
	out("data age in the last %s: mean per scrape %.1f s (median), max %.0f s", res.window, testkit.Quantile(meanAge, 0.5), maxOr(maxAge))
	b.ReportMetric(mean(failed), "failed_tasks/scrape")
	var probeOK []float64
	for _, r := range byKind[kindProbe] {
		if r.ok() {
			probeOK = append(probeOK, r.expo.probeOK)
		}
	}
	out("/probe   metastudio_probe_success 1 in %.2f %% of the answers", 100*mean(probeOK))
	out("rate limit in force (as /metrics answers saw it): mean %.2f/s, min %.2f/s, at the configured %d/s in %.0f %% of the answers",
		mean(rateLimit), minOr(rateLimit), maxRPS, 100*share(rateLimit, func(v float64) bool { return v == maxRPS }))

	// API calls per scrape, from the exporter's counter.
	calls := res.atEnd.apiCalls - res.atStart.apiCalls
	throttled := res.atEnd.throttled - res.atStart.throttled
	span := (res.atEndAt - res.atStartAt).Seconds()
	out("API calls from the start of the window until the last scrape ended (%.0f s): %.0f (%.2f/s; %.0f throttled), "+
		"%d scrapes (%d /metrics, %d /probe): %.2f calls per scrape, %.2f per /metrics scrape",
		span, calls, calls/span, throttled, totalScrapes, len(byKind[kindMetrics]), len(byKind[kindProbe]),
		calls/float64(totalScrapes), calls/float64(len(byKind[kindMetrics])))
	var codes []string
	for code := range res.atEnd.byCode {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	var parts []string
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%s %.0f", code, res.atEnd.byCode[code]-res.atStart.byCode[code]))
	}
	out("API calls by code (\"error\": no answer, mostly the deadline): %s", strings.Join(parts, ", "))
	out("known tasks (scrape_success 1) at the start of the window %d, at its end %d: %+d for %.0f calls",
		res.atStart.tasks-res.atStart.failed, res.atEnd.tasks-res.atEnd.failed,
		(res.atEnd.tasks-res.atEnd.failed)-(res.atStart.tasks-res.atStart.failed), calls)
	b.ReportMetric(calls/float64(totalScrapes), "api_calls/scrape")
	b.ReportMetric(calls/span, "api_calls/s")

	res.timeline(out)

	// Flatness.
	g := flatness(inWindow(res.goroutines, res.dur), res.window, res.dur, 2)
	rss := flatness(res.rss, res.window, res.dur, mib)
	prss := flatness(inWindow(res.promRSS, res.dur), res.window, res.dur, mib)
	fds := flatness(res.fds, res.window, res.dur, 2)
	thr := flatness(res.threads, res.window, res.dur, 1)
	line := func(name string, t trend, scale float64, unit string) {
		out("%-34s start %8.1f, end %8.1f, max %8.1f %s; median first %s %8.1f, last %s %8.1f: growth %+7.1f (noise %.1f, slope %+.2f/min): %s",
			name, t.start/scale, t.end/scale, t.max/scale, unit, res.window, t.firstMedian/scale, res.window, t.lastMedian/scale,
			t.growth/scale, t.noise/scale, t.slope/scale, t.verdict())
	}
	line("go_goroutines (/metrics answers)", g, 1, "")
	first, last := res.inFlight(0, res.window), res.inFlight(res.dur-res.window, res.dur)
	out("  (requests in flight at the exporter when go_goroutines was read, median: first %s %.0f /metrics + %.0f /probe, last %s %.0f + %.0f)",
		res.window, first[kindMetrics], first[kindProbe], res.window, last[kindMetrics], last[kindProbe])
	line("VmRSS (/proc, every 1 s)", rss, mib, "MiB")
	line("process_resident_memory_bytes", prss, mib, "MiB")
	line("open fds (/proc)", fds, 1, "")
	line("threads (/proc)", thr, 1, "")
	out("idle (no scrape in flight) before the load: %.0f goroutines, %.1f MiB, %d fds; after it: %.0f goroutines, %.1f MiB, %d fds",
		res.idleBefore.goroutines, res.idleBefore.rss/mib, res.idleFDsBefore,
		res.idleAfter.goroutines, res.idleAfter.rss/mib, res.idleFDsA)
	b.ReportMetric(g.start, "goroutines_start")
	b.ReportMetric(g.end, "goroutines_end")
	b.ReportMetric(g.max, "goroutines_max")
	b.ReportMetric(rss.start/mib, "rss_start_MiB")
	b.ReportMetric(rss.end/mib, "rss_end_MiB")
	b.ReportMetric(rss.max/mib, "rss_max_MiB")
	// RSS is judged, not enforced: it grows with the values of the tasks that become known
	// (res.atStart to res.atEnd), which at 1,000 tasks takes longer than 5 minutes.
	out("  (known tasks meanwhile: %d at the start of the window, %d at its end)",
		res.atStart.tasks-res.atStart.failed, res.atEnd.tasks-res.atEnd.failed)
	for name, t := range map[string]trend{"goroutines": g, "open fds": fds} {
		if t.beyond && t.growth > 0 {
			b.Errorf("%s grew beyond noise: %+.0f (first %s median %.0f, last %.0f, noise %.0f)",
				name, t.growth, res.window, t.firstMedian, t.lastMedian, t.noise)
		}
	}
	if d := res.idleAfter.goroutines - res.idleBefore.goroutines; d > 2*concurrency+4 {
		b.Errorf("%.0f more goroutines idle after the load than before it", d)
	}

	logs, err := summarizeLog(expLog)
	if err != nil {
		b.Error(err)
	}
	out("exporter log: %d lines: %d info, %d warn, %d error, %d debug, %d mentioning panic; exporter stop: %s; simulator stop: %s",
		sumValues(logs.levels), logs.levels["info"], logs.levels["warn"], logs.levels["error"], logs.levels["debug"],
		logs.panics, expStop, simStop)
	warns := make([]string, 0, len(logs.warns))
	for k := range logs.warns {
		warns = append(warns, k)
	}
	slices.SortFunc(warns, func(a, b string) int { return cmp.Compare(logs.warns[b], logs.warns[a]) })
	for _, k := range warns[:min(len(warns), 8)] {
		out("  %6d  %s", logs.warns[k], k)
	}
	out("load average at the start %s, at the end %s", res.loadStart, res.loadEnd)
	if logs.panics > 0 {
		b.Errorf("the exporter's log mentions a panic")
	}
	if expStop != "exit 0 on SIGTERM" {
		b.Errorf("exporter: %s", expStop)
	}
}

// timeline prints, per tenth of the window (10 s at least), what the /metrics answers that
// ended in it saw: the API calls made (from the counter), the rate limit in force, the
// tasks failing, the goroutines, and the RSS read from /proc.
func (res *soakResult) timeline(out func(string, ...any)) {
	bucket := max(10*time.Second, res.dur/10)
	// The counter at the start: the monitor scrape's, or a lower one that an answer read.
	prevCalls := res.atStart.apiCalls
	for _, r := range res.records {
		if r.kind == kindMetrics && r.ok() && r.at+r.latency >= 0 {
			prevCalls = min(prevCalls, r.expo.apiCalls)
		}
	}
	for from := time.Duration(0); from < res.dur; from += bucket {
		to := min(from+bucket, res.dur)
		var calls, limit, failed, goroutines, rss []float64
		for _, r := range res.records {
			if at := r.at + r.latency; r.kind == kindMetrics && r.ok() && at >= from && at < to {
				calls = append(calls, r.expo.apiCalls)
				limit = append(limit, r.expo.rateLimit)
				failed = append(failed, float64(r.expo.failed))
				goroutines = append(goroutines, r.expo.goroutines)
			}
		}
		for _, p := range res.rss {
			if p.at >= from && p.at < to {
				rss = append(rss, p.v)
			}
		}
		n := math.NaN()
		if len(calls) > 0 {
			n = slices.Max(calls) - prevCalls
			prevCalls = slices.Max(calls)
		}
		out("  %5.0f-%-5.0fs %3d answers: %5.0f API calls (%5.2f/s), rate limit median %5.2f min %5.2f, failing tasks median %4.0f, goroutines median %4.0f, VmRSS median %5.1f MiB",
			from.Seconds(), to.Seconds(), len(calls), n, n/(to-from).Seconds(), testkit.Quantile(limit, 0.5), minOr(limit),
			testkit.Quantile(failed, 0.5), testkit.Quantile(goroutines, 0.5), testkit.Quantile(rss, 0.5)/mib)
	}
}

// inFlight is, over the /metrics answers that ended in [from, to), the median number of
// requests of each kind in flight at the exporter (sent, not yet answered) at that moment.
func (res *soakResult) inFlight(from, to time.Duration) [numKinds]float64 {
	var counts [numKinds][]float64
	for _, r := range res.records {
		end := r.at + r.latency
		if r.kind != kindMetrics || !r.ok() || end < from || end >= to {
			continue
		}
		var n [numKinds]float64
		for _, o := range res.records {
			if o.at <= end && o.at+o.latency > end {
				n[o.kind]++
			}
		}
		for k := range n {
			counts[k] = append(counts[k], n[k])
		}
	}
	var out [numKinds]float64
	for k := range out {
		out[k] = testkit.Quantile(counts[k], 0.5)
	}
	return out
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func maxOr(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Max(xs)
}

func minOr(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Min(xs)
}

func share(xs []float64, f func(float64) bool) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	n := 0
	for _, x := range xs {
		if f(x) {
			n++
		}
	}
	return float64(n) / float64(len(xs))
}
