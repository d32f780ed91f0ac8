package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// projectTimeout bounds the resolution of project_id through IAM.
const projectTimeout = 30 * time.Second

// options are what the command line adds to a config.
type options struct {
	configFile    string // "" when the config did not come from a file (tests): no reload
	getenv        config.Getenv
	logger        log.Logger
	now           func() time.Time // the clock of signatures, expiries and cool-downs
	shard         collector.Shard
	watchInterval time.Duration // reload when the file's content changes; 0 = never
	// after is the timer of the background project resolution (default time.After);
	// tests pass one that moves a fake clock.
	after func(time.Duration) <-chan time.Time
}

// exporter keeps what outlives a reload (metrics, the AK guard, the rate limit, the cache,
// discovery) and swaps what a reload changes. One goroutine applies every reload, whether
// it comes from SIGHUP, POST /-/reload or the file watch; a scrape in flight finishes with
// the config it started with.
type exporter struct {
	options
	ctx     context.Context
	reloads chan chan error

	global        *collector.Set
	apiMetrics    *collector.APIMetrics
	guard         *refresh.Guard
	rate          *refresh.Rate
	refresher     *refresh.Refresher
	reloadOK      prometheus.Gauge
	reloadTime    prometheus.Gauge
	clock         *auth.Clock         // the API's clock, which signatures follow
	fetchFailures *auth.FetchFailures // IAM and metadata fetches that got no usable answer

	current atomic.Pointer[collector.Collector]
	ready   atomic.Bool // a client with a project is in place

	resolved chan resolution // from the background resolver to the reload goroutine

	// Owned by the reload goroutine (and newExporter before it starts).
	client          clientConfig
	credentials     auth.Authenticator // built for client
	api             *metastudio.Client // the client in use; nil until one is built
	project         string             // project_id resolved for client
	discovery       *collector.Discovery
	stopDiscovery   context.CancelFunc
	discoveryWaiter sync.WaitGroup

	// Project resolution in the background (resolve.go), owned by the reload goroutine.
	pending             *config.Config // the config waiting for its project_id
	resolving           clientConfig   // the client config a resolver works on
	cancelResolve       context.CancelFunc
	resolvedFor         clientConfig // what a resolver found, for apply to take
	resolvedCredentials auth.Authenticator
	resolvedProject     string
}

// clientConfig is what the API client and credentials are built from: a reload that
// changes it rebuilds them.
type clientConfig struct {
	Endpoint, IAMEndpoint, Region, ProjectID string
	Concurrency                              int
	Credentials                              config.Credentials
}

func clientConfigOf(cfg *config.Config) clientConfig {
	return clientConfig{
		Endpoint: cfg.MetaStudioEndpoint(), IAMEndpoint: cfg.IAMEndpointURL(), Region: cfg.Region,
		ProjectID: cfg.ProjectID, Concurrency: cfg.Scrape.Concurrency, Credentials: cfg.Credentials,
	}
}

// newExporter builds the exporter for cfg and starts its reload goroutine, which ends
// with ctx. When project_id cannot be resolved, the exporter starts anyway, not ready, and
// resolves it in the background.
func newExporter(ctx context.Context, cfg *config.Config, o options) (*exporter, error) {
	if o.now == nil {
		o.now = time.Now
	}
	if o.after == nil {
		o.after = time.After
	}
	e := &exporter{options: o, ctx: ctx, reloads: make(chan chan error), global: collector.NewSet(),
		resolved: make(chan resolution), clock: auth.NewClock(o.now), fetchFailures: auth.NewFetchFailures()}
	e.global.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(exporterName),
	)
	e.apiMetrics = collector.NewAPIMetrics(e.global, o.logger)
	e.guard = refresh.NewGuard(cfg.Credentials.FailureBackoff, nil, o.now, o.logger)
	e.guard.SetClock(e.clock)
	e.rate = refresh.NewRate(cfg.Scrape.MaxRequestsPerSecond, cfg.Scrape.MinRequestsPerSecond, cfg.Scrape.Concurrency, o.now)
	e.refresher = refresh.NewRefresher(nil, e.guard, e.rate, o.now, o.logger)
	e.refresher.SetWatched(func(k refresh.Key) bool { return e.current.Load().Listed(k.ID) })
	e.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "metastudio", Subsystem: "config", Name: "last_reload_successful",
		Help: "1 if the last reload of the config file succeeded (or none was tried), 0 if it failed and the previous config is still in use."})
	e.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "metastudio", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
		Help: "When the config was last loaded successfully, in seconds since the epoch."})
	e.global.MustRegister(e.guard, e.rate, e.reloadOK, e.reloadTime, e.clock, e.fetchFailures)
	if err := e.apply(cfg); err != nil {
		return nil, err
	}
	e.refresher.Start(ctx)
	e.reloadOK.Set(1)
	e.reloadTime.SetToCurrentTime()
	go e.reloadLoop(fileHash(o.configFile)) // hashed now: a change right after start is a change
	return e, nil
}

// apply makes cfg the running config, rebuilding the client if its part changed. A
// project that cannot be resolved fails a reload, which keeps the running config; before
// any project was resolved (at start), it leaves the exporter not ready, resolving in the
// background.
func (e *exporter) apply(cfg *config.Config) error {
	client := clientConfigOf(cfg)
	switch {
	case e.ready.Load() && reflect.DeepEqual(client, e.client):
	case e.cancelResolve != nil && reflect.DeepEqual(client, e.resolving):
		e.pending = cfg // the resolver goes on, under the same gates
	default:
		credentials, project, err := e.credentialsFor(cfg, client)
		if err != nil {
			if e.ready.Load() {
				return err
			}
			level.Error(e.logger).Log("msg", "Cannot resolve project_id; the exporter stays up, not ready, and tries again in the background",
				"retry_in", resolveBackoff, "err", err)
			e.pending = cfg
			e.refresher.SetAPI(collector.NewAPI(unresolvedAPI{}))
			e.startResolver(client, credentials)
			break
		}
		e.stopResolver()
		api, err := metastudio.NewClient(metastudio.Options{
			Endpoint: client.Endpoint, ProjectID: project, Auth: credentials, MaxConns: client.Concurrency,
			Observer: e.apiMetrics, UserAgent: exporterName + "/" + version.Version, Now: e.now, Clock: e.clock,
		})
		if err != nil {
			return err
		}
		if e.api != nil {
			e.api.CloseIdleConnections()
		}
		e.api = api
		e.refresher.SetAPI(collector.NewAPI(api))
		// The AK guard and the IAM password gate are kept unless the credentials' source
		// or values changed: a reload that changes the endpoint, the region, the rate or
		// the concurrency must not walk a wrong key into the gateway's lock.
		if e.credentials != nil && sameIdentity(client.Credentials, e.client.Credentials) {
			auth.Inherit(credentials, e.credentials)
			e.guard.Adopt(credentials, cfg.Credentials.FailureBackoff)
		} else {
			e.guard.Reset(credentials, cfg.Credentials.FailureBackoff)
		}
		e.client, e.credentials, e.project, e.pending = client, credentials, project, nil
		e.ready.Store(true)
	}
	cfg.ProjectID = e.project
	e.rate.Configure(cfg.Scrape.MaxRequestsPerSecond, cfg.Scrape.MinRequestsPerSecond, cfg.Scrape.Concurrency)
	e.refresher.Configure(cfg.Scrape.Concurrency, cfg.Scrape.Timeout)
	e.configureDiscovery(cfg.Discovery)
	e.current.Store(collector.New(cfg, e.refresher, e.discovery, e.shard, e.logger))
	return nil
}

// sameIdentity reports whether two credential configs are the same source with the same
// values: only failure_backoff, which is no part of them, may differ.
func sameIdentity(a, b config.Credentials) bool {
	a.FailureBackoff, b.FailureBackoff = 0, 0
	return reflect.DeepEqual(a, b)
}

// configureDiscovery starts, reconfigures or stops the background listing.
func (e *exporter) configureDiscovery(d config.Discovery) {
	switch {
	case d.Enabled && e.discovery == nil:
		e.discovery = collector.NewDiscovery(d, e.refresher, e.logger)
		e.global.MustRegister(e.discovery)
		ctx, cancel := context.WithCancel(e.ctx)
		e.stopDiscovery = cancel
		e.discoveryWaiter.Add(1)
		go func() {
			defer e.discoveryWaiter.Done()
			e.discovery.Run(ctx)
		}()
	case d.Enabled:
		e.discovery.Configure(d)
	case e.discovery != nil:
		e.stopDiscovery()
		e.discoveryWaiter.Wait()
		e.global.Unregister(e.discovery)
		e.discovery = nil
	}
}

// reload loads the config file again. A bad file keeps the running config.
func (e *exporter) reload() error {
	if e.configFile == "" {
		return errors.New("no config file to reload")
	}
	cfg, warnings, err := config.Load(e.configFile, e.getenv)
	if err == nil {
		err = e.apply(cfg)
	}
	if err != nil {
		e.reloadOK.Set(0)
		level.Error(e.logger).Log("msg", "Reload failed; the previous config stays in use", "file", e.configFile, "err", err)
		return err
	}
	for _, w := range warnings {
		level.Warn(e.logger).Log("msg", "Config", "warning", w)
	}
	e.reloadOK.Set(1)
	e.reloadTime.SetToCurrentTime()
	level.Info(e.logger).Log("msg", "Reloaded config", "file", e.configFile, "tasks", len(cfg.Tasks))
	return nil
}

// Reload asks the reload goroutine to reload and waits for the outcome.
func (e *exporter) Reload() error {
	done := make(chan error, 1)
	select {
	case e.reloads <- done:
		return <-done
	case <-e.ctx.Done():
		return e.ctx.Err()
	}
}

// reloadLoop is the one goroutine that applies reloads, until ctx ends. last is the hash
// of the file that is loaded.
func (e *exporter) reloadLoop(last string) {
	var tick <-chan time.Time
	if e.watchInterval > 0 && e.configFile != "" {
		t := time.NewTicker(e.watchInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case done := <-e.reloads:
			done <- e.reload()
			last = fileHash(e.configFile)
		case <-tick:
			if h := fileHash(e.configFile); h != last {
				last = h
				_ = e.reload() // logged, and shown by the reload metrics
			}
		case r := <-e.resolved:
			e.applyResolved(r)
		case <-e.ctx.Done():
			if e.stopDiscovery != nil {
				e.stopDiscovery()
			}
			e.stopResolver()
			return
		}
	}
}

// fileHash is the SHA-256 of a file's content, or "" when it cannot be read.
func fileHash(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

// handler wires every endpoint of the exporter.
func (e *exporter) handler(metricsPath string) (http.Handler, error) {
	current := e.current.Load
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        exporterName,
		Description: "Prometheus exporter for Huawei Cloud MetaStudio import/export tasks",
		Version:     version.Info(),
		Form: web.LandingForm{Action: "/probe", Inputs: []web.LandingFormInput{
			{Label: "Task", Type: "text", Name: "task", Placeholder: "task id"},
		}},
		Links: []web.LandingLinks{
			{Address: metricsPath, Text: "Metrics"},
			{Address: "/sd", Text: "Service discovery", Description: "the tasks, as Prometheus http_sd_configs JSON"},
			{Address: "/config", Text: "Configuration", Description: "the running config, secrets hidden"},
			{Address: "/-/healthy", Text: "Health"},
			{Address: "/-/ready", Text: "Readiness"},
		},
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", landing) // answers 404 for any path but "/"
	mux.Handle(metricsPath, collector.Handler(current, e.global, e.logger))
	mux.Handle("/probe", collector.ProbeHandler(current, e.logger))
	mux.Handle("/sd", collector.SDHandler(current))
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		out, err := current().Config().Show()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := e.Reload(); err != nil {
			http.Error(w, "reload failed, the previous config stays in use: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Reloaded")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
	})
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		// A config is loaded before the server starts; the project may still be resolving
		// (see resolve.go). Readiness never depends on the API's health.
		if !e.ready.Load() {
			http.Error(w, "Not ready: project_id is not resolved yet (see the log)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	return mux, nil
}
