package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// BuildBinaries builds the exporter and the simulator into dir, as `make build` does
// (static, -trimpath), from the module at root (a path relative to the test's package), so
// that a benchmark that runs them needs nothing built beforehand.
func BuildBinaries(tb testing.TB, root, dir string) (exporter, sim string) {
	tb.Helper()
	exporter = filepath.Join(dir, "metastudio_exporter")
	sim = filepath.Join(dir, "metastudio-sim")
	for _, t := range []struct{ out, pkg string }{{exporter, "."}, {sim, "./cmd/metastudio-sim"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", t.out, t.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("go build %s: %v\n%s", t.pkg, err, out)
		}
	}
	return exporter, sim
}

// Proc is a child process whose output goes to a log file.
type Proc struct {
	Name string
	Log  string // the log file's path
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed
}

// StartProc starts bin in dir; it is stopped by Stop, by the test's cleanup whatever
// happens, and by the kernel (SIGKILL) if the test process dies first.
func StartProc(tb testing.TB, dir, name, bin string, args, env []string) *Proc {
	tb.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	tb.Cleanup(func() { p.Stop() })
	return p
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL after 5 s, and waits for the process to end. It says how
// it ended: "exit 0 on SIGTERM" is the clean shutdown.
func (p *Proc) Stop() string {
	if p.Exited() {
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

// Tail is the end of the process's log, for error messages.
func (p *Proc) Tail() string {
	data, _ := os.ReadFile(p.Log)
	s := string(data)
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// WaitHTTP polls url until it answers 200, the process exits, or 30 s pass.
func WaitHTTP(tb testing.TB, p *Proc, url string) {
	tb.Helper()
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
			tb.Fatalf("%s exited (%v) before serving %s:\n%s", p.Name, p.err, url, p.Tail())
		case <-ctx.Done():
			tb.Fatalf("%s did not answer 200 on %s within 30 s (last error %v):\n%s", p.Name, url, err, p.Tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitTCP polls addr until it accepts a connection, the process exits, or 30 s pass.
func WaitTCP(tb testing.TB, p *Proc, addr string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p.Exited() {
			tb.Fatalf("%s exited (%v) before listening on %s:\n%s", p.Name, p.err, addr, p.Tail())
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s does not listen on %s after 30 s: %v", p.Name, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stack is the simulator and the exporter running as processes of their own on loopback,
// as the load and the soak drive them.
type Stack struct {
	Sim, Exporter         *Proc
	SimAddr, ExporterAddr string // host:port
}

// StartStack builds both binaries from the module at root into dir and starts the
// simulator with simArgs (its listen address is added) and a random SK in its environment.
// It writes that SK to a file and starts the exporter with the config that
// config(simAddr, skFile) returns, and returns once the exporter is ready.
func StartStack(tb testing.TB, root, dir string, simArgs []string, config func(simAddr, skFile string) string) *Stack {
	tb.Helper()
	exporterBin, simBin := BuildBinaries(tb, root, dir)
	key := make([]byte, 20)
	_, _ = rand.Read(key)
	sk := hex.EncodeToString(key)
	skFile := filepath.Join(dir, "sk.txt")
	if err := os.WriteFile(skFile, []byte(sk+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	s := &Stack{SimAddr: FreeAddr(tb), ExporterAddr: FreeAddr(tb)}
	s.Sim = StartProc(tb, dir, "metastudio-sim", simBin, append([]string{"--web.listen-address=" + s.SimAddr}, simArgs...),
		[]string{"METASTUDIO_SIM_SK=" + sk})
	WaitTCP(tb, s.Sim, s.SimAddr)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(config(s.SimAddr, skFile)), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.Exporter = StartProc(tb, dir, "metastudio_exporter", exporterBin,
		[]string{"--config.file=" + cfgFile, "--web.listen-address=" + s.ExporterAddr}, nil)
	WaitHTTP(tb, s.Exporter, "http://"+s.ExporterAddr+"/-/ready")
	return s
}
