package main

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// exporter keeps what outlives a reload (metrics, the guards, rates and clocks that the
// project's identity and API host keep, the cache, discovery) and swaps what a reload
// changes. The reloader and the project resolver hand
// it configs to apply; a scrape in flight finishes with the config it started with.
type exporter struct {
	options
	ctx           context.Context
	global        *collector.Set
	apiMetrics    *collector.APIMetrics
	shared        *shared        // guards, rates and clocks, kept while a project uses them
	guard         *refresh.Guard // the guard of the project's credential identity
	rate          *refresh.Rate  // the rate of that identity at the project's API host
	refresher     *refresh.Refresher
	clock         *auth.Clock         // the API host's clock, which signatures follow
	shown         projectMetrics      // the project's shared state, under its project label
	fetchFailures *auth.FetchFailures // IAM and metadata fetches that got no usable answer
	reloader      *reloader
	resolver      *projectResolver

	current atomic.Pointer[collector.Collector]
	ready   atomic.Bool // a client with a project is in place

	mu        sync.Mutex         // serialises apply; guards what follows
	inUse     clientState        // what the client in place is made from
	api       *metastudio.Client // the client in place; nil until one is made
	discovery discovery
}

// newExporter builds the exporter for cfg and starts its reload goroutine, which ends
// with ctx. It makes no network call: a project_id left out is resolved in the
// background, and the exporter is not ready until it is.
func newExporter(ctx context.Context, cfg *config.Config, o options) (*exporter, error) {
	if o.now == nil {
		o.now = time.Now
	}
	if o.after == nil {
		o.after = time.After
	}
	e := &exporter{options: o, ctx: ctx, global: collector.NewSet(), shared: newShared(o.now, o.logger), fetchFailures: auth.NewFetchFailures()}
	e.shown.reg = e.global
	e.global.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(exporterName),
	)
	// The API metrics are the project's: configure shows them under its project label.
	e.apiMetrics = collector.NewAPIMetrics(prometheus.NewRegistry(), o.logger)
	e.useShared(cfg)
	e.refresher = refresh.NewRefresher(o.now, o.logger)
	e.refresher.SetProject(collector.DefaultProject, nil, e.guard, e.rate) // no client until the project is resolved
	e.refresher.SetWatched(func(k refresh.Key) bool { return e.current.Load().Listed(k.ID) })
	e.resolver = newProjectResolver(ctx, o, auth.Options{Now: o.now, Observer: e.apiMetrics, FetchFailures: e.fetchFailures}, e.resolved)
	if err := e.apply(cfg); err != nil {
		return nil, err
	}
	e.refresher.Start(ctx)
	e.reloader = newReloader(ctx, o, e.apply)
	e.global.MustRegister(e.reloader, resolvedMetric{e})
	go e.reloader.watch(o.hup, o.watchInterval)
	return e, nil
}

// apply makes cfg the running config, rebuilding the client if its part changed. A
// project that cannot be resolved fails a reload, which keeps the running config; before
// any project was resolved (at start), it leaves the exporter not ready, resolving in the
// background.
func (e *exporter) apply(cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	guard, rate, clock := e.guard, e.rate, e.clock
	if e.useShared(cfg) && e.refresher != nil && !e.ready.Load() {
		e.refresher.SetProject(collector.DefaultProject, nil, e.guard, e.rate)
	}
	err := e.applyLocked(cfg)
	if err != nil { // the running config stays, with what it used
		e.guard, e.rate, e.clock = guard, rate, clock
		if e.refresher != nil && !e.ready.Load() {
			e.refresher.SetProject(collector.DefaultProject, nil, e.guard, e.rate)
		}
		return err
	}
	e.shared.sweep(e.guard, e.rate, e.clock)
	return nil
}

// applyLocked is apply once the shared state is taken. Called with e.mu held.
func (e *exporter) applyLocked(cfg *config.Config) error {
	client := clientConfigOf(cfg)
	switch {
	case e.ready.Load() && reflect.DeepEqual(client, e.inUse.client):
	case e.resolver.follow(cfg, client): // the resolution goes on, under the same gates
	default:
		credentials := e.credentialsFor(cfg, client)
		project := cfg.ProjectID
		if project == "" && !e.ready.Load() {
			e.resolver.start(cfg, client, credentials)
			break
		}
		if project == "" {
			var err error
			if project, err = e.resolver.resolve(e.ctx, client, credentials); err != nil {
				return err
			}
		}
		if err := e.useClient(cfg, clientState{client, credentials, project}); err != nil {
			return err
		}
	}
	e.configure(cfg)
	return nil
}

// useShared takes the guard, rate and clock that cfg's project uses, keeping those whose
// identity and API host remain, and reports whether any of them changed. The old ones
// stay in e.shared until a sweep. Called with
// e.mu held, or before the exporter serves.
func (e *exporter) useShared(cfg *config.Config) bool {
	identity, host := identityOf(cfg.Credentials), hostOf(cfg.MetaStudioEndpoint())
	clock := e.shared.clock(host)
	guard := e.shared.guard(identity, cfg.Credentials.FailureBackoff, clock)
	rate := e.shared.rate(identity, host, cfg.Scrape)
	changed := guard != e.guard || rate != e.rate || clock != e.clock
	e.guard, e.rate, e.clock = guard, rate, clock
	return changed
}

// configure hands cfg's settings to what outlives a reload, and makes it the config that
// scrapes use. Called with e.mu held.
func (e *exporter) configure(cfg *config.Config) {
	cfg.ProjectID = e.inUse.project
	e.shown.show(cfg.Projects[0].Name, e.apiMetrics, e.guard, e.rate, e.clock, e.fetchFailures)
	e.refresher.Configure(cfg.Scrape.Concurrency, cfg.Scrape.Timeout)
	ready := e.ready.Load()
	discovery := cfg.Discovery
	discovery.Enabled = discovery.Enabled && ready // no listing without a client
	e.discovery.configure(e.ctx, discovery, e.refresher, e.global, e.logger)
	c := collector.New(cfg, e.refresher, e.discovery.d, e.shard, e.logger)
	if !ready {
		c.SetUnavailable(errUnresolved)
	}
	e.current.Store(c)
}

// handler wires every endpoint of the exporter.
func (e *exporter) handler(metricsPath string) (http.Handler, error) {
	current := e.current.Load
	landing, err := landingPage(metricsPath)
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
	mux.Handle("/-/reload", e.reloader)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		// A config is loaded before the server starts; the project may still be resolving.
		// Readiness never depends on the API's health.
		if !e.ready.Load() {
			http.Error(w, "Not ready: unresolved: project "+e.current.Load().Config().Projects[0].Name+": "+e.resolver.reason(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	return mux, nil
}

var projectResolvedDesc = prometheus.NewDesc("metastudio_project_resolved",
	"1 once the project's project_id is known (configured or resolved through IAM) and its tasks are called, else 0.",
	[]string{"project"}, nil)

// resolvedMetric shows whether each served project is resolved.
type resolvedMetric struct{ e *exporter }

// Describe implements prometheus.Collector.
func (m resolvedMetric) Describe(ch chan<- *prometheus.Desc) { ch <- projectResolvedDesc }

// Collect implements prometheus.Collector.
func (m resolvedMetric) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if m.e.ready.Load() {
		v = 1
	}
	name := m.e.current.Load().Config().Projects[0].Name
	ch <- prometheus.MustNewConstMetric(projectResolvedDesc, prometheus.GaugeValue, v, name)
}
