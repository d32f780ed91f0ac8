//go:build linux

package load

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The helpers of this file are copied from soak/proc_test.go (test packages cannot import
// each other), with testing.TB for *testing.B.

// buildBinaries builds the exporter and the simulator into dir, as `make build` does
// (static, -trimpath), so that the benchmark needs nothing built beforehand.
func buildBinaries(b testing.TB, dir string) (exporter, sim string) {
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
func startProc(b testing.TB, dir, name, bin string, args, env []string) *proc {
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
func waitHTTP(b testing.TB, p *proc, url string) {
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
func waitTCP(b testing.TB, p *proc, addr string) {
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
