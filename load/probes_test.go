//go:build linux

package load

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
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

// BenchmarkLoadProbes runs the probe-churn case once (b.N is ignored: run it with
// -benchtime 1x): 5 configured running tasks, probe.allow_unlisted, a 20/s rate and a
// 50 ms API, and 1,200 distinct unlisted probes in 3 s while /metrics is scraped every
// second.
func BenchmarkLoadProbes(b *testing.B) {
	reportOnly := os.Getenv("LOAD_REPORT_ONLY") == "1"
	configured, unlisted := churnTasks()
	dir := b.TempDir()
	stack := testkit.StartStack(b, "..", dir, []string{
		"--project-id=" + projectID,
		"--ak=" + accessKey,
		"--tasks=" + strconv.Itoa(churnSimTasks),
		"--latency=" + churnLatency.String(),
		"--rate-limit=" + strconv.Itoa(churnGatewayRate),
	}, func(simAddr, skFile string) string {
		return churnConfig(simAddr, projectID, accessKey, skFile, configured)
	})
	sim, exp := stack.Sim, stack.Exporter

	out := func(format string, a ...any) { fmt.Printf("load probes: "+format+"\n", a...) }
	out("%d configured running tasks, probe.allow_unlisted, max_requests_per_second %d, other keys at their defaults; "+
		"simulator latency %s; %d distinct unlisted probes in %s (timeout header %s) from %s on; /metrics every %s "+
		"(timeout header %s) for %s", churnConfigured, churnRPS, churnLatency, churnUnlisted, churnSpread,
		churnProbeTimeout, churnWarmUp, churnScrapeEvery, churnScrapeEvery, churnRunFor)
	if reportOnly {
		out("LOAD_REPORT_ONLY=1: a missed target is reported, not failed")
	}

	b.ResetTimer()
	r := runChurn(b, "http://"+stack.ExporterAddr, "http://"+stack.SimAddr+simulator.StatsPath, configured, unlisted)
	b.StopTimer()
	expStop, simStop := exp.Stop(), sim.Stop()

	f := measureChurn(r.probes, r.scrapes, churnWarmUp, configured, unlisted, r.first.churnStats, r.storm.churnStats,
		r.stormEnd.churnStats, r.last.churnStats)
	out("probes: %d sent, %d answered with probe_success 1; the probed ids got %d ShowTask answers",
		f.probes, f.probesOK, f.unlistedCalls)
	out("/metrics from the first probe on: %d scrapes; fewest configured tasks with scrape_success 1 in one: %d of %d; "+
		"largest data_age %.1f s", f.scrapes, f.minSuccess, churnConfigured, f.maxAge)
	out("while the probes arrived (%.1f s), the configured task called least got %d ShowTask answers",
		(r.stormEnd.at - r.storm.at).Seconds(), f.minCalls)
	out("scrapes (sent at, latency, per configured task data_age/scrape_success):")
	for _, s := range r.scrapes {
		out("  %s", scrapeRow(s, configured))
	}
	out("exporter stop: %s; simulator stop: %s", expStop, simStop)
	out("targets:")
	missed := printTargets(out, f.targets())

	b.ReportMetric(0, "ns/op") // one run of a fixed duration: ns/op means nothing
	b.ReportMetric(f.maxLatency, "probe_max_s")
	b.ReportMetric(float64(f.probesLate+f.probesFailed), "probes_late_or_failed")
	b.ReportMetric(f.maxAge, "max_data_age_s")
	if f.overlaps != nil {
		b.ReportMetric(float64(*f.overlaps), "overlaps")
	}

	if expStop != "exit 0 on SIGTERM" {
		b.Errorf("exporter: %s\n%s", expStop, exp.Tail())
	}
	if missed > 0 && !reportOnly {
		b.Errorf("%d of the probe-churn targets missed (LOAD_REPORT_ONLY=1 only reports them)", missed)
	}
}

// churnRun is what runChurn recorded, with the gateway's counts at the start, when the
// probes began and when the last was sent, and at the end.
type churnRun struct {
	probes                       []probeRecord
	scrapes                      []taskScrape
	first, storm, stormEnd, last churnSnapshot
}

type churnSnapshot struct {
	at time.Duration
	churnStats
}

// runChurn scrapes /metrics every churnScrapeEvery for churnRunFor and, from churnWarmUp
// on, sends one probe of each unlisted id, evenly over churnSpread, each on its own.
func runChurn(b *testing.B, base, statsURL string, configured, unlisted []string) churnRun {
	transport := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	client := &http.Client{Timeout: churnProbeTimeout + 5*time.Second, Transport: transport}

	t0 := time.Now()
	since := func(t time.Time) time.Duration { return t.Sub(t0) }
	readStats := func() churnSnapshot {
		at := since(time.Now())
		resp, err := client.Get(statsURL)
		if err != nil {
			b.Fatalf("reading the gateway's counts: %v", err)
		}
		defer resp.Body.Close()
		s, err := decodeChurnStats(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("reading the gateway's counts: status %d, %v", resp.StatusCode, err)
		}
		return churnSnapshot{at: at, churnStats: s}
	}
	get := func(path, timeout string) (time.Duration, time.Duration, int, []byte, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
		sent := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return since(sent), time.Since(sent), 0, nil, err.Error()
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		latency := time.Since(sent)
		switch {
		case err != nil:
			return since(sent), latency, resp.StatusCode, nil, "reading the body: " + err.Error()
		case resp.StatusCode != http.StatusOK:
			return since(sent), latency, resp.StatusCode, nil, fmt.Sprintf("status %d: %.200s", resp.StatusCode, body)
		}
		return since(sent), latency, resp.StatusCode, body, ""
	}
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

	var run churnRun
	run.first = readStats()
	var wg sync.WaitGroup
	wg.Go(func() { // the /metrics scraper
		tick := time.NewTicker(churnScrapeEvery)
		defer tick.Stop()
		for since(time.Now()) < churnRunFor {
			at, latency, _, body, errText := get("/metrics", secs(churnScrapeEvery))
			s := taskScrape{at: at, latency: latency, err: errText}
			if errText == "" {
				var err error
				if s.age, s.success, err = parseTaskSeries(bytes.NewReader(body)); err != nil {
					s.err = "exposition: " + err.Error()
				}
			}
			run.scrapes = append(run.scrapes, s)
			<-tick.C
		}
	})

	time.Sleep(time.Until(t0.Add(churnWarmUp)))
	run.storm = readStats()
	var mu sync.Mutex
	var probes sync.WaitGroup
	for i, id := range unlisted {
		time.Sleep(time.Until(t0.Add(churnWarmUp + time.Duration(i)*churnSpread/time.Duration(len(unlisted)))))
		probes.Go(func() {
			at, latency, status, body, errText := get("/probe?task="+id, secs(churnProbeTimeout))
			p := probeRecord{at: at, latency: latency, status: status, err: errText, success: math.NaN()}
			if errText == "" {
				if v, ok := probeSuccess(body); ok {
					p.success = v
				} else {
					p.err = "no metastudio_probe_success in the answer"
				}
			}
			mu.Lock()
			run.probes = append(run.probes, p)
			mu.Unlock()
		})
	}
	run.stormEnd = readStats()
	probes.Wait()
	wg.Wait()
	run.last = readStats()
	slices.SortFunc(run.probes, func(a, b probeRecord) int { return cmp.Compare(a.at, b.at) })
	return run
}

// scrapeRow prints one /metrics scrape for the report.
func scrapeRow(s taskScrape, configured []string) string {
	row := fmt.Sprintf("%5.2f s  %5.2f s ", s.at.Seconds(), s.latency.Seconds())
	if s.err != "" {
		return row + " " + s.err
	}
	for _, id := range configured {
		age, ok := s.age[id]
		a := "   -"
		if ok {
			a = fmt.Sprintf("%4.1f", age)
		}
		row += fmt.Sprintf("  %s/%g", a, s.success[id])
	}
	return row
}
