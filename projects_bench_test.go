//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// BenchmarkWarmScrapeProjects serves /metrics of the whole exporter (as newExporter wires
// it: every project's API, guard, rate, clock and discovery metrics included) for 10,000
// finished, cached tasks spread over 10 projects (each with its own AK/SK) and, in turn,
// for 10,000 in one project. It is the in-process half of make bench's several-projects
// target (warm CPU per task within 10 % of one project): x-cpu is the median over the
// pairs of scrapes of the ratio of this process's CPU time (10 projects / 1), x-wall the
// same of the wall time; ns/op is a pair. Profile one side with BENCH_PROJECTS=1 or 10:
//
//	BENCH_PROJECTS=10 go test -run '^$' -bench WarmScrapeProjects -cpuprofile cpu.out .
func BenchmarkWarmScrapeProjects(b *testing.B) {
	const n = 10000
	var one, ten http.Handler
	switch os.Getenv("BENCH_PROJECTS") {
	case "1":
		one = warmProjectsExporter(b, n, 1)
	case "10":
		ten = warmProjectsExporter(b, n, 10)
	default:
		one, ten = warmProjectsExporter(b, n, 1), warmProjectsExporter(b, n, 10)
	}
	scrape := func(h http.Handler) (cpu, wall time.Duration) {
		if h == nil {
			return 1, 1
		}
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		cpu0, start := processCPU(b), time.Now()
		h.ServeHTTP(w, req)
		wall, cpu = time.Since(start), processCPU(b)-cpu0
		if w.Code != http.StatusOK {
			b.Fatalf("GET /metrics: %d", w.Code)
		}
		return cpu, wall
	}
	var xCPU, xWall []float64
	for k := 0; b.Loop(); k++ {
		var c1, w1, c10, w10 time.Duration
		if k%2 == 0 {
			c1, w1 = scrape(one)
			c10, w10 = scrape(ten)
		} else {
			c10, w10 = scrape(ten)
			c1, w1 = scrape(one)
		}
		xCPU = append(xCPU, float64(c10)/float64(c1))
		xWall = append(xWall, float64(w10)/float64(w1))
	}
	if one != nil && ten != nil {
		b.ReportMetric(medianOf(xCPU), "x-cpu")
		b.ReportMetric(medianOf(xWall), "x-wall")
	}
}

// processCPU is the CPU time this process has used (user and system).
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// medianOf is the median of v (which it sorts).
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return (v[(len(v)-1)/2] + v[len(v)/2]) / 2
}

// warmProjectsExporter is an exporter of n finished tasks spread over p projects of one
// simulator (each project its own AK/SK), scraped until every task is cached.
func warmProjectsExporter(b *testing.B, n, p int) http.Handler {
	b.Helper()
	projectName := func(k int) string { return fmt.Sprintf("proj-%02d", k) }
	projectID := func(k int) string { return fmt.Sprintf("%032x", 0xbe0c00+k) }
	ak := func(k int) string { return fmt.Sprintf("BENCHAKPROJECT%06d", k) }
	sk := func(k int) string { return fmt.Sprintf("bench-secret-key-project-%02d", k) }
	more := make([]simulator.Project, p-1)
	for k := 1; k < p; k++ {
		more[k-1] = simulator.Project{Name: projectName(k), ID: projectID(k), Credentials: map[string]string{ak(k): sk(k)}}
	}
	sim := simulator.New(simulator.Options{Credentials: map[string]string{ak(0): sk(0)}, ProjectID: projectID(0),
		FieldStyle: "number", MoreProjects: more})
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)

	var text strings.Builder
	text.WriteString("scrape: {timeout: 100s, concurrency: 32, max_requests_per_second: 0}\ncache: {finished_ttl: 1h}\nprojects:\n")
	began := time.Now().Add(-time.Hour).UnixMilli()
	for k := range p {
		fmt.Fprintf(&text, "  - name: %s\n    region: cn-north-4\n    project_id: %s\n    endpoint: %s\n    iam_endpoint: %s\n"+
			"    credentials: {access_key: %s, secret_key: %s}\n    tasks:\n", projectName(k), projectID(k), srv.URL, srv.URL, ak(k), sk(k))
		for j := range n / p {
			id := fmt.Sprintf("task-%02d-%05d", k, j)
			fmt.Fprintf(&text, "      - %s\n", id)
			fields := map[string]any{"task_id": id, "resource": "qa", "task_name": "import " + id, "task_type": 0,
				"operator": "bench", "begin_time": began, "end_time": began + 600000, "total_count": 200 + j%4801,
				"success_count": 200 + j%4801 - j%50, "failure_count": j % 50, "task_status": simulator.StatusFinished}
			name := simulator.DefaultProject
			if k > 0 {
				name = projectName(k)
			}
			sim.SetProjectTask(name, id, fields)
		}
	}
	cfg, _, err := config.Parse([]byte(text.String()), noEnv)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	h, err := newHandler(ctx, cfg, "/metrics", log.NewNopLogger(), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	ok := []byte("metastudio_task_scrape_success{")
	for deadline := time.Now().Add(2 * time.Minute); ; {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		good := 0
		for line := range bytes.Lines(w.Body.Bytes()) {
			if bytes.HasPrefix(line, ok) && bytes.HasSuffix(bytes.TrimSpace(line), []byte(" 1")) {
				good++
			}
		}
		if good == n {
			return h
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d tasks scraped after 2 minutes", good, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
