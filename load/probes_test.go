//go:build linux

package load

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"net/http"
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
	rep := newCaseReport(b, "load probes")
	out := rep.out
	configured, unlisted := churnTasks()
	dir := b.TempDir()
	stack := testkit.StartStack(b, "..", dir, simArgs(churnSimTasks, churnLatency, churnGatewayRate), func(simAddr, skFile string) string {
		return churnConfig(simAddr, projectID, accessKey, skFile, configured)
	})
	sim, exp := stack.Sim, stack.Exporter

	rep.setup("%d configured running tasks, probe.allow_unlisted, max_requests_per_second %d, other keys at their defaults; "+
		"simulator latency %s; %d distinct unlisted probes in %s (timeout header %s) from %s on; /metrics every %s "+
		"(timeout header %s) for %s", churnConfigured, churnRPS, churnLatency, churnUnlisted, churnSpread,
		churnProbeTimeout, churnWarmUp, churnScrapeEvery, churnScrapeEvery, churnRunFor)

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

	rep.finish(expStop, exp, missed, "of the probe-churn targets")
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
		return churnSnapshot{at: at, churnStats: gatewayCounts[churnStats](b, client, statsURL)}
	}
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

	var run churnRun
	run.first = readStats()
	var wg sync.WaitGroup
	wg.Go(func() { // the /metrics scraper
		tick := time.NewTicker(churnScrapeEvery)
		defer tick.Stop()
		for since(time.Now()) < churnRunFor {
			g := get(client, t0, base+"/metrics", secs(churnScrapeEvery))
			s := taskScrape{at: g.at, latency: g.latency, err: g.err}
			if g.err == "" {
				var err error
				if s.age, s.success, err = parseTaskSeries(bytes.NewReader(g.body)); err != nil {
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
			g := get(client, t0, base+"/probe?task="+id, secs(churnProbeTimeout))
			p := probeRecord{at: g.at, latency: g.latency, status: g.status, err: g.err, success: math.NaN()}
			if g.err == "" {
				if v, ok := probeSuccess(g.body); ok {
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
