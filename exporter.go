package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// exporter keeps what outlives a reload (metrics, the guards, rates and clocks that the
// projects' identities and API hosts keep, the cache, each project's discovery) and swaps
// what a reload changes. The reloader and the projects' resolvers hand it configs to
// apply; a scrape in flight finishes with the config it started with.
type exporter struct {
	options
	ctx       context.Context
	global    *collector.Set
	shared    *shared // guards, rates and clocks, kept while a project uses them
	refresher *refresh.Refresher
	reloader  *reloader

	current atomic.Pointer[collector.Collector]

	mu       sync.Mutex         // serialises apply; guards what follows
	projects map[string]*served // by name
	running  *config.Config     // the config in force
	// served is a copy of projects for readers that must not wait for an apply (which
	// may resolve a project_id): readiness and metastudio_project_resolved.
	served atomic.Pointer[map[string]*served]
}

// newExporter builds the exporter for cfg and starts its reload goroutine, which ends
// with ctx. It makes no network call: a project_id left out is resolved in the
// background, and the project is not served until it is.
func newExporter(ctx context.Context, cfg *config.Config, o options) (*exporter, error) {
	if o.now == nil {
		o.now = time.Now
	}
	if o.after == nil {
		o.after = time.After
	}
	e := &exporter{options: o, ctx: ctx, global: collector.NewSet(), shared: newShared(o.now, o.logger), projects: map[string]*served{}}
	e.global.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(exporterName),
	)
	e.refresher = refresh.NewRefresher(o.now, o.logger)
	e.refresher.SetWatched(func(k refresh.Key) bool { return e.current.Load().Listed(k.Project, k.ID) })
	if err := e.apply(cfg); err != nil {
		return nil, err
	}
	e.refresher.Start(ctx)
	e.reloader = newReloader(ctx, o, e.apply)
	e.global.MustRegister(e.reloader, resolvedMetric{e})
	go e.reloader.watch(o.hup, o.watchInterval)
	return e, nil
}

// apply makes cfg the running config. Each project keeps its client unless its part of
// the config changed; a project that is added starts resolving, one that is removed is
// dropped. A reload that cannot be applied whole (a served project whose new client
// cannot be made or resolved) changes nothing and keeps the running config.
func (e *exporter) apply(cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	plans := make([]plan, len(cfg.Projects))
	for i := range cfg.Projects {
		p := &cfg.Projects[i]
		s := e.projects[p.Name]
		if s == nil {
			s = e.newServed(p.Name)
		}
		pl, err := s.prepare(e, p, cfg.Scrape)
		if err != nil {
			if !cfg.Shorthand() {
				err = fmt.Errorf("project %s: %w", p.Name, err)
			}
			return err
		}
		plans[i] = pl
	}
	kept := map[string]bool{}
	for _, pl := range plans {
		pl.s.commit(e, pl, cfg.Scrape)
		e.projects[pl.s.name] = pl.s
		kept[pl.s.name] = true
	}
	for name, s := range e.projects {
		if !kept[name] {
			s.remove(e)
			delete(e.projects, name)
			level.Info(e.logger).Log("msg", "Project removed", "project", name)
		}
	}
	var inUse []any
	for _, s := range e.projects {
		inUse = append(inUse, s.guard, s.rate, s.clock, s.transport)
	}
	e.shared.sweep(inUse...)
	e.watchCredentials()
	snapshot := maps.Clone(e.projects)
	e.served.Store(&snapshot)
	e.running = cfg
	e.configure()
	return nil
}

// watchCredentials tells each guard the credentials of every project on its identity.
// Called with e.mu held.
func (e *exporter) watchCredentials() {
	by := map[*refresh.Guard][]auth.Authenticator{}
	for _, s := range e.projects {
		by[s.guard] = append(by[s.guard], s.watched)
	}
	for g, creds := range by {
		g.Watch(creds...)
	}
}

// configure hands the running config's settings to what outlives a reload, and makes it
// the config that scrapes use, each project's project_id as resolved. Called with e.mu
// held.
func (e *exporter) configure() {
	cfg := *e.running // a copy: the projects' resolved ids are written in it, not in a config that serves
	cfg.Projects = slices.Clone(e.running.Projects)
	e.refresher.Configure(cfg.Scrape.Concurrency, cfg.Scrape.Timeout)
	projects := make([]collector.Project, len(cfg.Projects))
	for i := range cfg.Projects {
		p := &cfg.Projects[i]
		s := e.projects[p.Name]
		projects[i] = s.configure(e, p)
	}
	if len(cfg.Projects) == 1 {
		cfg.ProjectID = cfg.Projects[0].ProjectID // the top-level keys mirror the one project
	}
	e.current.Store(collector.New(&cfg, projects, e.refresher, e.shard, e.logger))
}

// unresolved names the projects of the running config that are not served yet, with
// why, in the config's order.
func (e *exporter) unresolved() []string {
	served := *e.served.Load()
	var out []string
	for _, name := range e.current.Load().Projects() {
		if s := served[name]; s != nil && !s.ready.Load() {
			out = append(out, "project "+name+": "+s.resolver.reason())
		}
	}
	return out
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
		// A config is loaded before the server starts; projects may still be resolving.
		// Ready once one project is served: a refused or hung project holds up no other.
		// Readiness never depends on the API's health.
		unresolved := e.unresolved()
		if len(unresolved) == len(current().Projects()) {
			http.Error(w, "Not ready: unresolved: "+strings.Join(unresolved, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
		for _, u := range unresolved {
			fmt.Fprintln(w, "Unresolved: "+u)
		}
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
	served := *m.e.served.Load()
	for _, name := range m.e.current.Load().Projects() {
		v := 0.0
		if s := served[name]; s != nil && s.ready.Load() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(projectResolvedDesc, prometheus.GaugeValue, v, name)
	}
}
