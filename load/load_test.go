//go:build linux

package load

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	projectID = "0123456789abcdef0123456789abcdef"
	accessKey = "LOADAKLOADAKLOADAK00"
)

// BenchmarkLoad runs the measurement once (b.N is ignored: run it with -benchtime 1x).
func BenchmarkLoad(b *testing.B) {
	rep := newCaseReport(b, "load")
	out := rep.out
	ids := runningTasks()
	dir := b.TempDir()
	stack := testkit.StartStack(b, "..", dir, simArgs(simTasks, simLatency, gatewayRate,
		"--rate-burst="+strconv.Itoa(gatewayBurst),
	), func(simAddr, skFile string) string { return exporterConfig(simAddr, projectID, accessKey, skFile, ids) })
	sim, exp, simAddr, expAddr := stack.Sim, stack.Exporter, stack.SimAddr, stack.ExporterAddr

	rep.setup("%d running tasks (of %d seeded), simulator latency %s, gateway %d/s (burst %d); exporter "+
		"max_requests_per_second %d, concurrency %d, other keys at their defaults; %d scrapers, /metrics every %s "+
		"for %s with a %s timeout header; measured after %s", numTasks, simTasks, simLatency, gatewayRate, gatewayBurst,
		maxRPS, concurrency, scrapers, interval, runFor, promTimeout, warmUp)

	b.ResetTimer()
	records, snaps := run(b, "http://"+expAddr, "http://"+simAddr+simulator.StatsPath,
		schedule{scrapers: scrapers, interval: interval, runFor: runFor, snapEvery: snapEvery, timeout: promTimeout})
	b.StopTimer()
	expStop, simStop := exp.Stop(), sim.Stop()

	// The window: the snapshots at warmUp and at runFor (the last).
	start, end := snaps[int(warmUp/snapEvery)], snaps[len(snaps)-1]
	f := measure(records, warmUp, runFor, snaps[0], start, end, ids)
	out("scrapes in the window: %d (%d without a parseable 200); all scrapes: %d", f.scrapes, f.failed, len(records))
	out("per scrape: share of tasks with scrape_success 1 min %.1f %% (a scrape past its timeout counts 0), "+
		"%.1f %% in the expositions themselves (late ones included); largest data_age %.1f s", 100*f.minSuccess, 100*f.minParsed, f.maxAge)
	out("gateway in the window (%.1f s): %d answered (%.1f/s), %d throttled, %d ShowTask answers of which %d repeats",
		f.calls.span.Seconds(), f.calls.answered, float64(f.calls.answered)/f.calls.span.Seconds(), f.calls.throttled,
		f.calls.showAnswered, f.calls.repeat)
	whole := between(snaps[0], end)
	out("gateway over the whole run (%.1f s): %d answered (%.0f %% of the allowance), %d throttled (%.1f %%), %.1f %% repeats; "+
		"%d tasks never answered", whole.span.Seconds(), whole.answered, 100*whole.allowanceUsed(), whole.throttled,
		100*whole.throttledShare(), 100*whole.repeatShare(), f.uncalledRun)
	out("timeline (the gateway's counts per %s, and the scrapes that ended in each step):", snapEvery)
	for _, row := range timeline(records, snaps) {
		out("  %s", row)
	}
	out("exporter stop: %s; simulator stop: %s", expStop, simStop)
	out("targets, after the first %s:", warmUp)
	missed := printTargets(out, f.targets())

	b.ReportMetric(0, "ns/op") // one run of a fixed duration: ns/op means nothing
	b.ReportMetric(100*f.minSuccess, "min_success_%")
	b.ReportMetric(f.maxAge, "max_data_age_s")
	b.ReportMetric(float64(f.uncalledWindow), "uncalled_tasks")
	b.ReportMetric(100*f.calls.allowanceUsed(), "allowance_used_%")
	b.ReportMetric(100*f.calls.throttledShare(), "throttled_%")
	b.ReportMetric(100*f.calls.repeatShare(), "repeats_%")
	b.ReportMetric(f.p50, "scrape_p50_s")
	b.ReportMetric(f.p99, "scrape_p99_s")

	// The setup itself must hold, whatever LOAD_REPORT_ONLY says.
	if f.finished > 0 {
		b.Errorf("a scrape showed %d finished tasks: the setup wants none", f.finished)
	}
	for _, r := range records {
		if r.parsed() && r.expo.tasks != numTasks {
			b.Errorf("a scrape had %d metastudio_task_scrape_success series, want %d", r.expo.tasks, numTasks)
			break
		}
	}
	rep.finish(expStop, exp, missed, "targets")
}

// schedule is how the scrapers of a load case run.
type schedule struct {
	scrapers  int
	interval  time.Duration // each scraper's
	runFor    time.Duration // scrapers send until then
	snapEvery time.Duration // how often the gateway's counts are read
	timeout   time.Duration // sent as X-Prometheus-Scrape-Timeout-Seconds; the client waits 5 s more
}

// run scrapes for runFor and reads the gateway's counts every snapEvery (at 0 first). Each
// scraper starts interval/scrapers after the previous one, then scrapes on a ticker: a
// scrape longer than the interval makes it skip ticks, as Prometheus' scrape loop does.
func run(b *testing.B, base, statsURL string, sch schedule) ([]scrape, []snapshot) {
	transport := &http.Transport{MaxIdleConnsPerHost: sch.scrapers + 1, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	client := &http.Client{Timeout: sch.timeout + 5*time.Second, Transport: transport}
	header := strconv.FormatFloat(sch.timeout.Seconds(), 'f', -1, 64)

	t0 := time.Now()
	since := func(t time.Time) time.Duration { return t.Sub(t0) }
	readStats := func() snapshot {
		at := since(time.Now())
		return snapshot{at: at, stats: gatewayCounts[simulator.GatewayStats](b, client, statsURL)}
	}
	snaps := []snapshot{readStats()}

	do := func() scrape {
		g := get(client, t0, base+"/metrics", header)
		r := scrape{at: g.at, latency: g.latency, status: g.status, err: g.err}
		if r.err == "" {
			var err error
			if r.expo, err = parseExposition(bytes.NewReader(g.body)); err != nil {
				r.err = "exposition: " + err.Error()
			}
		}
		return r
	}

	var mu sync.Mutex
	var records []scrape
	var wg sync.WaitGroup
	for i := range sch.scrapers {
		wg.Go(func() {
			time.Sleep(time.Until(t0.Add(time.Duration(i) * sch.interval / time.Duration(sch.scrapers))))
			tick := time.NewTicker(sch.interval)
			defer tick.Stop()
			for since(time.Now()) < sch.runFor {
				r := do()
				mu.Lock()
				records = append(records, r)
				mu.Unlock()
				<-tick.C
			}
		})
	}
	for k := 1; k <= int(sch.runFor/sch.snapEvery); k++ {
		time.Sleep(time.Until(t0.Add(time.Duration(k) * sch.snapEvery)))
		snaps = append(snaps, readStats())
	}
	wg.Wait()
	slices.SortFunc(records, func(a, b scrape) int { return cmp.Compare(a.at, b.at) })
	return records, snaps
}

// caseReport prints a load case's report, each line with the case's prefix, and fails the
// case at the end; with LOAD_REPORT_ONLY=1 a missed target is reported, not failed.
type caseReport struct {
	b          testing.TB
	prefix     string
	reportOnly bool
}

func newCaseReport(b testing.TB, prefix string) *caseReport {
	return &caseReport{b: b, prefix: prefix, reportOnly: os.Getenv("LOAD_REPORT_ONLY") == "1"}
}

// out prints one line of the report.
func (r *caseReport) out(format string, a ...any) {
	fmt.Printf(r.prefix+": "+format+"\n", a...)
}

// setup prints the line that describes the case, and whether a miss fails it.
func (r *caseReport) setup(format string, a ...any) {
	r.out(format, a...)
	if r.reportOnly {
		r.out("LOAD_REPORT_ONLY=1: a missed target is reported, not failed")
	}
}

// finish fails the case when the exporter did not stop cleanly, and when targets (which
// names them in the error) were missed, unless only reporting.
func (r *caseReport) finish(expStop string, exp *testkit.Proc, missed int, targets string) {
	if expStop != "exit 0 on SIGTERM" {
		r.b.Errorf("exporter: %s\n%s", expStop, exp.Tail())
	}
	if missed > 0 && !r.reportOnly {
		r.b.Errorf("%d %s missed (LOAD_REPORT_ONLY=1 only reports them)", missed, targets)
	}
}

// answer is one GET of the exporter: when it was sent (since t0), how long until its whole
// body was read (or it failed), its status and its body; err (a transport, read or status
// error) is empty only for a 200 read whole.
type answer struct {
	at, latency time.Duration
	status      int
	body        []byte
	err         string
}

// get sends a GET of url with the timeout header Prometheus would send.
func get(client *http.Client, t0 time.Time, url, timeout string) answer {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
	sent := time.Now()
	a := answer{at: sent.Sub(t0)}
	resp, err := client.Do(req)
	if err != nil {
		a.latency, a.err = time.Since(sent), err.Error()
		return a
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a.latency, a.status = time.Since(sent), resp.StatusCode
	switch {
	case err != nil:
		a.err = "reading the body: " + err.Error()
	case a.status != http.StatusOK:
		a.err = fmt.Sprintf("status %d: %.200s", a.status, body)
	default:
		a.body = body
	}
	return a
}

// gatewayCounts reads the gateway's counts as T; a failure ends the case.
func gatewayCounts[T any](b testing.TB, client *http.Client, statsURL string) T {
	resp, err := client.Get(statsURL)
	if err != nil {
		b.Fatalf("reading the gateway's counts: %v", err)
	}
	defer resp.Body.Close()
	s, err := decodeStats[T](resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("reading the gateway's counts: status %d, %v", resp.StatusCode, err)
	}
	return s
}
