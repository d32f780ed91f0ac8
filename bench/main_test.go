//go:build linux

package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// The test binary doubles as the helper processes: with METASTUDIO_BENCH_ROLE set, TestMain
// serves instead of testing. A child serves on 127.0.0.1, prints its URL on the first line
// of stdout, and exits when its stdin closes (so it never outlives the benchmark).
const (
	envRole    = "METASTUDIO_BENCH_ROLE"
	envTasks   = "METASTUDIO_BENCH_TASKS"
	envShape   = "METASTUDIO_BENCH_SHAPE"
	envLatency = "METASTUDIO_BENCH_LATENCY"
	envPaging  = "METASTUDIO_BENCH_PAGING" // the simulator's SearchPaging; unset: its default
	envSpan    = "METASTUDIO_BENCH_SPAN"   // the span of shapeSpread
	// envProjects spreads the tasks over that many projects (BenchmarkProjects); unset: one.
	envProjects = "METASTUDIO_BENCH_PROJECTS"

	roleSim   = "sim"   // the MetaStudio simulator, with a request counter at countsPath
	rolePlain = "plain" // a plain client_golang registry of precomputed series at /metrics

	countsPath = "/_bench/requests"
)

// Credentials and project of the simulator. The exporter signs with the AK/SK; the bare
// GET sends the token, so that it does nothing but the round trip.
const (
	benchAK      = "BENCHAKBENCHAKBENCH0"
	benchSK      = "bench-secret-key-not-a-secret"
	benchToken   = "bench-token-not-a-secret"
	benchProject = "0123456789abcdef0123456789abcdef"
)

func TestMain(m *testing.M) {
	switch role := os.Getenv(envRole); role {
	case "":
		os.Exit(m.Run())
	case roleSim, rolePlain:
		if err := serveChild(role); err != nil {
			fmt.Fprintf(os.Stderr, "bench %s child: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown %s %q\n", envRole, role)
		os.Exit(2)
	}
}

// serveChild runs a helper process until its stdin closes.
func serveChild(role string) error {
	n, err := strconv.Atoi(os.Getenv(envTasks))
	if err != nil || n < 0 {
		return fmt.Errorf("%s: want a task count, got %q", envTasks, os.Getenv(envTasks))
	}
	shape := os.Getenv(envShape)
	var span time.Duration
	if shape == shapeSpread {
		if span, err = time.ParseDuration(os.Getenv(envSpan)); err != nil || span <= 0 {
			return fmt.Errorf("%s: want a positive duration, got %q", envSpan, os.Getenv(envSpan))
		}
	}
	projects := 1
	if v := os.Getenv(envProjects); v != "" {
		if projects, err = strconv.Atoi(v); err != nil || projects < 1 || n%projects != 0 ||
			(projects > 1 && shape != shapeSeeded && shape != shapeFinished) {
			return fmt.Errorf("%s=%q: want a count of projects that divides %d tasks of the seeded or finished shape", envProjects, v, n)
		}
	}
	var h http.Handler
	switch role {
	case roleSim:
		latency, err := time.ParseDuration(os.Getenv(envLatency))
		if err != nil {
			return fmt.Errorf("%s: %w", envLatency, err)
		}
		h = newSim(simShape{n: n, shape: shape, span: span, paging: os.Getenv(envPaging), projects: projects}, latency, time.Now())
	case rolePlain:
		now := time.Now()
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			newPlainCollector(n, beginOf(n, shape, span, now)))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		h = mux
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or dies
	return srv.Close()
}

// simShape is what a simulator child serves: n tasks of a shape (span: shapeSpread's),
// listed as paging says (empty: the simulator's default); with projects > 1 (seeded and
// finished shapes only), spread evenly over that many projects besides the default one,
// which then has none (simProjects).
type simShape struct {
	n        int
	shape    string
	span     time.Duration
	paging   string
	projects int
}

// newSim is the simulator of a child, counting ShowTask and SearchTask calls at countsPath.
func newSim(s simShape, latency time.Duration, now time.Time) http.Handler {
	opts := simulator.Options{
		Credentials:  map[string]string{benchAK: benchSK},
		Tokens:       []string{benchToken},
		ProjectID:    benchProject,
		Latency:      latency,
		FieldStyle:   simulator.StyleMixed,
		SearchPaging: s.paging,
	}
	if s.projects > 1 {
		opts.MoreProjects = simProjects(s.n, s.projects, s.shape == shapeSeeded)
	} else if s.shape == shapeSeeded {
		opts.Tasks = s.n
	}
	sim := simulator.New(opts)
	switch {
	case s.projects > 1:
		if s.shape == shapeFinished {
			setProjectTasks(sim, s.n, s.projects, now)
		}
	case s.shape == shapeSeeded:
	case s.shape == shapeSpread:
		for i := range s.n {
			sim.SetTask(simulator.TaskID(i), taskFieldsAt(i, spreadBegin(i, s.n, s.span, now), false))
		}
	default:
		for i := range s.n {
			sim.SetTask(simulator.TaskID(i), taskFields(i, now, s.shape == shapeDiscovery && inProgress(i)))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == countsPath {
			fmt.Fprintf(w, "%d %d\n", sim.Requests(simulator.OpShowTask), sim.Requests(simulator.OpSearchTask))
			return
		}
		sim.ServeHTTP(w, r)
	})
}

// child is a helper process started by a benchmark.
type child struct {
	url   string
	cmd   *exec.Cmd
	stdin io.Closer
	done  chan struct{}
}

// startChild starts the test binary again in role; the benchmark's cleanup stops it.
func startChild(tb testing.TB, role string, env ...string) *child {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(cleanEnv(), envRole+"="+role)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logFile, err := os.Create(filepath.Join(tb.TempDir(), role+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	tb.Cleanup(func() {
		c.stop()
		logFile.Close()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(c.done)
	}()
	select {
	case c.url = <-line:
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s child did not start in 30s", role)
	}
	if !strings.HasPrefix(c.url, "http://127.0.0.1:") {
		data, _ := os.ReadFile(logFile.Name())
		tb.Fatalf("%s child did not start: %q\n%s", role, c.url, data)
	}
	return c
}

// stop closes the child's stdin, which ends it, and kills it if it lingers.
func (c *child) stop() {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// requests returns how many ShowTask and SearchTask calls the simulator child received.
func (c *child) requests(tb testing.TB) (show, search int64) {
	tb.Helper()
	resp, err := http.Get(c.url + countsPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := fmt.Fscan(resp.Body, &show, &search); err != nil {
		tb.Fatal(err)
	}
	return show, search
}

// cleanEnv is the environment without what would change how a child behaves: its own
// role, credentials the exporter would pick up, and Go's GC settings (set explicitly
// where wanted).
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "METASTUDIO_BENCH_"), strings.HasPrefix(name, "CLOUD_SDK_"),
			strings.HasPrefix(name, "HUAWEICLOUD_SDK_"), name == "GOGC", name == "GOMEMLIMIT",
			name == "GODEBUG", name == "GOMAXPROCS":
			continue
		}
		out = append(out, kv)
	}
	return out
}
