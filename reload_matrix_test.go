package main

// The reload matrix: while a wrong key cools down, a reload that changes any config key
// but the credentials' source or values keeps the cool-down (no call goes out, the time
// left keeps counting down, and the next cool-down doubles); a change of the credentials
// ends it at once. The AK guard is keyed by the credentials' identity; the endpoint, the
// region, the rate, the concurrency and failure_backoff are not part of it.

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	matrixWrongSK = "matrix-wrong-secret-key"
	// matrixOtherAK is a second AK both simulators know; its SK is the wrong SK of the
	// first: a user who fixes the AK instead of the SK.
	matrixOtherAK = "MATRIXOTHERACCESSKEY"
	matrixToken   = "matrix-token-kept-fresh-elsewhere"
	// matrixBackoff is credentials.failure_backoff's default: the first cool-down.
	matrixBackoff = time.Minute
	// matrixElapsed is how far into the cool-down the reload comes.
	matrixElapsed = 20 * time.Second
)

// matrixConfig is a config file as three maps of YAML flow values, so that a case changes
// exactly one key.
type matrixConfig struct {
	top         map[string]string // top-level key -> YAML value
	credentials map[string]string // credentials.<key> -> YAML value
	scrape      map[string]string // scrape.<key> -> YAML value
}

func (c matrixConfig) clone() matrixConfig {
	return matrixConfig{top: maps.Clone(c.top), credentials: maps.Clone(c.credentials), scrape: maps.Clone(c.scrape)}
}

func (c matrixConfig) text() string {
	flow := func(m map[string]string) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, k+": "+m[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c.top)) {
		b.WriteString(k + ": " + c.top[k] + "\n")
	}
	b.WriteString("credentials: " + flow(c.credentials) + "\n")
	b.WriteString("scrape: " + flow(c.scrape) + "\n")
	return b.String()
}

// matrixRig is one exporter on a fake clock, with a wrong SK, and two simulators that
// know the same keys: the one it starts with and another endpoint.
type matrixRig struct {
	t            *testing.T
	clock        *testkit.Clock
	sims         []*simulator.Server
	url, url2    string
	skFile, path string
	e            *exporter
	h            http.Handler
	cfg          matrixConfig
}

func newMatrixRig(t *testing.T) *matrixRig {
	t.Helper()
	r := &matrixRig{t: t, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Second))}
	var urls []string
	for range 2 {
		sim := simulator.New(simulator.Options{
			Credentials: map[string]string{e2eAK: e2eSK, matrixOtherAK: matrixWrongSK},
			Tokens:      []string{matrixToken},
			ProjectID:   e2eProject,
			Now:         r.clock.Now,
		})
		for _, id := range []string{"t1", "t2"} {
			sim.SetTask(id, map[string]any{"task_id": id, "total_count": 5, "begin_time": 1744276967708})
		}
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		r.sims, urls = append(r.sims, sim), append(urls, srv.URL)
	}
	r.url, r.url2 = urls[0], urls[1]
	r.skFile = settledFile(t, filepath.Join(t.TempDir(), "sk"), matrixWrongSK)
	r.cfg = matrixConfig{
		top: map[string]string{
			"region": "cn-north-4", "project_id": e2eProject, "endpoint": r.url, "tasks": "[t1]",
		},
		credentials: map[string]string{"access_key": e2eAK, "secret_key_file": strconv.Quote(r.skFile)},
		scrape:      map[string]string{"timeout": "10s", "concurrency": "4"},
	}
	r.e, r.h, r.path, _ = startOps(t, r.cfg.text(), options{now: r.clock.Now})
	return r
}

// calls counts every request that reached either simulator.
func (r *matrixRig) calls() int64 {
	var n int64
	for _, sim := range r.sims {
		for _, op := range []string{simulator.OpShowTask, simulator.OpSearchTask, simulator.OpIAMToken,
			simulator.OpIAMProjects, simulator.OpMetadataToken, simulator.OpMetadataSecurityKey, simulator.OpOther} {
			n += sim.Requests(op)
		}
	}
	return n
}

// reload writes the changed config and reloads it.
func (r *matrixRig) reload(change func(*matrixConfig, *matrixRig)) {
	r.t.Helper()
	cfg := r.cfg.clone()
	change(&cfg, r)
	if err := os.WriteFile(r.path, []byte(cfg.text()), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := r.e.reloader.Reload(); err != nil {
		r.t.Fatalf("reload of\n%s: %v", cfg.text(), err)
	}
	r.cfg = cfg
}

// matrixScrape is what one /metrics answer says about the guard and t1.
type matrixScrape struct {
	backoff, authOK, t1 float64 // NaN when absent
}

func (s matrixScrape) String() string {
	return fmt.Sprintf("auth_backoff_seconds %g, auth_ok %g, t1 scrape_success %g", s.backoff, s.authOK, s.t1)
}

// scrape asks for /metrics; a scrape waits for the calls it asked for, so the simulators'
// counts are final when it returns.
func (r *matrixRig) scrape() matrixScrape {
	r.t.Helper()
	code, body := do(r.t, r.h, "GET", "/metrics")
	if code != http.StatusOK {
		r.t.Fatalf("/metrics answered %d: %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		r.t.Fatalf("exposition does not parse: %v", err)
	}
	gauge := func(name, taskID string) float64 {
		for _, m := range families[name].GetMetric() {
			if taskID == "" {
				return m.GetGauge().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "task_id" && l.GetValue() == taskID {
					return m.GetGauge().GetValue()
				}
			}
		}
		return math.NaN()
	}
	return matrixScrape{
		backoff: gauge("metastudio_auth_backoff_seconds", ""),
		authOK:  gauge("metastudio_auth_ok", ""),
		t1:      gauge("metastudio_task_scrape_success", "t1"),
	}
}

// TestReloadMatrix starts each case with a wrong SK: the first scrape's lone call is
// refused and the guard cools down for failure_backoff. 20 s in, the case rewrites the
// config file, changing one key, and reloads it.
//   - A key that is not the credentials' source or values: the next scrape makes no call
//     and shows the 40 s left; when they have passed, one call goes out, is refused, and
//     the next cool-down is twice the first (it goes on, not over from its base).
//   - A credential change: the next scrape's call goes out at once. New credentials that
//     are right are verified; wrong ones start a cool-down of their own, from its base.
func TestReloadMatrix(t *testing.T) {
	t.Parallel()
	set := func(m func(*matrixConfig) map[string]string, key, value string) func(*matrixConfig, *matrixRig) {
		return func(c *matrixConfig, _ *matrixRig) { m(c)[key] = value }
	}
	top := func(c *matrixConfig) map[string]string { return c.top }
	scrape := func(c *matrixConfig) map[string]string { return c.scrape }
	creds := func(c *matrixConfig) map[string]string { return c.credentials }
	for _, tc := range []struct {
		name   string
		change func(*matrixConfig, *matrixRig)
		resets bool // the credentials' source or values changed
		right  bool // ... to credentials the simulators accept
	}{
		{name: "scrape.concurrency", change: set(scrape, "concurrency", "8")},
		{name: "scrape.timeout", change: set(scrape, "timeout", "5s")},
		{name: "scrape.max_requests_per_second", change: set(scrape, "max_requests_per_second", "3")},
		{name: "scrape.min_requests_per_second", change: set(scrape, "min_requests_per_second", "0.5")},
		{name: "scrape.min_refresh_interval", change: set(scrape, "min_refresh_interval", "30s")},
		{name: "endpoint another server", change: func(c *matrixConfig, r *matrixRig) { c.top["endpoint"] = r.url2 }},
		{name: "endpoint spelled localhost", change: func(c *matrixConfig, r *matrixRig) {
			c.top["endpoint"] = strings.Replace(r.url, "127.0.0.1", "localhost", 1)
		}},
		{name: "iam_endpoint", change: func(c *matrixConfig, r *matrixRig) { c.top["iam_endpoint"] = r.url2 }},
		{name: "region", change: set(top, "region", "cn-east-3")},
		{name: "project_id", change: set(top, "project_id", "fedcba9876543210fedcba9876543210")},
		{name: "tasks", change: set(top, "tasks", "[t1, t2]")},
		{name: "status_names", change: set(top, "status_names", `{"0": pending}`)},
		{name: "cache.finished_ttl", change: set(top, "cache", "{finished_ttl: 1m}")},
		{name: "probe.allow_unlisted", change: set(top, "probe", "{allow_unlisted: true}")},
		{name: "discovery", change: set(top, "discovery", "{enabled: true, resources: [qa_pair], refresh_interval: 1h}")},
		{name: "allow_insecure_endpoint", change: set(top, "allow_insecure_endpoint", "true")},
		{name: "credentials.failure_backoff", change: set(creds, "failure_backoff", "30s")},

		{name: "secret_key_file content", resets: true, right: true, change: func(_ *matrixConfig, r *matrixRig) {
			settledFile(r.t, r.skFile, e2eSK) // rotated in place; the config file is unchanged
		}},
		{name: "secret_key_file path", resets: true, right: true, change: func(c *matrixConfig, r *matrixRig) {
			c.credentials["secret_key_file"] = strconv.Quote(settledFile(r.t, filepath.Join(r.t.TempDir(), "sk2"), e2eSK))
		}},
		{name: "secret_key inline", resets: true, right: true, change: func(c *matrixConfig, _ *matrixRig) {
			delete(c.credentials, "secret_key_file")
			c.credentials["secret_key"] = strconv.Quote(e2eSK)
		}},
		{name: "access_key", resets: true, right: true, change: set(creds, "access_key", matrixOtherAK)},
		{name: "security_token_file", resets: true, change: func(c *matrixConfig, r *matrixRig) {
			c.credentials["security_token_file"] = strconv.Quote(settledFile(r.t, filepath.Join(r.t.TempDir(), "token"), "a-security-token"))
		}},
		{name: "token_file", resets: true, right: true, change: func(c *matrixConfig, r *matrixRig) {
			c.credentials = map[string]string{"token_file": strconv.Quote(settledFile(r.t, filepath.Join(r.t.TempDir(), "token"), matrixToken))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newMatrixRig(t)
			first := r.scrape()
			if n := r.calls(); n != 1 || first.backoff != matrixBackoff.Seconds() || first.authOK != 0 {
				t.Fatalf("with a wrong SK: %d calls, %s; want 1 call, a cool-down of %s, auth_ok 0",
					n, first, matrixBackoff)
			}

			r.clock.Advance(matrixElapsed)
			r.reload(tc.change)
			after := r.scrape()
			left := (matrixBackoff - matrixElapsed).Seconds()

			if tc.resets {
				if n := r.calls(); n != 2 {
					t.Errorf("%d calls after the credentials changed, want 2: the cool-down ends at once and one call goes out", n)
				}
				switch {
				case tc.right && (after.backoff != 0 || after.authOK != 1 || after.t1 != 1):
					t.Errorf("the new credentials were not verified at once: %s; want no cool-down, auth_ok 1, t1 1", after)
				case !tc.right && after.backoff != matrixBackoff.Seconds():
					t.Errorf("the new (wrong) credentials: %s; want a cool-down of their own, from its base %s", after, matrixBackoff)
				}
				return
			}

			if n := r.calls(); n != 1 || after.backoff != left {
				t.Errorf("after the reload: %d calls, %s; want still 1 call and the cool-down going on with %gs left",
					n, after, left)
			}
			r.clock.Advance(matrixBackoff - matrixElapsed)
			next := r.scrape()
			if n := r.calls(); n != 2 || next.backoff != 2*matrixBackoff.Seconds() {
				t.Errorf("once the cool-down is over: %d calls, %s; want 2 calls and a cool-down of %s, twice the first",
					n, next, 2*matrixBackoff)
			}
		})
	}
}
