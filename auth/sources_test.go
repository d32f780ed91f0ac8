package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	simDomain   = "acme"
	simUser     = "exporter"
	simPassword = "iam-password-that-must-stay-secret"
	simProject  = "0123456789abcdef0123456789abcdef"
)

// newFakeClock is the clock of these tests, shared by the credentials and the simulator.
func newFakeClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
}

// iamSim serves the simulator with one IAM user; wrap may wrap its handler.
func iamSim(t *testing.T, o simulator.Options, wrap func(http.Handler) http.Handler) (*simulator.Server, string) {
	t.Helper()
	o.IAMUsers = []simulator.IAMUser{{Domain: simDomain, User: simUser, Password: simPassword}}
	o.ProjectID = simProject
	sim := simulator.New(o)
	sim.SetTask("t1", map[string]any{"task_id": "t1"})
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// passwordFile writes a password file that has settled (its time is in the past).
func passwordFile(t *testing.T, path, password string) string {
	t.Helper()
	write(t, path, password+"\n")
	past := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
	return path
}

func iamCredentials(t *testing.T, url, password string, o Options) (*IAMToken, string) {
	t.Helper()
	path := passwordFile(t, filepath.Join(t.TempDir(), "password"), password)
	o.IAMEndpoint, o.Region, o.ProjectID = url, "cn-north-4", simProject
	return New(config.Credentials{IAMPassword: &config.IAMPassword{DomainName: simDomain, UserName: simUser, PasswordFile: path}}, o).(*IAMToken), path
}

// showTask calls ShowTask of t1 with a, and returns the status and the body.
func showTask(t *testing.T, a Authenticator, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/v2/"+simProject+"/ies/task/t1", nil)
	req.Header.Set(HeaderProjectID, simProject)
	if err := a.Authenticate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// TestRevokedTokenRefresh: the API refuses a revoked token as Huawei's gateway does
// ("decrypt token fail", nothing about expiry); Refresh gets exactly one new token, and
// the generation stays: the exporter's own refresh is no outside change.
func TestRevokedTokenRefresh(t *testing.T) {
	sim, url := iamSim(t, simulator.Options{}, nil)
	tok, _ := iamCredentials(t, url, simPassword, Options{})
	if code, body := showTask(t, tok, url); code != 200 {
		t.Fatalf("with a fresh token: %d %s", code, body)
	}
	gen := tok.Generation()
	sim.RevokeTokens()
	if code, body := showTask(t, tok, url); code != 401 || !strings.Contains(body, "decrypt token fail") {
		t.Fatalf("with a revoked token: %d %s", code, body)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 1 {
		t.Fatalf("%d token requests before Refresh, want 1: the token is cached", n)
	}
	if err := tok.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 2 {
		t.Errorf("%d token requests after one Refresh, want 2", n)
	}
	if code, body := showTask(t, tok, url); code != 200 {
		t.Errorf("after Refresh: %d %s", code, body)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 2 {
		t.Errorf("%d token requests, want 2: the new token is cached", n)
	}
	if tok.Generation() != gen {
		t.Error("Refresh changed the generation: the AK guard would take it for new credentials")
	}
}

// TestRefreshesShareOneFetch: while a fetch runs, every caller joins it.
func TestRefreshesShareOneFetch(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	sim, url := iamSim(t, simulator.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v3/auth/tokens" {
				arrived <- struct{}{}
				<-release
			}
			h.ServeHTTP(w, r)
		})
	})
	tok, _ := iamCredentials(t, url, simPassword, Options{})
	errs := make(chan error, 5)
	go func() { errs <- tok.Refresh(context.Background()) }()
	<-arrived // the fetch is in flight, held by the handler
	for range 4 {
		go func() { errs <- tok.Refresh(context.Background()) }()
	}
	// Every caller joins the call in flight: start hands out the same one.
	tok.flight.mu.Lock()
	running := tok.flight.current
	tok.flight.mu.Unlock()
	if running == nil || tok.flight.start(func() error { t.Error("a second fetch started"); return nil }) != running {
		t.Fatal("a caller did not join the fetch in flight")
	}
	close(release)
	for range 5 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := sim.Requests(simulator.OpIAMToken); n > 2 {
		t.Errorf("%d token requests for 5 concurrent Refresh calls", n)
	}
}

// TestSlowIAM: IAM answers after 300 ms, callers wait 200 ms. The first caller gives up,
// the fetch goes on, and once IAM has answered the next call has the token. Nothing is a
// rejection, and nothing counts as a fetch failure.
func TestSlowIAM(t *testing.T) {
	sim, url := iamSim(t, simulator.Options{Latency: 300 * time.Millisecond}, nil)
	failures := NewFetchFailures()
	tok, _ := iamCredentials(t, url, simPassword, Options{FetchFailures: failures})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequest("GET", url+"/v2/p/ies/task/t1", nil)
	err := tok.Authenticate(ctx, req, nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrRejected) {
		t.Fatalf("a caller whose deadline passes: %v, want a deadline that is no rejection", err)
	}
	// Wait for the fetch the caller left behind (not for a guessed time).
	tok.flight.mu.Lock()
	running := tok.flight.current
	tok.flight.mu.Unlock()
	if running != nil {
		<-running.done
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := tok.Authenticate(ctx2, req, nil); err != nil || req.Header.Get(HeaderAuthToken) == "" {
		t.Fatalf("the call after IAM answered: %v", err)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if n := totalFailures(failures); n != 0 {
		t.Errorf("%g fetch failures counted for a slow but good IAM", n)
	}
}

// TestWrongPasswordGate: IAM locks a user after 5 wrong passwords in 15 minutes. After a
// refusal, one more attempt goes out in the next 15 minutes, however often it is asked;
// a fixed password file is tried at once.
func TestWrongPasswordGate(t *testing.T) {
	clock := newFakeClock()
	sim, url := iamSim(t, simulator.Options{Now: clock.Now}, nil)
	tok, path := iamCredentials(t, url, "wrong-"+simPassword, Options{Now: clock.Now})
	gen := tok.Generation()
	req, _ := http.NewRequest("GET", url+"/v2/p/ies/task/t1", nil)
	for i := 0; i < 15; i++ { // a call per simulated minute
		err := tok.Authenticate(context.Background(), req, nil)
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("minute %d: %v, want a rejection", i, err)
		}
		if strings.Contains(err.Error(), simPassword) {
			t.Fatalf("the error shows the password: %v", err)
		}
		if err := tok.Refresh(context.Background()); !errors.Is(err, ErrRejected) {
			t.Fatalf("Refresh at minute %d: %v", i, err)
		}
		clock.Advance(time.Minute)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 2 {
		t.Errorf("%d IAM calls with a wrong password in 15 minutes, want 2", n)
	}
	req2, _ := http.NewRequest("GET", url+"/v2/p/ies/task/t1", nil)
	err := tok.Authenticate(context.Background(), req2, nil)
	if n := sim.Requests(simulator.OpIAMToken); n != 3 || !errors.Is(err, ErrRejected) {
		t.Errorf("15 minutes after the first refusal: %d IAM calls (%v), want the third", n, err)
	}
	if tok.Generation() != gen {
		t.Error("the generation moved without a new password")
	}
	passwordFile(t, path, simPassword) // the user fixes the file; it has settled
	if code, body := showTask(t, tok, url); code != 200 {
		t.Fatalf("with the fixed password: %d %s", code, body)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 4 {
		t.Errorf("%d IAM calls, want 4: the fixed password is tried at once", n)
	}
	if tok.Generation() == gen {
		t.Error("a new password file must change the generation")
	}
}

// TestFetchFailures: a 5xx, a refused connection and a timeout of IAM or the metadata
// service are counted by reason, and are no rejection.
func TestFetchFailures(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	answer := func(status int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if status == 0 {
				_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client leave
				select {                           // until the client gives up
				case <-hold:
				case <-r.Context().Done():
				}
				return
			}
			http.Error(w, "unavailable", status)
		})
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tc := range []struct {
		name, source, reason string
		handler              http.Handler // nil: nothing listens
	}{
		{"IAM 503", SourceIAM, ReasonServer, answer(503)},
		{"IAM refused connection", SourceIAM, ReasonNetwork, nil},
		{"IAM timeout", SourceIAM, ReasonTimeout, answer(0)},
		{"metadata 500", SourceMetadata, ReasonServer, answer(500)},
		{"metadata timeout", SourceMetadata, ReasonTimeout, answer(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := closedURL
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				defer srv.Close()
				url = srv.URL
			}
			failures := NewFetchFailures()
			o := Options{FetchFailures: failures, IAMEndpoint: url, Region: "cn-north-4"}
			var a Authenticator
			if tc.source == SourceIAM {
				tok, _ := iamCredentials(t, url, simPassword, o)
				tok.client.Timeout = 50 * time.Millisecond // the test's stand-in for 30 s
				a = tok
			} else {
				m := New(config.Credentials{ECSMetadata: &config.ECSMetadata{Endpoint: url}}, o).(*Metadata)
				m.client.Timeout = 50 * time.Millisecond
				a = m
			}
			req, _ := http.NewRequest("GET", "https://h.example.com/", nil)
			err := a.Authenticate(context.Background(), req, nil)
			if err == nil || errors.Is(err, ErrRejected) {
				t.Fatalf("want a failure that is no rejection, got %v", err)
			}
			if n := testutil.ToFloat64(failures.counter.WithLabelValues(tc.source, tc.reason)); n != 1 {
				t.Errorf("metastudio_credential_fetch_failures_total{source=%q,reason=%q} = %g, want 1 (%v)", tc.source, tc.reason, n, err)
			}
		})
	}
}

// TestGenerationOnlyOnOutsideChange: temporary keys renewed or refreshed by the exporter
// are no new generation (Metadata is not Versioned); a token file's is, and Refresh of a
// token file reads it again.
func TestGenerationOnlyOnOutsideChange(t *testing.T) {
	if _, ok := any(&Metadata{}).(Versioned); ok {
		t.Error("Metadata implements Versioned: its own refreshes would reset the AK guard")
	}
	path := filepath.Join(t.TempDir(), "token")
	write(t, path, "token-one")
	ta := New(config.Credentials{TokenFile: path}, Options{}).(*TokenAuth)
	ta.token.settle = 0
	gen := ta.Generation()
	if err := ta.Refresh(context.Background()); err != nil || ta.Generation() != gen {
		t.Errorf("Refresh with the same file: %v, generation %d -> %d", err, gen, ta.Generation())
	}
	// A new token written within the same second and with the same size has the same
	// stat: only Refresh notices it.
	info, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte("token-two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := ta.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://h.example.com/", nil)
	if err := ta.Authenticate(context.Background(), req, nil); err != nil || req.Header.Get(HeaderAuthToken) != "token-two" {
		t.Errorf("after Refresh: %q (%v), want the file's new token", req.Header.Get(HeaderAuthToken), err)
	}
	if ta.Generation() == gen {
		t.Error("a new token in the file must change the generation")
	}
}

// TestMetadataRefresh: Refresh discards the refused temporary keys and fetches new ones.
func TestMetadataRefresh(t *testing.T) {
	sim, url := iamSim(t, simulator.Options{Metadata: &simulator.MetadataOptions{SessionTokens: true}}, nil)
	m := New(config.Credentials{ECSMetadata: &config.ECSMetadata{Endpoint: url}}, Options{}).(*Metadata)
	if code, body := showTask(t, m, url); code != 200 {
		t.Fatalf("with temporary keys: %d %s", code, body)
	}
	sim.ExpireCredentials()
	if code, body := showTask(t, m, url); code != 401 || !strings.Contains(body, "ak not exist") {
		t.Fatalf("with expired temporary keys: %d %s", code, body)
	}
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := showTask(t, m, url); code != 200 {
		t.Errorf("after Refresh: %d %s", code, body)
	}
	if n := sim.IssuedCredentials(); n != 2 {
		t.Errorf("%d temporary keys issued, want 2", n)
	}
}

// TestResolveProjectRefusal: a wrong SK on IAM's project lookup is a rejection.
func TestResolveProjectRefusal(t *testing.T) {
	_, url := iamSim(t, simulator.Options{Credentials: map[string]string{"AK": "SK"}}, nil)
	o := Options{IAMEndpoint: url, Region: "cn-north-4"}
	if id, err := ResolveProject(context.Background(), NewSigner(Keys{AccessKey: "AK", SecretKey: "SK"}, time.Now), o); err != nil || id != simProject {
		t.Fatalf("resolve: %q %v", id, err)
	}
	_, err := ResolveProject(context.Background(), NewSigner(Keys{AccessKey: "AK", SecretKey: "wrong"}, time.Now), o)
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "verify aksk signature fail") {
		t.Errorf("a wrong SK: %v, want a rejection with the gateway's message", err)
	}
}

// TestResolveProjectFromToken: with an IAM password the project is the one the token is
// scoped to, with no project lookup; a token that names no project is an error.
func TestResolveProjectFromToken(t *testing.T) {
	sim, url := iamSim(t, simulator.Options{}, nil)
	tok, _ := iamCredentials(t, url, simPassword, Options{})
	if id, err := ResolveProject(context.Background(), tok, Options{}); err != nil || id != simProject {
		t.Fatalf("resolve: %q %v, want %s", id, err, simProject)
	}
	if n := sim.Requests(simulator.OpIAMProjects); n != 0 {
		t.Errorf("%d project lookups, want 0: the token names the project", n)
	}

	unscoped := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Subject-Token", "token-without-project")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"token":{"expires_at":"2099-01-01T00:00:00.000000Z"}}`)
		})
	}
	_, url = iamSim(t, simulator.Options{}, unscoped)
	tok, _ = iamCredentials(t, url, simPassword, Options{})
	if id, err := ResolveProject(context.Background(), tok, Options{}); err == nil || id != "" ||
		err.Error() != "IAM's token names no project" {
		t.Errorf("resolve with a token of no project: %q %v", id, err)
	}
}

func totalFailures(f *FetchFailures) float64 {
	total := 0.0
	for _, s := range []string{SourceIAM, SourceMetadata} {
		for _, r := range []string{ReasonTimeout, ReasonNetwork, ReasonServer} {
			total += testutil.ToFloat64(f.counter.WithLabelValues(s, r))
		}
	}
	return total
}

// TestTransports: every IAM call shares one keep-alive pool (ResolveProject used to build
// a transport per call); the metadata service is reached directly, and idle connections
// to it are closed.
func TestTransports(t *testing.T) {
	if newClient(nil, iamTimeout).Transport != newClient(nil, iamTimeout).Transport {
		t.Error("two IAM clients have two transports")
	}
	m := New(config.Credentials{ECSMetadata: &config.ECSMetadata{Endpoint: "http://169.254.169.254"}}, Options{}).(*Metadata)
	tr := m.client.Transport.(*http.Transport)
	if tr.Proxy != nil || tr.IdleConnTimeout <= 0 || m.client.Timeout != metadataTimeout {
		t.Errorf("metadata transport: proxy set %v, idle timeout %s, client timeout %s", tr.Proxy != nil, tr.IdleConnTimeout, m.client.Timeout)
	}
}

// TestInheritCarriesThePasswordGate: a reload that rebuilds the IAM token source for the
// same user and password (a new IAM endpoint or region) keeps IAM's refusals, so the gate
// stays shut; a new password opens it.
func TestInheritCarriesThePasswordGate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	same := &config.IAMPassword{DomainName: "d", UserName: "u", Password: "the-password"}
	prev := newIAMToken(same, Options{Now: clock, IAMEndpoint: "https://iam.cn-north-4.example"})
	_, gen, err := prev.password.get()
	if err != nil {
		t.Fatal(err)
	}
	prev.refusedGen, prev.refusals, prev.refusal = gen, []time.Time{now, now}, "refused"
	if prev.gate(gen) == nil {
		t.Fatal("two refusals must shut the gate")
	}
	for _, tc := range []struct {
		name string
		pw   config.Secret
		shut bool
	}{
		{"same password", "the-password", true},
		{"new password", "a-new-password", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := newIAMToken(&config.IAMPassword{DomainName: "d", UserName: "u", Password: tc.pw},
				Options{Now: clock, IAMEndpoint: "https://iam.cn-east-3.example"})
			Inherit(next, prev)
			_, ngen, _ := next.password.get()
			if shut := next.gate(ngen) != nil; shut != tc.shut {
				t.Errorf("gate shut %v after the reload, want %v", shut, tc.shut)
			}
		})
	}
}
