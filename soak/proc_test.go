//go:build linux

package soak

import (
	"context"
	"fmt"
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
)

// buildBinaries builds the exporter and the simulator into dir, as `make build` does
// (static, -trimpath), so that the benchmark needs nothing built beforehand.
func buildBinaries(b *testing.B, dir string) (exporter, sim string) {
	b.Helper()
	exporter = filepath.Join(dir, "metastudio_exporter")
	sim = filepath.Join(dir, "metastudio-sim")
	for _, t := range []struct{ out, pkg string }{{exporter, "."}, {sim, "./cmd/metastudio-sim"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", t.out, t.pkg)
		cmd.Dir = ".." // the module root; go test runs in the package's directory
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", t.pkg, err, out)
		}
	}
	return exporter, sim
}

// proc is a child process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // of Wait, once done is closed
}

// startProc starts bin; it is stopped by stop, by the benchmark's cleanup whatever
// happens, and by the kernel (SIGKILL) if the benchmark process dies first.
func startProc(b *testing.B, dir, name, bin string, args, env []string) *proc {
	b.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		b.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	b.Cleanup(func() { p.stop() })
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 5 s, and waits for the process to end. It says how
// it ended: "exit 0 on SIGTERM" is the clean shutdown.
func (p *proc) stop() string {
	if p.exited() {
		return fmt.Sprintf("had already exited (%v)", p.err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err == nil {
			return "exit 0 on SIGTERM"
		}
		return fmt.Sprintf("%v on SIGTERM", p.err)
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return "killed: no exit within 5 s of SIGTERM"
	}
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	data, _ := os.ReadFile(p.log)
	s := string(data)
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// waitHTTP polls url until it answers 200, the process exits, or 30 s pass.
func waitHTTP(b *testing.B, p *proc, url string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			b.Fatalf("%s exited (%v) before serving %s:\n%s", p.name, p.err, url, p.tail())
		case <-ctx.Done():
			b.Fatalf("%s did not answer 200 on %s within 30 s (last error %v):\n%s", p.name, url, err, p.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitTCP polls addr until it accepts a connection, the process exits, or 30 s pass.
func waitTCP(b *testing.B, p *proc, addr string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p.exited() {
			b.Fatalf("%s exited (%v) before listening on %s:\n%s", p.name, p.err, addr, p.tail())
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s does not listen on %s after 30 s: %v", p.name, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// resources is one reading of the exporter's /proc entries.
type resources struct {
	rss, threads float64
	fds          int
}

func readResources(pid int) (resources, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return resources{}, err
	}
	st, err := procStatus(string(data), "VmRSS", "Threads")
	if err != nil {
		return resources{}, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return resources{}, err
	}
	return resources{rss: st["VmRSS"], threads: st["Threads"], fds: len(fds)}, nil
}

// logSummary counts the exporter's log lines by level (logfmt level=...), the lines that
// mention a panic, and the warnings and errors by message and error_code (or err).
type logSummary struct {
	levels map[string]int
	panics int
	warns  map[string]int // "level  msg (error_code)", warn and error lines
}

func summarizeLog(path string) (logSummary, error) {
	s := logSummary{levels: map[string]int{}, warns: map[string]int{}}
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		lvl := logValue(line, "level")
		if lvl == "" {
			lvl = "other"
		}
		s.levels[lvl]++
		if strings.Contains(line, "panic") {
			s.panics++
		}
		if lvl == "warn" || lvl == "error" {
			key := lvl + "  " + logValue(line, "msg")
			if code := logValue(line, "error_code"); code != "" {
				key += " (" + code + ")"
			} else if err := logValue(line, "err"); err != "" {
				key += " (err=" + err[:min(len(err), 60)] + ")"
			}
			s.warns[key]++
		}
	}
	return s, nil
}

// logValue is the value of key in a logfmt line (quoted or not), or "".
func logValue(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		if !strings.HasPrefix(line, key+"=") {
			return ""
		}
		i = -1
	}
	rest := line[i+len(key)+2:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			u, _ := strconv.Unquote(v)
			return u
		}
		return ""
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// loadAverage is the machine's one-minute load average, to say how busy it was.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
