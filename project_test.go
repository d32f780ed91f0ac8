package main

// The project resolver's hand-over: a result reaches the exporter only for the
// resolution that runs, with the config that waits for it last.

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

func TestResolverHandsOverOnlyTheCurrentResolution(t *testing.T) {
	// The resolver's context has ended: its goroutines stop at once, and the test hands
	// it the results itself.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := newProjectResolver(ctx, options{now: time.Now, after: time.After, logger: log.NewNopLogger()}, auth.Options{},
		func(resolution) { t.Error("a resolution whose context ended handed over a result") })
	credentials := auth.New(config.Credentials{AccessKey: "AK", SecretKey: "SK"}, auth.Options{Now: time.Now})
	guard := refresh.NewGuard(time.Minute, credentials, time.Now, log.NewNopLogger())
	a, b := clientConfig{Region: "cn-north-4"}, clientConfig{Region: "cn-east-3"}
	cfgA, cfgA2, cfgB := &config.Project{Region: "a"}, &config.Project{Region: "a2"}, &config.Project{Region: "b"}

	if cfg := p.take(resolution{gen: 0}); cfg != nil {
		t.Errorf("a result taken with no resolution running: %v", cfg.Region)
	}
	p.start(cfgA, a, credentials, guard)
	first := resolution{gen: p.gen}
	if p.following(b) {
		t.Error("a config of another client follows the running resolution")
	}
	if p.follow(cfgB, b); !p.following(a) {
		t.Error("a config of the same client does not follow the running resolution")
	}
	p.follow(cfgA2, a)
	if cfg := p.take(first); cfg != cfgA2 {
		t.Errorf("take gave %v, want the config that followed last", cfg)
	}
	if cfg := p.take(first); cfg != nil {
		t.Error("a result was taken twice")
	}

	p.start(cfgA, a, credentials, guard)
	replaced := resolution{gen: p.gen}
	p.start(cfgB, b, credentials, guard)
	if cfg := p.take(replaced); cfg != nil {
		t.Error("the result of a replaced resolution was taken")
	}
	p.stop()
	if cfg := p.take(resolution{gen: p.gen}); cfg != nil {
		t.Error("the result of a stopped resolution was taken")
	}
	if p.following(b) {
		t.Error("a config follows a stopped resolution")
	}
}
