//go:build linux

package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// BenchmarkInProcess is BenchmarkScrape with the exporter built in this process from its
// packages, wired as the binary wires them, so that `go test -cpuprofile` (and -memprofile)
// can see where a scrape spends its time:
//
//	go test -run '^$' -bench 'InProcess/cold' -benchtime 5x -cpuprofile cpu.out ./bench/
//	go tool pprof -top -nodecount 40 bench.test cpu.out
//
// Each iteration serves GET /metrics (gzip accepted) to a writer that drops the body:
// the exposition is included, the scraper's side is not. cpu-us/task is this process's
// CPU time (getrusage) per task; the simulator runs in a child process. live-B/task is
// the heap that stays alive after the scrapes (after a full GC), per task: what the
// exporter keeps. With BENCH_HEAPPROFILE=<file>, a heap profile is written at that point
// (-memprofile comes too late: the exporter is gone by then):
//
//	BENCH_HEAPPROFILE=heap.out go test -run '^$' -bench 'InProcess/cold/tasks=10000' \
//	  -benchtime 2x -memprofilerate 64 -o bench.test ./bench/
//	go tool pprof -sample_index=inuse_space -top bench.test heap.out
func BenchmarkInProcess(b *testing.B) {
	for _, mode := range []string{modeCold, modeWarm} {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/tasks=%d", mode, n), func(b *testing.B) {
				skipLarge(b, n)
				shape, cfg := shapeSeeded, exporterConfig{tasks: n}
				if mode == modeWarm {
					shape, cfg.finishedTTL = shapeFinished, time.Hour
				}
				sim := startSim(b, n, shape)
				base := liveHeap()
				h := newInProcessExporter(b, cfg.yaml(sim.url))
				serve := func() (time.Duration, time.Duration) {
					req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
					req.Header.Set("Accept-Encoding", "gzip")
					w := &discardResponse{header: http.Header{}}
					cpu0, start := selfCPU(), time.Now()
					h.ServeHTTP(w, req)
					wall, cpu := time.Since(start), selfCPU()-cpu0
					if w.status != 0 && w.status != http.StatusOK {
						b.Fatalf("GET /metrics: %d", w.status)
					}
					return wall, cpu
				}
				serve() // the first scrape: the lone first call; for warm, the cache fill
				runtime.GC()
				var walls, cpus []float64
				for b.Loop() {
					wall, cpu := serve()
					walls = append(walls, ms(wall))
					cpus = append(cpus, us(cpu)/float64(n))
				}
				b.ReportMetric(median(walls), "wall-ms")
				b.ReportMetric(median(cpus), "cpu-us/task")
				b.ReportMetric(float64(liveHeap()-base)/float64(n), "live-B/task")
				if path := os.Getenv("BENCH_HEAPPROFILE"); path != "" {
					writeHeapProfile(b, path)
				}
				runtime.KeepAlive(h)
			})
		}
	}
}

// newInProcessExporter builds the exporter's /metrics handler from config text, the way
// the binary builds it: the API metrics and the Go and process collectors in a global
// registry, the AK guard, the rate, the refresher and a collector (no discovery, no
// reload, no sharding). Keep it in step with the exporter's wiring.
func newInProcessExporter(tb testing.TB, cfgText string) http.Handler {
	tb.Helper()
	getenv := func(name string) string {
		return map[string]string{"CLOUD_SDK_AK": benchAK, "CLOUD_SDK_SK": benchSK}[name]
	}
	cfg, _, err := config.Parse([]byte(cfgText), getenv)
	if err != nil {
		tb.Fatal(err)
	}
	logger := log.NewNopLogger()
	global := collector.NewSet()
	global.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	apiMetrics := collector.NewAPIMetrics(global, logger)
	credentials := auth.New(cfg.Credentials, auth.Options{
		Now: time.Now, IAMEndpoint: cfg.IAMEndpointURL(), Region: cfg.Region, ProjectID: cfg.ProjectID, Observer: apiMetrics,
	})
	api, err := metastudio.NewClient(metastudio.Options{
		Endpoint: cfg.MetaStudioEndpoint(), ProjectID: cfg.ProjectID, Auth: credentials, MaxConns: cfg.Scrape.Concurrency,
		Observer: apiMetrics, UserAgent: "metastudio_exporter/bench", Now: time.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(api.CloseIdleConnections)
	guard := refresh.NewGuard(cfg.Credentials.FailureBackoff, credentials, time.Now, logger)
	rate := refresh.NewRate(cfg.Scrape.MaxRequestsPerSecond, cfg.Scrape.MinRequestsPerSecond, cfg.Scrape.Concurrency, time.Now)
	refresher := refresh.NewRefresher(time.Now, logger)
	refresher.SetProject(collector.DefaultProject, collector.NewAPI(api), guard, rate)
	refresher.Configure(cfg.Scrape.Concurrency, cfg.Scrape.Timeout)
	ctx, cancel := context.WithCancel(context.Background())
	refresher.Start(ctx)
	tb.Cleanup(func() {
		cancel()
		refresher.Wait()
	})
	global.MustRegister(guard, rate)
	c := collector.New(cfg, []collector.Project{{Project: &cfg.Projects[0]}}, refresher, collector.Shard{}, logger)
	return collector.Handler(func() *collector.Collector { return c }, global, logger)
}

// discardResponse is an http.ResponseWriter that drops the body.
type discardResponse struct {
	header http.Header
	status int
	n      int
}

func (w *discardResponse) Header() http.Header { return w.header }
func (w *discardResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *discardResponse) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

// liveHeap is the heap in use after a full collection: what stays alive.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// writeHeapProfile writes the heap profile as of the last GC to path.
func writeHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatal(err)
	}
}
