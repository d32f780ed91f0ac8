//go:build linux

package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// envExporter names a built exporter binary to measure (`make bench` passes the one
// `make build` made); without it the benchmarks build one from the repository root.
const envExporter = "METASTUDIO_EXPORTER_BIN"

var (
	buildOnce  sync.Once
	builtPath  string
	buildError error
)

// exporterBinary returns the exporter binary to run.
func exporterBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(envExporter); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			tb.Fatal(err)
		}
		return abs
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "metastudio-bench-")
		if err != nil {
			buildError = err
			return
		}
		builtPath = filepath.Join(dir, "metastudio_exporter")
		cmd := exec.Command("go", "build", "-trimpath", "-o", builtPath, ".")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildError != nil {
		tb.Fatal(buildError)
	}
	return builtPath
}

// exporterConfig is what a benchmark varies in the exporter's config. Every run has
// concurrency 32 and no rate limit.
type exporterConfig struct {
	tasks       int           // configured task ids: simulator.TaskID(0 .. tasks-1)
	finishedTTL time.Duration // cache.finished_ttl; 0 turns the cache off
	discovery   bool          // discovery on, refreshed at start only (within the benchmark)
	lookback    time.Duration // discovery.lookback; 0: 24h
	maxTasks    int           // discovery.max_tasks; 0: 100000
	// debugLog runs the exporter with --log.level=debug (else warn): discovery logs each
	// listing pass, which waitListed reads.
	debugLog bool
	// projects > 1 spreads the tasks evenly over that many projects of a projects list,
	// each with its own id and AK/SK (simProjects); discovery is then not supported.
	projects int
}

const (
	benchConcurrency = 32
	benchTimeout     = 100 * time.Second // scrape.timeout: a cold 10,000 takes ~16 s
)

func (c exporterConfig) yaml(endpoint string) string {
	var b strings.Builder
	if c.projects <= 1 {
		fmt.Fprintf(&b, "region: cn-north-4\nproject_id: %s\nendpoint: %s\n", benchProject, endpoint)
	}
	fmt.Fprintf(&b, "scrape:\n  timeout: %s\n  concurrency: %d\n  max_requests_per_second: 0\n", benchTimeout, benchConcurrency)
	fmt.Fprintf(&b, "cache:\n  finished_ttl: %s\n", c.finishedTTL)
	if c.discovery {
		lookback, maxTasks := c.lookback, c.maxTasks
		if lookback == 0 {
			lookback = 24 * time.Hour
		}
		if maxTasks == 0 {
			maxTasks = 100000
		}
		fmt.Fprintf(&b, "discovery:\n  enabled: true\n  lookback: %s\n  refresh_interval: 1h\n  max_tasks: %d\n", lookback, maxTasks)
	}
	if c.projects > 1 {
		// Inline keys: the exporter warns once per project, at warn level, and never
		// logs the SK.
		b.WriteString("projects:\n")
		per := projectTasks(c.tasks, c.projects)
		for k := 1; k <= c.projects; k++ {
			fmt.Fprintf(&b, "  - name: %s\n    region: cn-north-4\n    project_id: %s\n    endpoint: %s\n",
				benchProjectName(k), benchProjectID(k), endpoint)
			fmt.Fprintf(&b, "    credentials:\n      access_key: %s\n      secret_key: %s\n    tasks:\n",
				benchProjectAK(k), benchProjectSK(k))
			for j := range per {
				fmt.Fprintf(&b, "      - %s\n", simulator.ProjectTaskID(k, j))
			}
		}
		return b.String()
	}
	if c.tasks > 0 {
		b.WriteString("tasks:\n")
		for i := range c.tasks {
			fmt.Fprintf(&b, "  - %s\n", simulator.TaskID(i))
		}
	}
	return b.String()
}

// exporterProcess is the exporter binary, running.
type exporterProcess struct {
	url     string
	pid     int
	started time.Time
	log     string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startExporter runs the exporter against the simulator at simURL, with env added to a
// clean environment (GOMEMLIMIT, for one), and waits until it is ready. The benchmark's
// cleanup stops it.
func startExporter(tb testing.TB, simURL string, cfg exporterConfig, env ...string) *exporterProcess {
	tb.Helper()
	bin := exporterBinary(tb)
	dir := tb.TempDir()
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.yaml(simURL)), 0o600); err != nil {
		tb.Fatal(err)
	}
	addr := testkit.FreeAddr(tb)
	e := &exporterProcess{url: "http://" + addr, log: filepath.Join(dir, "exporter.log"), done: make(chan struct{})}
	logFile, err := os.Create(e.log)
	if err != nil {
		tb.Fatal(err)
	}
	logLevel := "warn"
	if cfg.debugLog {
		logLevel = "debug"
	}
	e.cmd = exec.Command(bin, "--config.file="+cfgPath, "--web.listen-address="+addr, "--log.level="+logLevel)
	e.cmd.Env = append(cleanEnv(), "CLOUD_SDK_AK="+benchAK, "CLOUD_SDK_SK="+benchSK)
	e.cmd.Env = append(e.cmd.Env, env...)
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e.started = time.Now()
	if err := e.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	e.pid = e.cmd.Process.Pid
	go func() {
		_ = e.cmd.Wait()
		close(e.done)
	}()
	tb.Cleanup(func() {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(5 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.done
		}
		logFile.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-e.done:
			tb.Fatalf("the exporter exited at start:\n%s", e.logTail())
		default:
		}
		resp, err := http.Get(e.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the exporter was not ready in 30s:\n%s", e.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *exporterProcess) logTail() string {
	data, _ := os.ReadFile(e.log)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

func (e *exporterProcess) cpu(tb testing.TB) time.Duration {
	tb.Helper()
	d, err := processCPU(e.pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func (e *exporterProcess) peakRSS(tb testing.TB) int64 {
	tb.Helper()
	n, err := peakRSS(e.pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// scraper is the client that scrapes, as Prometheus does: one GET, gzip accepted, the
// whole body read.
var scraper = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: benchTimeout + 20*time.Second}

// scrapeResult is one GET /metrics.
type scrapeResult struct {
	wall  time.Duration // from sending the request to the last byte of the body
	bytes int           // of the body, uncompressed
	tasks int           // metastudio_task_scrape_success series
	ok    int           // ... with value 1
}

// get scrapes url once.
func get(tb testing.TB, url string) scrapeResult {
	tb.Helper()
	r, err := tryGet(url)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func tryGet(url string) (scrapeResult, error) {
	start := time.Now()
	resp, err := scraper.Get(url)
	if err != nil {
		return scrapeResult{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := scrapeResult{wall: time.Since(start), bytes: len(body)}
	if err != nil {
		return r, err
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET %s: %s\n%.2000s", url, resp.Status, body)
	}
	r.tasks, r.ok = countTasks(body)
	return r, nil
}

// countTasks counts the scrape_success series of an exposition, and those that are 1.
func countTasks(body []byte) (tasks, ok int) {
	prefix := []byte("metastudio_task_scrape_success{")
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if bytes.HasPrefix(line, prefix) {
			tasks++
			if bytes.HasSuffix(line, []byte("} 1")) {
				ok++
			}
		}
	}
	return tasks, ok
}

// sample is one scrape of the exporter, with what it cost.
type sample struct {
	scrapeResult
	cpu          time.Duration // the exporter's CPU time during the scrape
	show, search int64         // API calls the simulator received during the scrape
}

// measure scrapes the exporter once (or, with scrapers > 1, that many times at the same
// moment) and reads the exporter's CPU time and the simulator's counters around it.
func measure(tb testing.TB, e *exporterProcess, sim *child, scrapers int) sample {
	tb.Helper()
	show0, search0 := sim.requests(tb)
	cpu0 := e.cpu(tb)
	results := make([]scrapeResult, scrapers)
	errs := make([]error, scrapers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range results {
		wg.Go(func() {
			<-start
			results[i], errs[i] = tryGet(e.url + "/metrics")
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	cpu1 := e.cpu(tb)
	show1, search1 := sim.requests(tb)
	s := sample{scrapeResult: results[0], cpu: cpu1 - cpu0, show: show1 - show0, search: search1 - search0}
	for _, r := range results[1:] {
		s.wall = max(s.wall, r.wall)
	}
	return s
}

// expectTasks fails the benchmark unless a scrape reported every task as scraped.
func expectTasks(tb testing.TB, r scrapeResult, n int) {
	tb.Helper()
	if r.tasks != n || r.ok != n {
		tb.Fatalf("scrape reported %d tasks, %d of them scraped; want %d", r.tasks, r.ok, n)
	}
}

// median of some values; 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianOf is the median of f over the samples.
func medianOf[T any](samples []T, f func(T) float64) float64 {
	v := make([]float64, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	return median(v)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

const mib = 1 << 20
