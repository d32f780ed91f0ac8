package main

import (
	"reflect"

	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// clientConfig is what the API client and credentials are built from: a reload that
// changes it rebuilds them.
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

func clientConfigOf(cfg *config.Config) clientConfig {
	return clientConfig{
		Endpoint: cfg.MetaStudioEndpoint(), IAMEndpoint: cfg.IAMEndpointURL(), Region: cfg.Region,
		ProjectID: cfg.ProjectID, Concurrency: cfg.Scrape.Concurrency, Credentials: cfg.Credentials,
	}
}

// sameIdentity reports whether two credential configs are the same source with the same
// values: only failure_backoff, which is no part of them, may differ.
func sameIdentity(a, b config.Credentials) bool {
	a.FailureBackoff, b.FailureBackoff = 0, 0
	return reflect.DeepEqual(a, b)
}

// credentialsFor returns the credentials of client: those in use when they are the same
// and scoped the same (only the endpoint, the concurrency or failure_backoff differ),
// else new ones. Called with e.mu held.
func (e *exporter) credentialsFor(cfg *config.Config, client clientConfig) auth.Authenticator {
	same := e.inUse.client
	same.Endpoint, same.Concurrency, same.Credentials.FailureBackoff = client.Endpoint, client.Concurrency, client.Credentials.FailureBackoff
	if e.inUse.credentials != nil && reflect.DeepEqual(client, same) {
		return e.inUse.credentials
	}
	return auth.New(cfg.Credentials, auth.Options{
		Now: e.now, Clock: e.clock, IAMEndpoint: client.IAMEndpoint, Region: cfg.Region, ProjectID: cfg.ProjectID,
		Observer: e.apiMetrics, FetchFailures: e.fetchFailures,
	})
}

// resolved applies the config that waited for the project r found, unless a reload
// replaced it meanwhile.
func (e *exporter) resolved(r resolution) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg := e.resolver.take(r)
	if cfg == nil {
		return
	}
	if err := e.useClient(cfg, r.clientState); err != nil {
		level.Error(e.logger).Log("msg", "Applying the resolved project_id failed", "err", err)
		return
	}
	e.configure(cfg)
}

// useClient puts a client made from s in place, and makes the
// exporter ready. The AK guard and the IAM password gate are kept unless the credentials'
// source or values changed: a reload that changes the endpoint, the region, the rate or
// the concurrency must not walk a wrong key into the gateway's lock. Called with e.mu
// held.
func (e *exporter) useClient(cfg *config.Config, s clientState) error {
	api, err := metastudio.NewClient(metastudio.Options{
		Endpoint: s.client.Endpoint, ProjectID: s.project, Auth: s.credentials, MaxConns: s.client.Concurrency,
		Observer: e.apiMetrics, UserAgent: exporterName + "/" + version.Version, Now: e.now, Clock: e.clock,
	})
	if err != nil {
		return err
	}
	e.resolver.stop()
	if e.api != nil {
		e.api.CloseIdleConnections()
	}
	e.api = api
	e.refresher.SetProject(collector.DefaultProject, collector.NewAPI(api), e.guard, e.rate)
	if e.inUse.credentials != nil && sameIdentity(s.client.Credentials, e.inUse.client.Credentials) {
		auth.Inherit(s.credentials, e.inUse.credentials)
		e.guard.Adopt(s.credentials, cfg.Credentials.FailureBackoff)
	} else {
		e.guard.Reset(s.credentials, cfg.Credentials.FailureBackoff)
	}
	e.inUse = s
	e.ready.Store(true)
	return nil
}
