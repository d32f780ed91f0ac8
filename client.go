package main

import (
	"net/http"
	"reflect"

	"github.com/prometheus/common/version"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// clientConfig is what a project's API client and credentials are built from: a reload
// that changes it rebuilds them.
type clientConfig struct {
	Endpoint, IAMEndpoint, Region, ProjectID string
	Concurrency                              int
	Credentials                              config.Credentials
}

// clientState is what a client is made from: a client config, the credentials built for
// it and its project_id.
type clientState struct {
	client      clientConfig
	credentials auth.Authenticator
	project     string
}

func clientConfigOf(p *config.Project, concurrency int) clientConfig {
	return clientConfig{
		Endpoint: p.MetaStudioEndpoint(), IAMEndpoint: p.IAMEndpointURL(), Region: p.Region,
		ProjectID: p.ProjectID, Concurrency: concurrency, Credentials: p.Credentials,
	}
}

// sameIdentity reports whether two credential configs are the same source with the same
// values: only failure_backoff, which is no part of them, may differ.
func sameIdentity(a, b config.Credentials) bool {
	a.FailureBackoff, b.FailureBackoff = 0, 0
	return reflect.DeepEqual(a, b)
}

// credentialsFor returns the credentials of client: those in use when they are the same,
// scoped the same and signed with the same clock (only the endpoint's path, the
// concurrency or failure_backoff differ), else new ones. Called with e.mu held.
func (s *served) credentialsFor(e *exporter, p *config.Project, client clientConfig, clock *auth.Clock) auth.Authenticator {
	same := s.inUse.client
	same.Endpoint, same.Concurrency, same.Credentials.FailureBackoff = client.Endpoint, client.Concurrency, client.Credentials.FailureBackoff
	if s.inUse.credentials != nil && clock == s.clock && reflect.DeepEqual(client, same) {
		return s.inUse.credentials
	}
	return auth.New(p.Credentials, auth.Options{
		Now: e.now, Clock: clock, IAMEndpoint: client.IAMEndpoint, Region: p.Region, ProjectID: p.ProjectID,
		Observer: s.apiMetrics, FetchFailures: s.fetchFailures,
	})
}

// newClient makes the API client of st, signing by clock, its connections from pool
// (the API host's, shared by the projects there: the workers are too).
func (s *served) newClient(e *exporter, st clientState, clock *auth.Clock, pool *http.Transport) (*metastudio.Client, error) {
	return metastudio.NewClient(metastudio.Options{
		Endpoint: st.client.Endpoint, ProjectID: st.project, Auth: st.credentials, MaxConns: st.client.Concurrency,
		Observer: s.apiMetrics, UserAgent: exporterName + "/" + version.Version, Now: e.now, Clock: clock, Transport: pool,
	})
}

// install puts api, made from st, in place and makes the project ready. The guard keeps
// what it learned (a cool-down included) unless this project's own credentials changed
// their values under the same identity (ownGuard): a project that moves to or joins an
// AK must not end that AK's cool-down, and a reload that changes the endpoint, the
// region, the rate or the concurrency must not walk a wrong key into the gateway's lock.
// Called with e.mu held.
func (s *served) install(e *exporter, p *config.Project, st clientState, api *metastudio.Client, ownGuard bool) {
	s.resolver.stop()
	e.refresher.SetProject(s.name, collector.NewAPI(api), s.guard, s.rate)
	same := s.inUse.credentials != nil && sameIdentity(st.client.Credentials, s.inUse.client.Credentials)
	if same {
		auth.Inherit(st.credentials, s.inUse.credentials)
	}
	if s.inUse.credentials != nil && ownGuard && !same {
		s.guard.Reset(st.credentials, p.Credentials.FailureBackoff)
	} else {
		s.guard.Adopt(p.Credentials.FailureBackoff)
	}
	s.inUse, s.watched = st, st.credentials
	s.ready.Store(true)
}
