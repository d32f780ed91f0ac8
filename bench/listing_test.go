//go:build linux

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// The listing benchmarks: discovery finding every task with SearchTask, whatever the
// server's paging.
const (
	// listSpan is how far back the tasks of the listing benchmarks began, one after the
	// other; the exporter's lookback is an hour longer.
	listSpan = 7 * 24 * time.Hour
	// passTasks is the size of BenchmarkDiscoveryPass; listedTasks that of
	// BenchmarkListedFinished.
	passTasks   = 10000
	listedTasks = 100000
)

// pagings are the simulator's three readings of SearchTask's offset and limit.
var pagings = []string{simulator.PagingRows, simulator.PagingPages, simulator.PagingIgnored}

// rowsPerAnswer is how many rows one SearchTask answer delivers under a paging: 100 where
// the limit the exporter asks for is honoured, 10 (the documented default) where it is not.
func rowsPerAnswer(paging string) int {
	if paging == simulator.PagingIgnored {
		return 10
	}
	return 100
}

// callBound is the most SearchTask calls a listing of n tasks may cost:
// ⌈n / rows per answer⌉ × 1.5 + 10.
func callBound(n, perAnswer int) float64 {
	return float64((n+perAnswer-1)/perAnswer)*1.5 + 10
}

// BenchmarkDiscoveryPass measures the listing pass at the exporter's start over 10,000
// finished tasks begun over 7 days, in each paging behaviour of the simulator: calls
// (SearchTask calls the simulator received), bound (what the target allows), pass-s (the
// pass's wall time, from the exporter's own log: from "Loaded config" to "Discovery listed
// tasks"), pass-RSS-MiB (the exporter's peak RSS right after the pass), missed (the
// exporter's metastudio_discovery_missed_tasks) and paging-rows/pages/none (1 for the
// paging it detected). The first scrape after the pass should export every task with no
// ShowTask call, a listed finished task being fresh: first-ok and first-ShowTask say what
// it did (reported, not failed: a miss is a finding). Each iteration is then a scrape
// (wall-ms, ShowTask/scrape).
func BenchmarkDiscoveryPass(b *testing.B) {
	for _, paging := range pagings {
		b.Run(fmt.Sprintf("paging=%s/tasks=%d", paging, passTasks), func(b *testing.B) {
			skipLarge(b, passTasks)
			sim := startSim(b, passTasks, shapeSpread, envSpan+"="+listSpan.String(), envPaging+"="+paging)
			e := startExporter(b, sim.url, exporterConfig{finishedTTL: time.Hour, discovery: true,
				lookback: listSpan + time.Hour, debugLog: true})
			pass := waitListed(b, e, passTasks, 15*time.Minute)
			passRSS := e.peakRSS(b)
			calls, gauges, _ := scrapeAfterPass(b, e, sim, passTasks)
			b.ReportMetric(float64(calls), "calls")
			b.ReportMetric(callBound(passTasks, rowsPerAnswer(paging)), "bound")
			b.ReportMetric(float64(pass.calls), "exporter-calls")
			b.ReportMetric(pass.wall.Seconds(), "pass-s")
			b.ReportMetric(float64(passRSS)/mib, "pass-RSS-MiB")
			b.ReportMetric(float64(e.peakRSS(b))/mib, "RSS-MiB")
			gauges.report(b)
			b.ReportMetric(loadAverage(), "load1")
		})
	}
}

// BenchmarkListedFinished measures 100,000 finished tasks begun over 7 days that only
// discovery knows (paging by rows, max_tasks 200,000): the listing pass at start (calls,
// pass-s), the first scrape after it (as BenchmarkDiscoveryPass reports it), then warm
// scrapes (wall-ms, cpu-ms/scrape, ShowTask/scrape: none) and the exporter's peak RSS over
// it all (RSS-MiB); right after, the plain client_golang registry of the same 900,000
// series, served and scraped the same way (plain-ms, x-plain).
func BenchmarkListedFinished(b *testing.B) {
	n := listedTasks
	b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
		skipLarge(b, n)
		spread := []string{envShape + "=" + shapeSpread, envSpan + "=" + listSpan.String()}
		sim := startSim(b, n, shapeSpread, envSpan+"="+listSpan.String(), envPaging+"="+simulator.PagingRows)
		e := startExporter(b, sim.url, exporterConfig{finishedTTL: time.Hour, discovery: true,
			lookback: listSpan + time.Hour, maxTasks: 2 * n, debugLog: true})
		pass := waitListed(b, e, n, 20*time.Minute)
		calls, gauges, samples := scrapeAfterPass(b, e, sim, n)
		b.ReportMetric(float64(e.peakRSS(b))/mib, "RSS-MiB")
		b.ReportMetric(float64(calls), "calls")
		b.ReportMetric(callBound(n, rowsPerAnswer(simulator.PagingRows)), "bound")
		b.ReportMetric(pass.wall.Seconds(), "pass-s")
		gauges.report(b)
		plainWall, _, plainRSS := plainHTTPYardstick(b, n, yardstickRounds, spread...)
		b.ReportMetric(plainWall, "plain-ms")
		b.ReportMetric(plainRSS, "plain-RSS-MiB")
		b.ReportMetric(medianOf(samples, func(s sample) float64 { return ms(s.wall) })/plainWall, "x-plain")
		b.ReportMetric(loadAverage(), "load1")
	})
}

// scrapeAfterPass is what the listing benchmarks do once the pass over n tasks is over:
// it takes the SearchTask calls so far, scrapes once (reported by reportFirst with how
// many more scrapes it took to be warm), reads the discovery gauges, then scrapes all n
// tasks once per iteration (reported by reportScrapes).
func scrapeAfterPass(b *testing.B, e *exporterProcess, sim *child, n int) (calls int64, gauges discoveryGauges, samples []sample) {
	_, calls = sim.requests(b)
	first := measure(b, e, sim, 1)
	settled := settle(b, e, sim, first, n)
	gauges = discoveryGaugesOf(b, e)
	for b.Loop() {
		s := measure(b, e, sim, 1)
		expectTasks(b, s.scrapeResult, n)
		samples = append(samples, s)
	}
	reportScrapes(b, samples, n) // metrics are reported after b.Loop, which deletes earlier ones
	reportFirst(b, first, settled)
	return calls, gauges, samples
}

// maxSettle is how many scrapes after the first settle may take.
const maxSettle = 5

// settle scrapes the exporter until a scrape exports all n tasks with no ShowTask call
// (the first scrape after the pass, given, may not), so that the scrapes measured next
// are warm. It returns how many scrapes that took after the first, and fails the
// benchmark after maxSettle.
func settle(b *testing.B, e *exporterProcess, sim *child, first sample, n int) int {
	b.Helper()
	s := first
	for k := 0; ; k++ {
		if s.ok == n && s.show == 0 {
			return k
		}
		if k == maxSettle {
			b.Fatalf("%d scrapes after the first, the last still exported %d of %d tasks with %d ShowTask calls", k, s.ok, n, s.show)
		}
		s = measure(b, e, sim, 1)
	}
}

// reportFirst reports the first scrape after the listing pass: first-ms, first-ok (tasks
// with scrape_success 1), first-ShowTask (calls it made) and settle-scrapes (scrapes after
// it until one exported every task without a call).
func reportFirst(b *testing.B, first sample, settled int) {
	b.ReportMetric(ms(first.wall), "first-ms")
	b.ReportMetric(float64(first.ok), "first-ok")
	b.ReportMetric(float64(first.show), "first-ShowTask")
	b.ReportMetric(float64(settled), "settle-scrapes")
}

// listedPass is a listing pass as the exporter logged it.
type listedPass struct {
	tasks, calls int
	wall         time.Duration // from "Loaded config" to "Discovery listed tasks"
}

var (
	loadedLine = regexp.MustCompile(`(?m)^.*\bts=(\S+) .*msg="Loaded config".*$`)
	listedLine = regexp.MustCompile(`(?m)^.*\bts=(\S+) .*msg="Discovery listed tasks" tasks=(\d+) calls=(\d+).*$`)
)

// parseListed reads the first listing pass from an exporter's debug log: ok is false
// until the log holds it.
func parseListed(log []byte) (p listedPass, ok bool, err error) {
	loaded, listed := loadedLine.FindSubmatch(log), listedLine.FindSubmatch(log)
	if loaded == nil || listed == nil {
		return p, false, nil
	}
	from, err1 := time.Parse(time.RFC3339Nano, string(loaded[1]))
	to, err2 := time.Parse(time.RFC3339Nano, string(listed[1]))
	tasks, err3 := strconv.Atoi(string(listed[2]))
	calls, err4 := strconv.Atoi(string(listed[3]))
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return p, false, fmt.Errorf("the listing's log lines: %w", err)
		}
	}
	return listedPass{tasks: tasks, calls: calls, wall: to.Sub(from)}, true, nil
}

// waitListed waits until the exporter has logged its first listing pass, and fails the
// benchmark unless it found n tasks, or after timeout.
func waitListed(tb testing.TB, e *exporterProcess, n int, timeout time.Duration) listedPass {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(e.log)
		if err != nil {
			tb.Fatal(err)
		}
		p, ok, err := parseListed(data)
		switch {
		case err != nil:
			tb.Fatal(err)
		case ok && p.tasks != n:
			tb.Fatalf("the listing pass found %d tasks, want %d:\n%s", p.tasks, n, e.logTail())
		case ok:
			return p
		case time.Now().After(deadline):
			tb.Fatalf("no listing pass logged within %s:\n%s", timeout, e.logTail())
		}
		select {
		case <-e.done:
			tb.Fatalf("the exporter exited:\n%s", e.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// discoveryGauges are the discovery gauges of one exposition, summed over the series of
// every project (the listing benchmarks run one).
type discoveryGauges struct {
	missed float64            // metastudio_discovery_missed_tasks
	paging map[string]float64 // metastudio_discovery_paging by mode; absent until a window needed two answers
}

// parseDiscoveryGauges reads the discovery gauges from a text exposition with Prometheus'
// parser, whatever labels a series carries besides mode (project). An exposition without
// metastudio_discovery_missed_tasks is an error: discovery is off, or the name changed,
// and a figure read as 0 would be a lie.
func parseDiscoveryGauges(body []byte) (discoveryGauges, error) {
	g := discoveryGauges{paging: map[string]float64{}}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return g, fmt.Errorf("parsing the exposition: %w", err)
	}
	missed := families["metastudio_discovery_missed_tasks"].GetMetric()
	if len(missed) == 0 {
		return g, errors.New("the exposition has no metastudio_discovery_missed_tasks series")
	}
	for _, m := range missed {
		g.missed += sampleValue(m)
	}
	for _, m := range families["metastudio_discovery_paging"].GetMetric() {
		mode := labelValue(m, "mode")
		if mode == "" {
			return g, errors.New("a metastudio_discovery_paging series without a mode label")
		}
		g.paging[mode] += sampleValue(m)
	}
	return g, nil
}

// sampleValue is the value of a gauge, counter or untyped series.
func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// labelValue is the value of a series' label name, "" when it has none.
func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// discoveryGaugesOf scrapes the exporter once, uncompressed, for its discovery gauges.
func discoveryGaugesOf(tb testing.TB, e *exporterProcess) discoveryGauges {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+"/metrics", nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := scraper.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("scraping for the discovery gauges: %d %v", resp.StatusCode, err)
	}
	g, err := parseDiscoveryGauges(body)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// report reports missed and, per mode, paging-<mode> (1 for the mode detected; all 0
// when one answer held every window).
func (g discoveryGauges) report(b *testing.B) {
	b.ReportMetric(g.missed, "missed")
	for _, mode := range []string{"rows", "pages", "none"} {
		b.ReportMetric(g.paging[mode], "paging-"+mode)
	}
}
