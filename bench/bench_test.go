//go:build linux

package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// simLatency is the simulator's delay before every answer.
const simLatency = 50 * time.Millisecond

// envMaxTasks, if set, skips the benchmarks of more tasks than that (make bench-quick).
const envMaxTasks = "METASTUDIO_BENCH_MAX_TASKS"

// taskCounts are the sizes every mode is measured at.
var taskCounts = []int{100, 1000, 10000}

// skipLarge skips a benchmark of n tasks above METASTUDIO_BENCH_MAX_TASKS.
func skipLarge(b *testing.B, n int) {
	if v := os.Getenv(envMaxTasks); v != "" {
		if limit, err := strconv.Atoi(v); err == nil && n > limit {
			b.Skipf("%d tasks: more than %s=%d", n, envMaxTasks, limit)
		}
	}
}

// Scrape modes.
const (
	modeCold = "cold" // cache off (finished_ttl 0): every scrape calls ShowTask for every task
	modeWarm = "warm" // every task finished and cached: after the first scrape, no call
	// modeDiscovery: no configured task; SearchTask lists them all, 1 in 100 in progress,
	// the simulator paging as it does by default (ignoring offset and limit: 10 rows an answer).
	modeDiscovery = "discovery"
	// modeDiscoveryRows is modeDiscovery with the simulator paging by rows (100 an answer).
	modeDiscoveryRows = "discovery-rows"
)

// BenchmarkScrape measures one scrape of the exporter binary, each iteration a GET
// /metrics, for every mode and size. Metrics: wall-ms (the median scrape), cpu-us/task
// (the exporter's CPU time during a scrape, exposition included, per exported task),
// ShowTask/scrape (calls the simulator received), RSS-MiB (the exporter's peak RSS since
// it started), first-ms (the first scrape after start: for warm, the one that fills the
// cache); cold adds ideal-ms (ceil(N/32) x 50 ms) and x-ideal; the discovery modes add
// SearchTask/refresh and refresh-ms (the listing pass at start, as the exporter logs it).
func BenchmarkScrape(b *testing.B) {
	for _, mode := range []string{modeCold, modeWarm, modeDiscovery, modeDiscoveryRows} {
		for _, n := range taskCounts {
			b.Run(fmt.Sprintf("%s/tasks=%d", mode, n), func(b *testing.B) { benchScrape(b, mode, n) })
		}
	}
}

func benchScrape(b *testing.B, mode string, n int, env ...string) {
	skipLarge(b, n)
	shape, cfg := shapeSeeded, exporterConfig{tasks: n}
	var simEnv []string
	discovery := mode == modeDiscovery || mode == modeDiscoveryRows
	switch {
	case mode == modeWarm:
		shape, cfg.finishedTTL = shapeFinished, time.Hour
	case discovery:
		shape, cfg = shapeDiscovery, exporterConfig{finishedTTL: time.Hour, discovery: true, debugLog: true}
		if mode == modeDiscoveryRows {
			simEnv = []string{envPaging + "=" + simulator.PagingRows}
		}
	}
	sim := startSim(b, n, shape, simEnv...)
	e := startExporter(b, sim.url, cfg, env...)
	var refresh time.Duration
	var listCalls int64
	if discovery {
		refresh = waitListed(b, e, n, 10*time.Minute).wall
		_, listCalls = sim.requests(b)
	}
	var bare *bareGETClient
	if mode == modeCold {
		bare = newBareGET(b, sim.url, min(n, 1000))
	}
	first := measure(b, e, sim, 1)
	expectTasks(b, first.scrapeResult, n)
	var samples []sample
	var bareCPU, xBare []float64
	for b.Loop() {
		s := measure(b, e, sim, 1)
		expectTasks(b, s.scrapeResult, n)
		samples = append(samples, s)
		if bare != nil {
			// The yardstick right after each scrape, so that each scrape has its own
			// ratio: this shared machine's speed drifts within seconds.
			b.StopTimer()
			cpu, _ := bare.round(b)
			b.StartTimer()
			bareCPU, xBare = append(bareCPU, cpu), append(xBare, us(s.cpu)/float64(n)/cpu)
		}
	}
	reportScrapes(b, samples, n)
	b.ReportMetric(loadAverage(), "load1")
	b.ReportMetric(ms(first.wall), "first-ms")
	b.ReportMetric(float64(e.peakRSS(b))/mib, "RSS-MiB")
	if mode == modeCold {
		ideal := time.Duration((n+benchConcurrency-1)/benchConcurrency) * simLatency
		b.ReportMetric(ms(ideal), "ideal-ms")
		b.ReportMetric(medianOf(samples, func(s sample) float64 { return float64(s.wall) / float64(ideal) }), "x-ideal")
	}
	// The yardsticks of this run, so that each run gives its own ratio: the bare GET after
	// each cold scrape (x-bare is the median of the scrapes' ratios), the plain registry
	// served by promhttp right after the warm scrapes.
	switch mode {
	case modeCold:
		b.ReportMetric(median(bareCPU), "bare-us/req")
		b.ReportMetric(median(xBare), "x-bare")
	case modeWarm:
		if len(env) == 0 {
			plainWall, _, _ := plainHTTPYardstick(b, n, yardstickRounds)
			b.ReportMetric(plainWall, "plain-ms")
			b.ReportMetric(medianOf(samples, func(s sample) float64 { return ms(s.wall) })/plainWall, "x-plain")
		}
	}
	if discovery {
		b.ReportMetric(ms(refresh), "refresh-ms")
		b.ReportMetric(float64(listCalls), "SearchTask/refresh")
		b.ReportMetric(medianOf(samples, func(s sample) float64 { return float64(s.search) }), "SearchTask/scrape")
	}
}

// reportScrapes reports the medians of the scrapes of one run.
func reportScrapes(b *testing.B, samples []sample, n int) {
	b.ReportMetric(medianOf(samples, func(s sample) float64 { return ms(s.wall) }), "wall-ms")
	b.ReportMetric(medianOf(samples, func(s sample) float64 { return us(s.cpu) / float64(n) }), "cpu-us/task")
	b.ReportMetric(medianOf(samples, func(s sample) float64 { return ms(s.cpu) }), "cpu-ms/scrape")
	b.ReportMetric(medianOf(samples, func(s sample) float64 { return float64(s.show) }), "ShowTask/scrape")
	b.ReportMetric(medianOf(samples, func(s sample) float64 { return float64(s.bytes) / mib }), "body-MiB")
}

// BenchmarkTwoScrapers sends two GET /metrics at the same moment to an exporter without
// cache, as an HA pair of Prometheus servers would: calls/task is the ShowTask calls
// the simulator received per task (1 when the two scrapes share every call).
func BenchmarkTwoScrapers(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			sim := startSim(b, n, shapeSeeded)
			e := startExporter(b, sim.url, exporterConfig{tasks: n})
			expectTasks(b, measure(b, e, sim, 1).scrapeResult, n) // the lone first call, connections
			var samples []sample
			for b.Loop() {
				s := measure(b, e, sim, 2)
				expectTasks(b, s.scrapeResult, n)
				samples = append(samples, s)
			}
			b.ReportMetric(medianOf(samples, func(s sample) float64 { return ms(s.wall) }), "wall-ms")
			b.ReportMetric(medianOf(samples, func(s sample) float64 { return float64(s.show) / float64(n) }), "calls/task")
			b.ReportMetric(medianOf(samples, func(s sample) float64 { return us(s.cpu) / float64(n) }), "cpu-us/task")
			b.ReportMetric(loadAverage(), "load1")
		})
	}
}

// yardstickRounds is how many times a warm run of BenchmarkScrape scrapes the plain registry.
const yardstickRounds = 3

// BenchmarkBareGET is the yardstick of the exporter's CPU per task: the client CPU time
// of a bare net/http GET of ShowTask from the same simulator (a keep-alive pool of 32,
// 32 at a time, the body read and dropped, no signing, no decoding), per request.
// BenchmarkScrape/cold measures it again after each of its scrapes (bare-us/req).
func BenchmarkBareGET(b *testing.B) {
	const n = 1000
	b.Run(fmt.Sprintf("requests=%d", n), func(b *testing.B) {
		sim := startSim(b, n, shapeSeeded)
		bare := newBareGET(b, sim.url, n)
		var walls, cpus []float64
		for b.Loop() {
			cpu, wall := bare.round(b)
			walls, cpus = append(walls, wall), append(cpus, cpu)
		}
		b.ReportMetric(median(walls), "wall-ms")
		b.ReportMetric(median(cpus), "cpu-us/req")
		b.ReportMetric(loadAverage(), "load1")
	})
}

// bareGETClient GETs ShowTask of the simulator's first n tasks, as the bare GET does.
type bareGETClient struct {
	client *http.Client
	urls   []string
}

// newBareGET returns a bare GET client whose connections are open (one round made).
func newBareGET(b *testing.B, simURL string, n int) *bareGETClient {
	b.Helper()
	c := &bareGETClient{client: &http.Client{Transport: &http.Transport{
		MaxIdleConns: benchConcurrency, MaxIdleConnsPerHost: benchConcurrency, IdleConnTimeout: time.Minute,
	}}}
	b.Cleanup(c.client.CloseIdleConnections)
	c.urls = make([]string, n)
	for i := range c.urls {
		c.urls[i] = simURL + "/v2/" + benchProject + "/ies/task/" + simulator.TaskID(i)
	}
	c.round(b)
	runtime.GC()
	return c
}

// round GETs every task, 32 at a time, and returns the client CPU per request (µs) and
// the wall time (ms).
func (c *bareGETClient) round(b *testing.B) (cpuPerReq, wallMS float64) {
	b.Helper()
	cpu0, start := selfCPU(), time.Now()
	var next sync.Mutex
	k := 0
	errs := make(chan error, benchConcurrency)
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Go(func() {
			for {
				next.Lock()
				i := k
				k++
				next.Unlock()
				if i >= len(c.urls) {
					return
				}
				if err := bareGET(c.client, c.urls[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return us(selfCPU()-cpu0) / float64(len(c.urls)), ms(time.Since(start))
}

func bareGET(client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", benchToken)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// BenchmarkPlainRegistry is the yardstick of a warm scrape: a plain client_golang
// registry exposing the same 9 series per task, precomputed once as const metrics, plus
// the Go and process collectors. gather: Gather and text encoding in this process (ns/op,
// wall-ms). http: the registry served by promhttp in a process of its own and scraped
// like the exporter (wall-ms, cpu-us/task, RSS-MiB).
func BenchmarkPlainRegistry(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("gather/tasks=%d", n), func(b *testing.B) {
			skipLarge(b, n)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
				newPlainCollector(n, beginOf(n, shapeFinished, 0, time.Now())))
			runtime.GC()
			var walls []float64
			var size int
			for b.Loop() {
				start := time.Now()
				mfs, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				w := &countingWriter{}
				for _, mf := range mfs {
					if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
						b.Fatal(err)
					}
				}
				walls = append(walls, ms(time.Since(start)))
				size = w.n
			}
			b.ReportMetric(median(walls), "wall-ms")
			b.ReportMetric(float64(size)/mib, "body-MiB")
			b.ReportMetric(loadAverage(), "load1")
		})
		b.Run(fmt.Sprintf("http/tasks=%d", n), func(b *testing.B) {
			skipLarge(b, n)
			plain := startChild(b, rolePlain, envTasks+"="+strconv.Itoa(n))
			expectTasks(b, get(b, plain.url+"/metrics"), n)
			var samples []sample
			for b.Loop() {
				samples = append(samples, scrapePlain(b, plain, n))
			}
			reportScrapes(b, samples, n)
			rss, err := peakRSS(plain.cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(rss)/mib, "RSS-MiB")
			b.ReportMetric(loadAverage(), "load1")
		})
	}
}

// scrapePlain scrapes the plain registry child once, as the exporter is scraped.
func scrapePlain(b *testing.B, plain *child, n int) sample {
	b.Helper()
	pid := plain.cmd.Process.Pid
	cpu0, err := processCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	r := get(b, plain.url+"/metrics")
	cpu1, err := processCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	expectTasks(b, r, n)
	return sample{scrapeResult: r, cpu: cpu1 - cpu0}
}

// plainHTTPYardstick starts the plain registry of n tasks in a process of its own (env
// added to its environment: the shape of the tasks' times), scrapes it once to warm it,
// then rounds times, and returns the median scrape wall (ms), its CPU per task (µs) and
// its peak RSS (MiB). The child stops on return.
func plainHTTPYardstick(b *testing.B, n, rounds int, env ...string) (wallMS, cpuPerTask, rssMiB float64) {
	b.Helper()
	plain := startChild(b, rolePlain, append([]string{envTasks + "=" + strconv.Itoa(n)}, env...)...)
	defer plain.stop()
	expectTasks(b, get(b, plain.url+"/metrics"), n)
	var samples []sample
	for range rounds {
		samples = append(samples, scrapePlain(b, plain, n))
	}
	rss, err := peakRSS(plain.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return medianOf(samples, func(s sample) float64 { return ms(s.wall) }),
		medianOf(samples, func(s sample) float64 { return us(s.cpu) / float64(n) }), float64(rss) / mib
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

// startSim starts a simulator child with n tasks of a shape, answering after simLatency,
// with env added to its environment (envPaging, envSpan).
func startSim(tb testing.TB, n int, shape string, env ...string) *child {
	tb.Helper()
	return startChild(tb, roleSim, append([]string{envTasks + "=" + strconv.Itoa(n), envShape + "=" + shape,
		envLatency + "=" + simLatency.String()}, env...)...)
}

// recommendedMemLimit is the GOMEMLIMIT that docs/benchmarks.md recommended for about
// 10,000 tasks before the exposition was pre-rendered (the peak RSS then stayed under 64
// MiB in every mode). It has not been measured since. METASTUDIO_BENCH_GOMEMLIMIT measures
// another.
const recommendedMemLimit = "48MiB"

func memLimit() string {
	if v := os.Getenv("METASTUDIO_BENCH_GOMEMLIMIT"); v != "" {
		return v
	}
	return recommendedMemLimit
}

// BenchmarkMemLimit is BenchmarkScrape at 10,000 tasks with the exporter under
// GOMEMLIMIT=recommendedMemLimit (the Go runtime's soft memory limit; see memLimit): its peak RSS
// (RSS-MiB) and what the extra garbage collection costs (cpu-us/task, wall-ms). The rows
// of BenchmarkScrape at 10,000 tasks are the same runs with the default GC.
func BenchmarkMemLimit(b *testing.B) {
	for _, mode := range []string{modeCold, modeWarm, modeDiscovery} {
		b.Run(fmt.Sprintf("%s/tasks=10000/gomemlimit=%s", mode, memLimit()), func(b *testing.B) {
			benchScrape(b, mode, 10000, "GOMEMLIMIT="+memLimit())
		})
	}
}
