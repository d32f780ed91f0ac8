package main

import (
	"net/http"
	"reflect"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// served is one project of the config as the exporter serves it: its client, the
// resolution of its project_id, its discovery and its metrics. It lives from the config
// that adds the project to the one that removes it.
type served struct {
	name          string
	logger        log.Logger // with the project's name
	apiMetrics    *collector.APIMetrics
	fetchFailures *auth.FetchFailures // IAM and metadata fetches that got no usable answer
	resolver      *projectResolver
	ready         atomic.Bool // a client with a project_id is in place

	// Guarded by the exporter's mu.
	guard     *refresh.Guard     // the guard of the project's credential identity
	rate      *refresh.Rate      // the rate of that identity at the project's API host
	clock     *auth.Clock        // the API host's clock, which signatures follow
	transport *http.Transport    // the API host's connection pool
	shown     projectMetrics     // the project's state, under its project label
	inUse     clientState        // what the client in place is made from
	watched   auth.Authenticator // the credentials in use, or those being resolved
	discovery discovery
}

// newServed is a project named name, not resolved yet. Called with e.mu held.
func (e *exporter) newServed(name string) *served {
	s := &served{name: name, logger: log.With(e.logger, "project", name), fetchFailures: auth.NewFetchFailures()}
	s.shown.reg = e.global
	// The API metrics are the project's: configure shows them under its project label.
	s.apiMetrics = collector.NewAPIMetrics(prometheus.NewRegistry(), s.logger)
	s.resolver = newProjectResolver(e.ctx, e.options, auth.Options{Now: e.now, Observer: s.apiMetrics, FetchFailures: s.fetchFailures},
		func(r resolution) { e.resolved(s, r) })
	s.resolver.logger = s.logger
	return s
}

// What a reload does with a project's client.
const (
	keepClient   = iota // unchanged
	followClient        // the resolution that runs goes on, for the new config
	startClient         // resolve project_id in the background, then make the client
	newClient           // a client made and ready to put in place
)

// plan is what a reload will do with one project, worked out before anything changes.
type plan struct {
	s      *served
	p      *config.Project
	guard  *refresh.Guard
	rate   *refresh.Rate
	clock  *auth.Clock
	pool   *http.Transport
	action int
	state  clientState // the client config, credentials and project_id (newClient, startClient)
	api    *metastudio.Client
}

// prepare works out what applying p does to the project, without changing what serves: a
// served project whose new client config has no project_id resolves it now, and an error
// fails the whole reload. Called with e.mu held.
func (s *served) prepare(e *exporter, p *config.Project, sc config.Scrape) (plan, error) {
	identity, host := identityOf(p.Credentials), hostOf(p.MetaStudioEndpoint())
	pl := plan{s: s, p: p, clock: e.shared.clock(host)}
	pl.guard = e.shared.guard(identity, p.Credentials.FailureBackoff, pl.clock)
	pl.rate = e.shared.rate(identity, host, sc)
	pl.pool = e.shared.transport(host, sc.Concurrency)
	client := clientConfigOf(p, sc.Concurrency)
	switch {
	case s.ready.Load() && reflect.DeepEqual(client, s.inUse.client):
		pl.action = keepClient
	case s.resolver.following(client):
		pl.action, pl.state.client = followClient, client
	default:
		pl.state = clientState{client, s.credentialsFor(e, p, client, pl.clock), p.ProjectID}
		if pl.state.project == "" && !s.ready.Load() {
			pl.action = startClient
			break
		}
		if pl.state.project == "" {
			// One attempt, made only outside a cool-down; a failure fails the reload, and
			// the credentials in use go on, judged by the guard as before.
			id, err := s.resolver.resolve(e.ctx, client, pl.state.credentials, pl.guard.Try)
			if err != nil {
				return plan{}, err
			}
			pl.state.project = id
		}
		api, err := s.newClient(e, pl.state, pl.clock, pl.pool)
		if err != nil {
			return plan{}, err
		}
		pl.action, pl.api = newClient, api
	}
	return pl, nil
}

// commit does what prepare planned. Called with e.mu held.
func (s *served) commit(e *exporter, pl plan, sc config.Scrape) {
	pl.rate.Configure(sc.MaxRequestsPerSecond, sc.MinRequestsPerSecond, sc.Concurrency)
	ownGuard := pl.guard == s.guard
	changed := !ownGuard || pl.rate != s.rate || pl.clock != s.clock
	s.guard, s.rate, s.clock, s.transport = pl.guard, pl.rate, pl.clock, pl.pool
	switch pl.action {
	case followClient:
		s.resolver.follow(pl.p, pl.state.client)
	case startClient:
		// The guard watches these credentials (watchCredentials, once the reload is in
		// force): a key or password file that changes ends its cool-down, and the
		// resolution tries them at once.
		pl.guard.Adopt(pl.p.Credentials.FailureBackoff)
		s.watched = pl.state.credentials
		s.resolver.start(pl.p, pl.state.client, pl.state.credentials, pl.guard)
	case newClient:
		s.install(e, pl.p, pl.state, pl.api, ownGuard)
		return
	}
	if changed && !s.ready.Load() {
		e.refresher.SetProject(s.name, nil, s.guard, s.rate) // no client until the project is resolved
	}
}

// configure makes p (its project_id as resolved) what the project serves, and returns
// the project as the Collector takes it. Called with e.mu held.
func (s *served) configure(e *exporter, p *config.Project) collector.Project {
	ready := s.ready.Load()
	if ready {
		p.ProjectID = s.inUse.project
	}
	s.shown.show(s.name, s.apiMetrics, s.guard, s.rate, s.clock, s.fetchFailures)
	discovery := p.Discovery
	discovery.Enabled = discovery.Enabled && ready // no listing without a client
	s.discovery.configure(e.ctx, s.name, discovery, e.refresher, e.global, s.logger)
	out := collector.Project{Project: p, Discovery: s.discovery.d}
	if !ready {
		out.Unavailable = errUnresolved
	}
	return out
}

// remove stops everything the project runs and drops its tasks. Called with e.mu held.
func (s *served) remove(e *exporter) {
	s.resolver.stop()
	s.discovery.configure(e.ctx, s.name, config.Discovery{}, e.refresher, e.global, s.logger)
	s.shown.hide()
	e.refresher.RemoveProject(s.name) // its pool is closed once no project uses it
	s.ready.Store(false)
}

// resolved puts in place the client of the project_id that r found for s, unless a
// reload replaced or removed the project meanwhile.
func (e *exporter) resolved(s *served, r resolution) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := s.resolver.take(r)
	if p == nil || e.projects[s.name] != s {
		return
	}
	api, err := s.newClient(e, r.clientState, s.clock, s.transport)
	if err != nil {
		level.Error(s.logger).Log("msg", "Applying the resolved project_id failed", "err", err)
		return
	}
	s.install(e, p, r.clientState, api, true)
	e.watchCredentials()
	e.configure()
}
