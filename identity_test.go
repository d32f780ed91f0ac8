package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

func TestIdentityOf(t *testing.T) {
	for _, tc := range []struct {
		a, b config.Credentials
		same bool
	}{
		{config.Credentials{AccessKey: "AK1", SecretKey: "s1"}, config.Credentials{AccessKey: "AK1", SecretKey: "s2"}, true},
		{config.Credentials{AccessKey: "AK1"}, config.Credentials{AccessKey: "AK2"}, false},
		{config.Credentials{AccessKeyFile: "/a"}, config.Credentials{AccessKeyFile: "/b"}, false},
		{config.Credentials{TokenFile: "/t"}, config.Credentials{TokenFile: "/t", FailureBackoff: time.Hour}, true},
		{config.Credentials{TokenFile: "/t"}, config.Credentials{TokenFile: "/u"}, false},
		{config.Credentials{IAMPassword: &config.IAMPassword{DomainName: "d", UserName: "u", PasswordFile: "/p"}},
			config.Credentials{IAMPassword: &config.IAMPassword{DomainName: "d", UserName: "u", PasswordFile: "/q"}}, true},
		{config.Credentials{IAMPassword: &config.IAMPassword{DomainName: "d", UserName: "u"}},
			config.Credentials{IAMPassword: &config.IAMPassword{DomainName: "d", UserName: "v"}}, false},
		{config.Credentials{ECSMetadata: &config.ECSMetadata{Endpoint: "http://169.254.169.254"}},
			config.Credentials{ECSMetadata: &config.ECSMetadata{Endpoint: "http://169.254.169.254"}}, true},
	} {
		if got := identityOf(tc.a) == identityOf(tc.b); got != tc.same {
			t.Errorf("identityOf(%+v) == identityOf(%+v) is %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// TestSharedState: one guard per identity, one rate per identity and host, one clock per
// host; what remains in use survives a sweep, the rest is dropped.
func TestSharedState(t *testing.T) {
	s := newShared(time.Now, log.NewNopLogger())
	sc := config.Scrape{MaxRequestsPerSecond: 10, Concurrency: 4}
	c1, c2 := s.clock("a.example"), s.clock("b.example")
	if c1 == c2 || s.clock("a.example") != c1 {
		t.Error("want one clock per host")
	}
	g1 := s.guard("access_key:AK1", time.Minute, c1)
	if s.guard("access_key:AK1", time.Hour, c2) != g1 || s.guard("access_key:AK2", time.Minute, c1) == g1 {
		t.Error("want one guard per identity")
	}
	r1 := s.rate("access_key:AK1", "a.example", sc)
	if s.rate("access_key:AK1", "a.example", sc) != r1 || s.rate("access_key:AK1", "b.example", sc) == r1 ||
		s.rate("access_key:AK2", "a.example", sc) == r1 {
		t.Error("want one rate per identity and host")
	}
	p1 := s.transport("a.example", 4)
	if s.transport("a.example", 4) != p1 || s.transport("b.example", 4) == p1 || s.transport("a.example", 8) == p1 {
		t.Error("want one connection pool per host and concurrency")
	}
	s.sweep(g1, r1, c1, p1)
	if len(s.guards) != 1 || len(s.rates) != 1 || len(s.clocks) != 1 || len(s.pools) != 1 {
		t.Fatalf("after a sweep: %d guards, %d rates, %d clocks, %d pools; want 1 of each", len(s.guards), len(s.rates), len(s.clocks), len(s.pools))
	}
	if s.guard("access_key:AK1", time.Minute, c1) != g1 || s.rate("access_key:AK1", "a.example", sc) != r1 || s.clock("a.example") != c1 {
		t.Error("a sweep dropped what is in use")
	}
	if s.guard("access_key:AK2", time.Minute, c1) == nil || len(s.guards) != 2 {
		t.Error("a dropped identity gets a new guard")
	}
}

// TestProjectResolved: /-/ready names the unresolved project, and
// metastudio_project_resolved shows it 0, then 1 once a project_id is known.
func TestProjectResolved(t *testing.T) {
	_, url := startSimulator(t)
	logs := &testkit.Buffer{}
	creds := "  access_key: " + e2eAK + "\n  secret_key: wrong-" + e2eSK + "\n"
	unresolved, err := exporterWith(t, url, "", creds, logs, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	waitReadiness(t, func() (int, string) { return do(t, unresolved, "GET", "/-/ready") },
		http.StatusServiceUnavailable, "unresolved: project default: ")
	if out := scrapeText(t, unresolved); !strings.Contains(out, `metastudio_project_resolved{project="default"} 0`) {
		t.Errorf("unresolved project:\n%s", out)
	}
	resolved, err := exporterWith(t, url, e2eProject, creds, logs, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if out := scrapeText(t, resolved); !strings.Contains(out, `metastudio_project_resolved{project="default"} 1`) {
		t.Errorf("resolved project:\n%s", out)
	}
}
