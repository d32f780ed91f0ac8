package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// reloader loads the config file again and hands it to apply: on SIGHUP, on
// POST /-/reload and, with --config.watch-interval, when the file's content changes. One
// goroutine serves them all, so reloads never overlap. A file that does not load, or that
// apply refuses, keeps the running config, and the reload gauges say so.
type reloader struct {
	ctx      context.Context // ends the loop
	file     string          // "" when the config did not come from a file: no reload
	getenv   config.Getenv
	logger   log.Logger
	apply    func(*config.Config) error
	requests chan chan error
	handled  chan chan struct{} // a round trip through the loop (handledAll)
	last     string             // the hash of the file loaded last; owned by the loop
	ok, when prometheus.Gauge
}

var _ prometheus.Collector = (*reloader)(nil)

// newReloader is the reloader of a config that was loaded from o.configFile and applied
// just now; the loop must be started (watch or loop).
func newReloader(ctx context.Context, o options, apply func(*config.Config) error) *reloader {
	r := &reloader{ctx: ctx, file: o.configFile, getenv: o.getenv, logger: o.logger, apply: apply,
		requests: make(chan chan error),
		handled:  make(chan chan struct{}),
		last:     fileHash(o.configFile), // hashed now: a change right after start is a change
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "metastudio", Subsystem: "config", Name: "last_reload_successful",
			Help: "1 if the last reload of the config file succeeded (or none was tried), 0 if it failed and the previous config is still in use."}),
		when: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "metastudio", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
			Help: "When the config was last loaded successfully, in seconds since the epoch."}),
	}
	r.ok.Set(1)
	r.when.SetToCurrentTime()
	return r
}

// Describe sends the reload gauges' descriptors.
func (r *reloader) Describe(ch chan<- *prometheus.Desc) {
	r.ok.Describe(ch)
	r.when.Describe(ch)
}

// Collect sends the reload gauges.
func (r *reloader) Collect(ch chan<- prometheus.Metric) {
	r.ok.Collect(ch)
	r.when.Collect(ch)
}

// watch runs the loop until the reloader's context ends, reloading on each signal from
// hup and, every interval (0: never), when the file's content changed.
func (r *reloader) watch(hup <-chan os.Signal, interval time.Duration) {
	var tick <-chan time.Time
	if interval > 0 && r.file != "" {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	r.loop(hup, tick)
}

// loop is the one goroutine that reloads, until the reloader's context ends.
func (r *reloader) loop(hup <-chan os.Signal, tick <-chan time.Time) {
	for {
		select {
		case done := <-r.requests:
			done <- r.reload()
		case done := <-r.handled:
			close(done)
		case <-hup:
			_ = r.reload() // logged, and shown by the gauges
		case <-tick:
			if h := fileHash(r.file); h != r.last {
				_ = r.reload()
			}
		case <-r.ctx.Done():
			return
		}
	}
}

// handledAll returns once the loop has handled every signal and tick it took before.
func (r *reloader) handledAll() {
	done := make(chan struct{})
	select {
	case r.handled <- done:
		<-done
	case <-r.ctx.Done():
	}
}

// Reload asks the loop to reload and waits for the outcome.
func (r *reloader) Reload() error {
	done := make(chan error, 1)
	select {
	case r.requests <- done:
		return <-done
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// ServeHTTP serves /-/reload: a POST reloads, and answers 500 with the reason when the
// running config stays in use.
func (r *reloader) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
		return
	}
	if err := r.Reload(); err != nil {
		http.Error(w, "reload failed, the previous config stays in use: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "Reloaded")
}

// reload loads the file and applies it. Owned by the loop.
func (r *reloader) reload() error {
	if r.file == "" {
		return errors.New("no config file to reload")
	}
	r.last = fileHash(r.file) // a file that failed is not tried again until it changes
	cfg, warnings, err := config.Load(r.file, r.getenv)
	if err == nil {
		err = r.apply(cfg)
	}
	if err != nil {
		r.ok.Set(0)
		level.Error(r.logger).Log("msg", "Reload failed; the previous config stays in use", "file", r.file, "err", err)
		return err
	}
	for _, w := range warnings {
		level.Warn(r.logger).Log("msg", "Config", "warning", w)
	}
	r.ok.Set(1)
	r.when.SetToCurrentTime()
	level.Info(r.logger).Log("msg", "Reloaded config", "file", r.file, "tasks", len(cfg.Tasks))
	return nil
}

// fileHash is the SHA-256 of a file's content, or "" when it cannot be read.
func fileHash(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}
