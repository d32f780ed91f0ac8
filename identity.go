package main

import (
	"net/http"
	"net/url"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// identityOf names the credential identity that the gateway counts failures against: the
// AK for AK/SK (or the AK file, whose key may rotate), the metadata endpoint for ECS
// metadata (the AK it hands out is not known before a fetch), the IAM domain and user
// for a password, and the file for a token. Projects of one identity share its guard.
func identityOf(c config.Credentials) string {
	switch {
	case c.TokenFile != "":
		return "token_file:" + c.TokenFile
	case c.IAMPassword != nil:
		return "iam_password:" + c.IAMPassword.DomainName + "/" + c.IAMPassword.UserName
	case c.ECSMetadata != nil:
		return "ecs_metadata:" + c.ECSMetadata.Endpoint
	case c.AccessKey != "":
		return "access_key:" + c.AccessKey
	}
	return "access_key_file:" + c.AccessKeyFile
}

// hostOf is the host (and port) of an endpoint URL, which keys its clock and rates.
func hostOf(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}

// rateKey is what one adaptive rate paces: the calls of one identity to one API host.
type rateKey struct{ identity, host string }

// transportKey is what one connection pool serves: one API host, with as many
// connections as the refresher's workers (scrape.concurrency), which every project shares.
type transportKey struct {
	host  string
	conns int
}

// shared keeps the state that projects share and reloads keep: one guard per credential
// identity, one rate per identity and API host, one clock and one connection pool per API
// host. A reload asks for
// what its projects use (guard, rate, clock); once it is in force, sweep drops the rest.
type shared struct {
	now    func() time.Time
	logger log.Logger
	guards map[string]*refresh.Guard
	rates  map[rateKey]*refresh.Rate
	clocks map[string]*auth.Clock
	pools  map[transportKey]*http.Transport
}

func newShared(now func() time.Time, logger log.Logger) *shared {
	return &shared{now: now, logger: logger, guards: map[string]*refresh.Guard{},
		rates: map[rateKey]*refresh.Rate{}, clocks: map[string]*auth.Clock{}, pools: map[transportKey]*http.Transport{}}
}

// clock returns the clock of host, made on first use.
func (s *shared) clock(host string) *auth.Clock {
	c, ok := s.clocks[host]
	if !ok {
		c = auth.NewClock(s.now)
		s.clocks[host] = c
	}
	return c
}

// guard returns the guard of identity, made on first use with the clock c (the clock of
// the first host it signs for).
func (s *shared) guard(identity string, backoff time.Duration, c *auth.Clock) *refresh.Guard {
	g, ok := s.guards[identity]
	if !ok {
		g = refresh.NewGuard(backoff, nil, s.now, s.logger)
		g.SetClock(c)
		s.guards[identity] = g
	}
	return g
}

// rate returns the rate of identity at host, made on first use with sc's settings
// (max_requests_per_second is the ceiling of each rate); a reload configures the rates it
// keeps once it is in force.
func (s *shared) rate(identity, host string, sc config.Scrape) *refresh.Rate {
	k := rateKey{identity, host}
	r, ok := s.rates[k]
	if !ok {
		r = refresh.NewRate(sc.MaxRequestsPerSecond, sc.MinRequestsPerSecond, sc.Concurrency, s.now)
		s.rates[k] = r
	}
	return r
}

// transport returns the connection pool of host for conns workers, made on first use.
func (s *shared) transport(host string, conns int) *http.Transport {
	k := transportKey{host, conns}
	t, ok := s.pools[k]
	if !ok {
		t = metastudio.NewTransport(conns)
		s.pools[k] = t
	}
	return t
}

// sweep drops what no project uses: every guard, rate, clock and pool but those in inUse.
func (s *shared) sweep(inUse ...any) {
	used := map[any]bool{}
	for _, x := range inUse {
		used[x] = true
	}
	for k, g := range s.guards {
		if !used[g] {
			delete(s.guards, k)
		}
	}
	for k, r := range s.rates {
		if !used[r] {
			delete(s.rates, k)
		}
	}
	for k, c := range s.clocks {
		if !used[c] {
			delete(s.clocks, k)
		}
	}
	for k, t := range s.pools {
		if !used[t] {
			t.CloseIdleConnections()
			delete(s.pools, k)
		}
	}
}

// projectMetrics shows the state one project uses under its project label: the same
// guard, rate or clock shows under each project that uses it.
type projectMetrics struct {
	reg        *collector.Set
	registered map[prometheus.Collector]prometheus.Collector // the state -> its labelled wrapper
}

// show makes cs what the project named name shows, replacing what it showed before.
func (m *projectMetrics) show(name string, cs ...prometheus.Collector) {
	next := map[prometheus.Collector]prometheus.Collector{}
	for _, c := range cs {
		if w, ok := m.registered[c]; ok {
			next[c] = w
			delete(m.registered, c)
			continue
		}
		w := prometheus.WrapCollectorWith(prometheus.Labels{"project": name}, c)
		m.reg.MustRegister(w)
		next[c] = w
	}
	m.hide()
	m.registered = next
}

// hide removes everything the project shows.
func (m *projectMetrics) hide() {
	for _, w := range m.registered {
		m.reg.Unregister(w)
	}
	m.registered = nil
}
