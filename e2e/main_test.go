// Package e2e checks what Prometheus and Grafana users get: the alert rules and their unit
// tests (promtool), the dashboard's structure, the systemd unit's flags, and, with a real
// Prometheus, the whole chain: simulator -> exporter binary -> Prometheus -> rules and
// dashboard queries. Tests that need promtool or prometheus skip when it is not installed
// (.ci/run installs Debian's prometheus package, so CI always runs them).
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
)

// root is the repository root, relative to this package's directory (go test's working
// directory).
const root = ".."

// File paths, relative to this package's directory.
var (
	alertsFile     = filepath.Join(root, "examples", "alerts.yml")
	alertingDoc    = filepath.Join(root, "docs", "alerting.md")
	alertsTestFile = filepath.Join(root, "examples", "alerts_test.yml")
	prometheusFile = filepath.Join(root, "examples", "prometheus.yml")
	dashboardFile  = filepath.Join(root, "examples", "grafana", "metastudio-dashboard.json")
	unitFile       = filepath.Join(root, "examples", "systemd", "metastudio_exporter.service")
)

var (
	binDir      string // temporary directory of the built exporter
	buildOnce   sync.Once
	builtBinary string
	buildErr    error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "metastudio-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exporterBinary builds the exporter from the repository root once per test binary, into a
// temporary directory, and returns its path.
func exporterBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// go test puts its own GOROOT/bin first in PATH.
		goCmd, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		builtBinary = filepath.Join(binDir, "metastudio_exporter")
		cmd := exec.Command(goCmd, "build", "-o", builtBinary, ".")
		cmd.Dir = root
		cmd.Env = staticEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBinary
}

// staticEnv is the environment of every go command the tests run: static and -trimpath,
// as the Makefile builds everything without the race detector, so that the compile of the
// standard library and the dependencies is shared with go vet and the release build.
func staticEnv() []string {
	flags := os.Getenv("GOFLAGS")
	if !slices.Contains(strings.Fields(flags), "-trimpath") {
		flags = strings.TrimSpace(flags + " -trimpath")
	}
	return append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS="+flags)
}

// need is testkit.Need: the path of a command the test cannot run without.
func need(t *testing.T, name string) string { return testkit.Need(t, name) }

// process is a command started by a test, stopped by the test's cleanup.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string        // file with its stdout and stderr
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done
}

// start runs a command whose output goes to a log file in dir. The test's cleanup stops
// it (SIGTERM, then SIGKILL after 5 s) and, when the test failed, logs its output's tail.
// ctx bounds its life too.
func start(t *testing.T, ctx context.Context, dir, name string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(name)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: filepath.Base(name), cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("--- %s output (last lines) ---\n%s", p.name, p.tail(40))
		}
	})
	return p
}

// tail returns the last n lines of the process' output.
func (p *process) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exited reports whether the process has ended, with its exit status.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// waitHTTP polls url until it answers 200, the process exits, or ctx ends.
func waitHTTP(ctx context.Context, p *process, url string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if done, werr := p.exited(); done {
			return fmt.Errorf("%s exited (%v) before %s answered 200:\n%s", p.name, werr, url, p.tail(20))
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%s: %s did not answer 200 in time (last error: %v):\n%s", p.name, url, err, p.tail(20))
		}
	}
}

// pause waits d, or returns ctx's error when it ends first.
func pause(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// poll calls check every interval until it returns nil or ctx ends; then it returns
// check's last error.
func poll(ctx context.Context, interval time.Duration, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		if perr := pause(ctx, interval); perr != nil {
			return errors.Join(perr, err)
		}
	}
}

// run runs a command to its end and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
