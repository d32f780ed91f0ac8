package main

// End to end, each credential source against the simulator playing MetaStudio, IAM and
// the metadata service at once, and the AK guard against the simulator's AK lock.

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	iamDomain   = "acme"
	iamUser     = "exporter"
	iamPassword = "iam-password-that-must-stay-secret"
)

// credSim serves a simulator with one IAM user and the metadata service, and a task t1.
func credSim(t *testing.T, o simulator.Options) (*simulator.Server, string) {
	t.Helper()
	o.Credentials = map[string]string{e2eAK: e2eSK}
	o.ProjectID = e2eProject
	o.IAMUsers = []simulator.IAMUser{{Domain: iamDomain, User: iamUser, Password: iamPassword}}
	sim := simulator.New(o)
	sim.SetTask("t1", map[string]any{"task_id": "t1", "total_count": 5, "success_count": 5, "failure_count": 0})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// exporterWith builds the exporter for a config whose credentials section is creds; the
// simulator plays every endpoint. project may be empty, to be resolved.
func exporterWith(t *testing.T, url, project, creds string, logs *testkit.Buffer, now func() time.Time) (http.Handler, error) {
	t.Helper()
	text := "region: cn-north-4\nendpoint: " + url + "\niam_endpoint: " + url + "\ntasks: [t1]\ncredentials:\n" + creds
	if project != "" {
		text += "project_id: " + project + "\n"
	}
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return newHandler(t.Context(), cfg, "/metrics", log.NewLogfmtLogger(logs), now)
}

func scrapeText(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func secretFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noSecrets fails if any secret appears in anything the exporter wrote.
func noSecrets(t *testing.T, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, secret := range []string{e2eSK, iamPassword} {
			if strings.Contains(out, secret) {
				t.Errorf("a secret appears in the exporter's output:\n%s", out)
			}
		}
	}
}

func TestIAMPasswordSource(t *testing.T) {
	sim, url := credSim(t, simulator.Options{})
	logs := &testkit.Buffer{}
	creds := "  iam_password: {domain_name: " + iamDomain + ", user_name: " + iamUser + ", password_file: " + secretFile(t, iamPassword) + "}\n"
	h, err := exporterWith(t, url, "", creds, logs, time.Now) // project_id from the token's scope
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, h) // the project is resolved in the background
	first := scrapeText(t, h)
	if !strings.Contains(first, `metastudio_task_items{project="default",task_id="t1"} 5`) || !strings.Contains(first, `metastudio_auth_ok{project="default"} 1`) {
		t.Fatalf("scrape with an IAM token:\n%s", first)
	}
	second := scrapeText(t, h)
	if n := sim.Requests(simulator.OpIAMToken); n != 1 {
		t.Errorf("%d token requests for two scrapes, want 1: the token is cached", n)
	}
	// The token is revoked (IAM does so after a password change): the gateway answers
	// "decrypt token fail". The client makes one request and no retry of its own: the
	// refresh and the retry are the AK guard's lone probe, outside the client.
	sim.RevokeTokens()
	shows := sim.Requests(simulator.OpShowTask)
	third := scrapeText(t, h)
	if !strings.Contains(third, `metastudio_task_scrape_success{project="default",task_id="t1"} 0`) || !strings.Contains(third, `metastudio_auth_ok{project="default"} 0`) {
		t.Errorf("a scrape with a revoked token:\n%s", third)
	}
	if n := sim.Requests(simulator.OpShowTask) - shows; n != 1 {
		t.Errorf("%d ShowTask requests for one task with a revoked token, want 1: no retry within the call", n)
	}
	if !strings.Contains(third, `metastudio_api_requests_total{code="201",operation="IAMToken",project="default"}`) {
		t.Errorf("IAM calls are not counted:\n%s", third)
	}
	// The refusal got one refresh (no cool-down), and the next scrape recovers with exactly
	// one more IAM call.
	fourth := scrapeText(t, h)
	if !strings.Contains(fourth, `metastudio_task_scrape_success{project="default",task_id="t1"} 1`) || !strings.Contains(fourth, `metastudio_auth_ok{project="default"} 1`) {
		t.Errorf("the scrape after a revoked token must recover:\n%s", fourth)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 2 {
		t.Errorf("%d token requests in all, want 2: one at start and one after the revocation", n)
	}
	noSecrets(t, first, second, third, fourth, logs.String())
}

func TestIAMWrongPassword(t *testing.T) {
	sim, url := credSim(t, simulator.Options{})
	logs := &testkit.Buffer{}
	creds := "  iam_password: {domain_name: " + iamDomain + ", user_name: " + iamUser + ", password_file: " + secretFile(t, "wrong-"+iamPassword) + "}\n"
	// Without project_id the exporter starts, not ready, and logs IAM's message.
	unresolved, err := exporterWith(t, url, "", creds, logs, time.Now)
	if err != nil {
		t.Fatalf("start-up with a wrong password and no project_id: %v", err)
	}
	// The first attempt runs in the background; /-/ready says why it failed.
	body := waitReadiness(t, func() (int, string) { return do(t, unresolved, "GET", "/-/ready") },
		http.StatusServiceUnavailable, "The username or password is wrong")
	noSecrets(t, body)
	if !strings.Contains(logs.String(), "The username or password is wrong") {
		t.Fatalf("the log should carry IAM's message:\n%s", logs)
	}
	h, err := exporterWith(t, url, e2eProject, creds, logs, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	before := sim.Requests(simulator.OpIAMToken)
	out := scrapeText(t, h) + scrapeText(t, h) + scrapeText(t, h)
	if !strings.Contains(out, `metastudio_task_scrape_success{project="default",task_id="t1"} 0`) || !strings.Contains(out, `metastudio_auth_ok{project="default"} 0`) {
		t.Errorf("scrapes with a wrong password:\n%s", out)
	}
	if n := sim.Requests(simulator.OpIAMToken) - before; n != 1 {
		t.Errorf("%d token requests in three scrapes, want 1, then the cool-down", n)
	}
	if !strings.Contains(logs.String(), "The username or password is wrong") {
		t.Errorf("the logs should carry IAM's message:\n%s", logs)
	}
	noSecrets(t, out, logs.String())
}

func TestECSMetadataSource(t *testing.T) {
	for _, tc := range []struct {
		name     string
		metadata simulator.MetadataOptions
		wantOK   bool
		wantLog  string
	}{
		{name: "session tokens", metadata: simulator.MetadataOptions{SessionTokens: true}, wantOK: true},
		{name: "old service without session tokens", metadata: simulator.MetadataOptions{PutStatus: 404}, wantOK: true},
		{name: "PUT not allowed", metadata: simulator.MetadataOptions{PutStatus: 405}, wantOK: true},
		{name: "no agency", metadata: simulator.MetadataOptions{SessionTokens: true, NoAgency: true}, wantLog: "agency"},
		// Garbage is no refusal: no cool-down, every scrape asks again, and it is counted.
		{name: "garbage", metadata: simulator.MetadataOptions{SessionTokens: true, Garbage: true}, wantLog: "not a credential object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := tc.metadata
			sim, url := credSim(t, simulator.Options{Metadata: &md})
			logs := &testkit.Buffer{}
			project := e2eProject
			if tc.wantOK {
				project = "" // resolved with /v3/projects, signed with the temporary keys
			}
			h, err := exporterWith(t, url, project, "  ecs_metadata: {endpoint: \""+url+"\"}\n", logs, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantOK {
				waitReady(t, h)
			}
			out := scrapeText(t, h)
			if tc.wantOK {
				if !strings.Contains(out, `metastudio_task_items{project="default",task_id="t1"} 5`) {
					t.Fatalf("scrape with metadata credentials:\n%s\nlogs:\n%s", out, logs)
				}
				if n := sim.Requests(simulator.OpIAMProjects); n != 1 {
					t.Errorf("project resolution made %d IAM calls, want 1", n)
				}
				scrapeText(t, h)
				if n := sim.Requests(simulator.OpMetadataSecurityKey); n != 1 {
					t.Errorf("%d security key requests, want 1: the keys are cached", n)
				}
				return
			}
			if !strings.Contains(out, `metastudio_task_scrape_success{project="default",task_id="t1"} 0`) || !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("want scrape_success 0 and a log with %q:\n%s\nlogs:\n%s", tc.wantLog, out, logs)
			}
			second := scrapeText(t, h) // the exporter stays up
			n := sim.Requests(simulator.OpMetadataSecurityKey)
			if tc.metadata.Garbage {
				if n != 2 || !strings.Contains(second, `metastudio_credential_fetch_failures_total{project="default",reason="server",source="metadata"} 2`) {
					t.Errorf("an unusable answer: %d security key requests in two scrapes, want 2, counted as failures:\n%s", n, second)
				}
				return
			}
			if n > 1 {
				t.Errorf("%d security key requests in two scrapes: the cool-down should hold the second", n)
			}
		})
	}
}

func TestProjectResolution(t *testing.T) {
	creds := "  access_key: " + e2eAK + "\n  secret_key_file: " + secretFile(t, e2eSK) + "\n"
	t.Run("one project", func(t *testing.T) {
		sim, url := credSim(t, simulator.Options{})
		h, err := exporterWith(t, url, "", creds, &testkit.Buffer{}, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		waitReady(t, h)
		if out := scrapeText(t, h); !strings.Contains(out, `metastudio_task_items{project="default",task_id="t1"} 5`) {
			t.Errorf("scrape after resolving the project:\n%s", out)
		}
		if n := sim.Requests(simulator.OpIAMProjects); n != 1 {
			t.Errorf("%d project requests, want 1", n)
		}
	})
	for name, projects := range map[string][]string{"none": {}, "two": {e2eProject, "fedcba9876543210fedcba9876543210"}} {
		t.Run(name, func(t *testing.T) {
			_, url := credSim(t, simulator.Options{Projects: map[string][]string{"cn-north-4": projects}})
			logs := &testkit.Buffer{}
			h, err := exporterWith(t, url, "", creds, logs, time.Now)
			if err != nil {
				t.Fatalf("start-up without a resolvable project: %v, want the exporter up, not ready", err)
			}
			waitReadiness(t, func() (int, string) { return do(t, h, "GET", "/-/ready") },
				http.StatusServiceUnavailable, "resolving project_id for region cn-north-4")
			if out := scrapeText(t, h); !strings.Contains(out, `metastudio_task_scrape_success{project="default",task_id="t1"} 0`) {
				t.Errorf("a scrape while the project is unresolved:\n%s", out)
			}
			if !strings.Contains(logs.String(), "resolving project_id for region cn-north-4") {
				t.Errorf("the log should say why:\n%s", logs)
			}
		})
	}
}

// TestWrongKeyNeverLocksTheAK: a wrong SK with 200 tasks and concurrency 8, scraped 60
// times over a simulated minute, costs one signature failure and never locks the AK.
func TestWrongKeyNeverLocksTheAK(t *testing.T) {
	clock := testkit.NewClock(time.Now().UTC().Truncate(time.Second))
	sim := simulator.New(simulator.Options{
		Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject, Tasks: 200, Now: clock.Now,
	})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	logs := &testkit.Buffer{}
	text := "region: cn-north-4\nproject_id: " + e2eProject + "\nendpoint: " + srv.URL +
		"\ncredentials: {access_key: " + e2eAK + ", secret_key: wrong-secret-key}\nscrape: {concurrency: 8}\ntasks:\n"
	for _, id := range sim.TaskIDs() {
		text += "  - " + id + "\n"
	}
	cfg, _, err := config.Parse([]byte(text), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHandler(t.Context(), cfg, "/metrics", log.NewLogfmtLogger(logs), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		out := scrapeText(t, h)
		if strings.Contains(out, "metastudio_task_items{project=\"default\",") {
			t.Fatalf("scrape %d read a task with a wrong key", i)
		}
		clock.Advance(time.Second)
	}
	if n := sim.Requests(simulator.OpShowTask); n != 1 {
		t.Errorf("60 scrapes of 200 tasks with a wrong key made %d calls, want 1", n)
	}
	// The AK is not locked: a correctly signed call still goes through.
	req := httptest.NewRequest("GET", srv.URL+"/v2/"+e2eProject+"/ies/task/"+sim.TaskIDs()[0], nil)
	req.RequestURI = ""
	req.Header.Set(auth.HeaderProjectID, e2eProject)
	auth.Sign(req, nil, auth.Keys{AccessKey: e2eAK, SecretKey: e2eSK}, clock.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a correct call after the test answered %d: the AK was locked", resp.StatusCode)
	}
	if strings.Count(logs.String(), "Authentication failed") != 1 {
		t.Errorf("want one warning about the failed authentication:\n%s", logs)
	}
}

func TestClockSkew(t *testing.T) {
	sim, url := credSim(t, simulator.Options{})
	sim.SetSkew(-6 * time.Minute) // the API's clock is 6 minutes behind ours
	logs := &testkit.Buffer{}
	h, err := exporterWith(t, url, e2eProject, "  access_key: "+e2eAK+"\n  secret_key_file: "+secretFile(t, e2eSK)+"\n", logs, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	out := scrapeText(t, h)
	if !strings.Contains(out, `metastudio_clock_skew_seconds{project="default"} 36`) { // 360 s, give or take the Date header's second
		t.Errorf("clock skew:\n%s", out)
	}
	if !strings.Contains(logs.String(), "The local clock is off") {
		t.Errorf("a skew over 5 minutes should be logged:\n%s", logs)
	}
}

func TestTokenFileSource(t *testing.T) {
	const token = "a-token-kept-fresh-by-something-else"
	_, url := credSim(t, simulator.Options{Tokens: []string{token}})
	logs := &testkit.Buffer{}
	h, err := exporterWith(t, url, e2eProject, "  token_file: "+secretFile(t, token)+"\n", logs, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	out := scrapeText(t, h)
	if !strings.Contains(out, `metastudio_task_items{project="default",task_id="t1"} 5`) {
		t.Errorf("scrape with a token file:\n%s", out)
	}
	if strings.Contains(out+logs.String(), token) {
		t.Error("the token appears in the exporter's output")
	}
}
