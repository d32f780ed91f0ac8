package main

// The reloader alone, with an apply that records what it is given: what triggers a
// reload, what a failed one keeps, the gauges and /-/reload.

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

func reloaderConfig(tasks string) string {
	return "region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [" + tasks + "]\n"
}

// reloaderRig is a reloader of a config file whose loop runs on the rig's channels.
type reloaderRig struct {
	t        *testing.T
	r        *reloader
	path     string
	hup      chan os.Signal
	tick     chan time.Time
	applied  chan string // the tasks of each config handed to apply
	applyErr error       // what apply answers
	logs     *testkit.Buffer
}

func newReloaderRig(t *testing.T, file bool) *reloaderRig {
	t.Helper()
	rig := &reloaderRig{t: t, hup: make(chan os.Signal, 1), tick: make(chan time.Time), applied: make(chan string, 10), logs: &testkit.Buffer{}}
	o := options{getenv: testEnv, logger: log.NewLogfmtLogger(rig.logs)}
	if file {
		rig.path = filepath.Join(t.TempDir(), "config.yml")
		rig.write(reloaderConfig("t1"))
		o.configFile = rig.path
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rig.r = newReloader(ctx, o, func(cfg *config.Config) error {
		rig.applied <- strings.Join(cfg.Tasks, ",")
		return rig.applyErr
	})
	go rig.r.loop(rig.hup, rig.tick)
	return rig
}

func (rig *reloaderRig) write(text string) {
	rig.t.Helper()
	if err := os.WriteFile(rig.path, []byte(text), 0o600); err != nil {
		rig.t.Fatal(err)
	}
}

// ticks sends a tick and returns once the loop has handled it.
func (rig *reloaderRig) ticks() {
	rig.tick <- time.Now()
	rig.r.handledAll()
}

// next returns the tasks of the next config handed to apply.
func (rig *reloaderRig) next(what string) string {
	rig.t.Helper()
	select {
	case tasks := <-rig.applied:
		return tasks
	case <-time.After(10 * time.Second): // only when the reloader is broken
		rig.t.Fatalf("%s: nothing was applied", what)
		return ""
	}
}

// nothingApplied fails if apply was called.
func (rig *reloaderRig) nothingApplied(when string) {
	rig.t.Helper()
	select {
	case tasks := <-rig.applied:
		rig.t.Errorf("%s: a config with tasks %s was applied, want none", when, tasks)
	default:
	}
}

func (rig *reloaderRig) gauges() (ok, when float64) {
	return testutil.ToFloat64(rig.r.ok), testutil.ToFloat64(rig.r.when)
}

func TestReloaderTriggers(t *testing.T) {
	rig := newReloaderRig(t, true)
	if ok, when := rig.gauges(); ok != 1 || when <= 0 {
		t.Errorf("after start: last_reload_successful %g, timestamp %g; want 1 and the start", ok, when)
	}
	rig.ticks()
	rig.nothingApplied("a tick with the file unchanged since start")

	rig.write(reloaderConfig("t1, t2"))
	rig.ticks()
	if got := rig.next("a tick after the file changed"); got != "t1,t2" {
		t.Errorf("a tick after the file changed applied %q, want t1,t2", got)
	}
	rig.ticks()
	rig.nothingApplied("a tick with the file unchanged since the last reload")

	rig.write(reloaderConfig("t3"))
	rig.hup <- syscall.SIGHUP
	if got := rig.next("SIGHUP"); got != "t3" {
		t.Errorf("SIGHUP applied %q, want t3", got)
	}
	rig.ticks()
	rig.nothingApplied("a tick after SIGHUP loaded the file")

	if err := rig.r.Reload(); err != nil || rig.next("Reload") != "t3" {
		t.Errorf("Reload of the same file: %v, want it applied again", err)
	}
}

func TestReloaderKeepsTheRunningConfig(t *testing.T) {
	rig := newReloaderRig(t, true)
	_, started := rig.gauges()
	for _, tc := range []struct {
		name, text string
		applyErr   error
		want       string
	}{
		{name: "invalid YAML", text: "region: [", want: "line 1"},
		{name: "unknown key", text: reloaderConfig("t1") + "scrape: {concurency: 2}\n", want: "scrape.concurency: unknown key"},
		{name: "refused by apply", text: reloaderConfig("t2"), applyErr: errors.New("resolving project_id: refused"), want: "refused"},
	} {
		rig.write(tc.text)
		rig.applyErr = tc.applyErr
		err := rig.r.Reload()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Reload gave %v, want an error with %q", tc.name, err, tc.want)
		}
		if tc.applyErr != nil {
			rig.next(tc.name)
		}
		rig.nothingApplied(tc.name)
		if ok, when := rig.gauges(); ok != 0 || when != started {
			t.Errorf("%s: last_reload_successful %g, timestamp %g; want 0 and the start's %g", tc.name, ok, when, started)
		}
		rig.ticks()
		rig.nothingApplied(tc.name + ", then a tick: a file that failed waits until it changes")
	}
	if !strings.Contains(rig.logs.String(), "Reload failed; the previous config stays in use") {
		t.Errorf("failed reloads must be logged:\n%s", rig.logs)
	}

	rig.applyErr = nil
	rig.write(reloaderConfig("t4"))
	if err := rig.r.Reload(); err != nil || rig.next("a good file") != "t4" {
		t.Errorf("a good file after bad ones: %v", err)
	}
	if ok, when := rig.gauges(); ok != 1 || when < started {
		t.Errorf("after a good reload: last_reload_successful %g, timestamp %g; want 1 and a later time", ok, when)
	}
}

func TestReloaderHTTP(t *testing.T) {
	rig := newReloaderRig(t, true)
	for _, method := range []string{"GET", "HEAD", "PUT"} {
		if code, _ := do(t, rig.r, method, "/-/reload"); code != http.StatusMethodNotAllowed {
			t.Errorf("%s /-/reload: %d, want 405", method, code)
		}
	}
	rig.nothingApplied("requests that are not POST")
	if code, body := do(t, rig.r, "POST", "/-/reload"); code != 200 || body != "Reloaded\n" || rig.next("POST") != "t1" {
		t.Errorf("POST /-/reload of a good file: %d %q", code, body)
	}
	rig.write("region: [")
	if code, body := do(t, rig.r, "POST", "/-/reload"); code != 500 || !strings.HasPrefix(body, "reload failed, the previous config stays in use: ") {
		t.Errorf("POST /-/reload of a bad file: %d %q, want 500 with the reason", code, body)
	}

	none := newReloaderRig(t, false)
	if code, body := do(t, none.r, "POST", "/-/reload"); code != 500 || !strings.Contains(body, "no config file to reload") {
		t.Errorf("POST /-/reload without a config file: %d %q", code, body)
	}
	none.nothingApplied("no config file")
}
