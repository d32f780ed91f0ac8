package main

// Start-up must not become a loop that locks the AK or the IAM user: a credential or
// project-resolution failure does not exit (systemd would restart the process every few
// seconds, and each start would try again). The exporter stays up, /-/ready answers 503,
// and project_id is resolved in the background under the same gates as every other call.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/go-kit/log/level"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

const (
	// resolveBackoff is the first wait before project resolution is tried again; it
	// doubles up to maxResolveBackoff. A wrong SK thus costs at most 2 signature failures
	// in any minute, and far fewer than the gateway's lock needs (6 in a row) in an hour.
	// A wrong password is gated by auth.IAMToken as well (2 attempts in 15 minutes).
	resolveBackoff    = time.Minute
	maxResolveBackoff = 16 * time.Minute
	// resolvePoll is how often a waiting resolver looks for new credentials (a rotated key
	// file, a new password file), which are tried at once.
	resolvePoll = 2 * time.Second
)

// errUnresolved is the error of every task while project_id is not resolved yet.
var errUnresolved = errors.New("project_id is not resolved yet (see the log): no API call is made until it is")

// unresolvedAPI stands in for the MetaStudio client until project_id is resolved: every
// call fails at once, without a request, and proves nothing about the credentials.
type unresolvedAPI struct{}

func (unresolvedAPI) ShowTask(context.Context, string) (*metastudio.Task, error) {
	return nil, &metastudio.APIError{Operation: metastudio.OpShowTask, Err: errUnresolved}
}

func (unresolvedAPI) SearchTask(context.Context, metastudio.SearchParams) (*metastudio.TaskPage, error) {
	return nil, &metastudio.APIError{Operation: metastudio.OpSearchTask, Err: errUnresolved}
}

// resolution is the outcome of a background resolver, applied by the reload goroutine.
type resolution struct {
	client      clientConfig
	credentials auth.Authenticator
	project     string
}

// resolveProject makes one attempt to resolve project_id, bounded by projectTimeout.
func (e *exporter) resolveProject(ctx context.Context, client clientConfig, credentials auth.Authenticator) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, projectTimeout)
	defer cancel()
	id, err := auth.ResolveProject(ctx, credentials, auth.Options{
		Now: e.now, IAMEndpoint: client.IAMEndpoint, Region: client.Region, Observer: e.apiMetrics, FetchFailures: e.fetchFailures,
	})
	if err != nil {
		return "", fmt.Errorf("resolving project_id for region %s: %w", client.Region, err)
	}
	return id, nil
}

// startResolver retries the resolution for client in the background until it succeeds,
// the exporter stops, or a reload replaces client. Owned by the reload goroutine.
func (e *exporter) startResolver(client clientConfig, credentials auth.Authenticator) {
	e.stopResolver()
	ctx, cancel := context.WithCancel(e.ctx)
	e.cancelResolve, e.resolving = cancel, client
	go e.resolveLoop(ctx, client, credentials)
}

// stopResolver ends the background resolver, if one runs.
func (e *exporter) stopResolver() {
	if e.cancelResolve != nil {
		e.cancelResolve()
		e.cancelResolve, e.resolving = nil, clientConfig{}
	}
}

func (e *exporter) resolveLoop(ctx context.Context, client clientConfig, credentials auth.Authenticator) {
	backoff := resolveBackoff
	for {
		if !e.waitOrChange(ctx, backoff, credentials) {
			return
		}
		id, err := e.resolveProject(ctx, client, credentials)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(2*backoff, maxResolveBackoff)
			level.Error(e.logger).Log("msg", "Still cannot resolve project_id; not ready", "retry_in", backoff, "err", err)
			continue
		}
		select {
		case e.resolved <- resolution{client: client, credentials: credentials, project: id}:
		case <-ctx.Done():
		}
		return
	}
}

// waitOrChange waits d by the exporter's clock, less if the credentials change from
// outside (a new generation). It returns false when ctx ends.
func (e *exporter) waitOrChange(ctx context.Context, d time.Duration, credentials auth.Authenticator) bool {
	v, versioned := credentials.(auth.Versioned)
	var gen uint64
	if versioned {
		gen = v.Generation()
	}
	for deadline := e.now().Add(d); e.now().Before(deadline); {
		select {
		case <-ctx.Done():
			return false
		case <-e.after(resolvePoll):
		}
		if versioned && v.Generation() != gen {
			level.Info(e.logger).Log("msg", "The credentials changed; resolving project_id again")
			return true
		}
	}
	return ctx.Err() == nil
}

// applyResolved makes the resolved project the running one, if the resolver's client
// config is still the one in force. Owned by the reload goroutine.
func (e *exporter) applyResolved(r resolution) {
	if e.pending == nil || !reflect.DeepEqual(r.client, e.resolving) {
		return // a reload replaced it meanwhile
	}
	level.Info(e.logger).Log("msg", "Resolved project_id", "region", r.client.Region, "project_id", r.project)
	e.resolvedFor, e.resolvedCredentials, e.resolvedProject = r.client, r.credentials, r.project
	cfg := e.pending
	e.stopResolver()
	if err := e.apply(cfg); err != nil {
		level.Error(e.logger).Log("msg", "Applying the resolved project_id failed", "err", err)
	}
}

// credentialsFor builds the credentials of client and finds its project: the one
// configured, the one a background resolver found for the same client config, or one
// attempt now. On failure it returns the credentials, for a resolver to go on with.
func (e *exporter) credentialsFor(cfg *config.Config, client clientConfig) (auth.Authenticator, string, error) {
	if e.resolvedCredentials != nil && reflect.DeepEqual(client, e.resolvedFor) {
		credentials, project := e.resolvedCredentials, e.resolvedProject
		e.resolvedCredentials, e.resolvedFor, e.resolvedProject = nil, clientConfig{}, ""
		return credentials, project, nil
	}
	credentials := e.credentials
	same := e.client
	same.Endpoint, same.Concurrency, same.Credentials.FailureBackoff = client.Endpoint, client.Concurrency, client.Credentials.FailureBackoff
	if credentials == nil || !reflect.DeepEqual(client, same) { // else the same credentials, scoped the same
		credentials = auth.New(cfg.Credentials, auth.Options{
			Now: e.now, Clock: e.clock, IAMEndpoint: client.IAMEndpoint, Region: cfg.Region, ProjectID: cfg.ProjectID,
			Observer: e.apiMetrics, FetchFailures: e.fetchFailures,
		})
	}
	if cfg.ProjectID != "" {
		return credentials, cfg.ProjectID, nil
	}
	id, err := e.resolveProject(e.ctx, client, credentials)
	if err != nil {
		return credentials, "", err
	}
	level.Info(e.logger).Log("msg", "Resolved project_id", "region", cfg.Region, "project_id", id)
	return credentials, id, nil
}
