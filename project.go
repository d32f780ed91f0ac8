package main

// Start-up must not become a loop that locks the AK or the IAM user: a credential or
// project-resolution failure does not exit (systemd would restart the process every few
// seconds, and each start would try again). Nor does it hold up listening: the exporter
// serves at once, /-/ready answers 503, and project_id is resolved in the background
// under the same gates as every other call.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

const (
	// projectTimeout bounds one attempt to resolve project_id through IAM.
	projectTimeout = 30 * time.Second
	// resolveBackoff is the wait after the first failed attempt; it doubles up to
	// maxResolveBackoff. A wrong SK thus costs at most 2 signature failures in any
	// minute, and far fewer than the gateway's lock needs (6 in a row) in an hour. A
	// wrong password is gated by auth.IAMToken as well (2 attempts in 15 minutes).
	resolveBackoff    = time.Minute
	maxResolveBackoff = 16 * time.Minute
	// resolvePoll is how often a waiting resolver looks for new credentials (a rotated key
	// file, a new password file), which are tried at once.
	resolvePoll = 2 * time.Second
)

// errUnresolved is the error of every task while project_id is not resolved yet: no API
// call is made until it is.
var errUnresolved = &metastudio.APIError{Operation: metastudio.OpShowTask,
	Err: errors.New("project_id is not resolved yet (see the log): no API call is made until it is")}

// resolution is what a background resolution found, handed to the exporter.
type resolution struct {
	gen uint64 // which start it answers; a later start makes it stale
	clientState
}

// projectResolver finds project_id through IAM when the config leaves it out: once, for
// a reload, or in the background until it succeeds, for a config that must wait for it.
// It hands a background result to found, which takes it with take unless a later start
// or stop made it stale.
type projectResolver struct {
	ctx    context.Context // ends every resolution
	now    func() time.Time
	after  func(time.Duration) <-chan time.Time
	logger log.Logger
	iam    auth.Options // Now, Observer and FetchFailures; the rest comes from the client config
	found  func(resolution)

	mu      sync.Mutex
	gen     uint64             // counts the starts
	cancel  context.CancelFunc // ends the running resolution; nil when none runs
	client  clientConfig       // what the running resolution is for
	pending *config.Project    // the project config that waits for it
	lastErr error              // why the running resolution has no result yet
}

// newProjectResolver is a resolver that hands its background results to found. iam gives
// the clock and the observers of IAM calls.
func newProjectResolver(ctx context.Context, o options, iam auth.Options, found func(resolution)) *projectResolver {
	return &projectResolver{ctx: ctx, now: o.now, after: o.after, logger: o.logger, iam: iam, found: found}
}

// resolve makes one attempt to resolve project_id for client, bounded by projectTimeout,
// through gate: the guard's Do (the IAM call counts toward the credentials' cool-down like
// an API call, and none is made during one) or Try (a reload's one attempt).
func (p *projectResolver) resolve(ctx context.Context, client clientConfig, credentials auth.Authenticator, gate func(context.Context, func(context.Context) error) error) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, projectTimeout)
	defer cancel()
	o := p.iam
	o.IAMEndpoint, o.Region = client.IAMEndpoint, client.Region
	var id string
	err := gate(ctx, func(ctx context.Context) (err error) {
		id, err = auth.ResolveProject(ctx, credentials, o)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("resolving project_id for region %s: %w", client.Region, err)
	}
	level.Info(p.logger).Log("msg", "Resolved project_id", "region", client.Region, "project_id", id)
	return id, nil
}

// start resolves project_id for cfg's client in the background, in place of any
// resolution that runs: at once, then after resolveBackoff, doubling up to
// maxResolveBackoff, and at once when the credentials change from outside.
func (p *projectResolver) start(pc *config.Project, client clientConfig, credentials auth.Authenticator, guard *refresh.Guard) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
	ctx, cancel := context.WithCancel(p.ctx)
	p.gen++
	p.cancel, p.client, p.pending, p.lastErr = cancel, client, pc, nil
	go p.loop(ctx, p.gen, client, credentials, guard)
}

// following reports whether a resolution runs for the same client config: it can go on,
// under the same gates.
func (p *projectResolver) following(client clientConfig) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cancel != nil && reflect.DeepEqual(client, p.client)
}

// follow makes pc the project config that waits for the running resolution, if that is
// for the same client config.
func (p *projectResolver) follow(pc *config.Project, client clientConfig) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil && reflect.DeepEqual(client, p.client) {
		p.pending = pc
	}
}

// take ends the resolution that r answers and returns the project config that waited
// for it, or nil when r is stale.
func (p *projectResolver) take(r resolution) *config.Project {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel == nil || r.gen != p.gen {
		return nil
	}
	cfg := p.pending
	p.stopLocked()
	return cfg
}

// stop ends the running resolution, if any; a result it may still hand over is stale.
func (p *projectResolver) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

func (p *projectResolver) stopLocked() {
	if p.cancel != nil {
		p.cancel()
		p.cancel, p.client, p.pending, p.lastErr = nil, clientConfig{}, nil, nil
	}
}

// reason says why the exporter is not ready while a resolution runs.
func (p *projectResolver) reason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.cancel == nil:
		return "project_id is not resolved (see the log)"
	case p.lastErr == nil:
		return "project_id is being resolved through IAM"
	}
	return "project_id is not resolved yet, trying again in the background: " + p.lastErr.Error()
}

func (p *projectResolver) loop(ctx context.Context, gen uint64, client clientConfig, credentials auth.Authenticator, guard *refresh.Guard) {
	backoff := resolveBackoff
	for {
		id, err := p.resolve(ctx, client, credentials, guard.Do)
		if err == nil {
			p.found(resolution{gen, clientState{client, credentials, id}})
			return
		}
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		if gen == p.gen {
			p.lastErr = err
		}
		p.mu.Unlock()
		level.Error(p.logger).Log("msg", "Cannot resolve project_id; not ready, trying again in the background",
			"retry_in", backoff, "err", err)
		if !p.waitOrChange(ctx, backoff, credentials) {
			return
		}
		backoff = min(2*backoff, maxResolveBackoff)
	}
}

// waitOrChange waits d by the exporter's clock, less if the credentials change from
// outside (a new generation). It returns false when ctx ends.
func (p *projectResolver) waitOrChange(ctx context.Context, d time.Duration, credentials auth.Authenticator) bool {
	v, versioned := credentials.(auth.Versioned)
	var gen uint64
	if versioned {
		gen = v.Generation()
	}
	for deadline := p.now().Add(d); p.now().Before(deadline); {
		select {
		case <-ctx.Done():
			return false
		case <-p.after(resolvePoll):
		}
		if versioned && v.Generation() != gen {
			level.Info(p.logger).Log("msg", "The credentials changed; resolving project_id again")
			return true
		}
	}
	return ctx.Err() == nil
}
