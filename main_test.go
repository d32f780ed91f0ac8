package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"golang.org/x/crypto/bcrypt"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

func noEnv(string) string { return "" }

// newHandler builds the exporter for a config that did not come from a file, as tests need.
func newHandler(ctx context.Context, cfg *config.Config, metricsPath string, logger log.Logger, now func() time.Time) (http.Handler, error) {
	e, err := newExporter(ctx, cfg, options{getenv: noEnv, logger: logger, now: now})
	if err != nil {
		return nil, err
	}
	return e.handler(metricsPath)
}

func runArgs(t *testing.T, getenv config.Getenv, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a run that gets as far as serving stops at once
	code := run(ctx, args, &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", "region: cn-north-4\nproject_id: p1\ntasks: [t1]\n")
	typo := writeFile(t, dir, "typo.yml", "region: cn-north-4\nproject_id: p1\ntasks: [t1]\nscrape:\n  concurency: 4\n")
	env := func(k string) string {
		return map[string]string{"CLOUD_SDK_AK": "AK", "CLOUD_SDK_SK": "very-secret-sk"}[k]
	}

	code, stdout, stderr := runArgs(t, env, "--config.check", "--config.file="+good)
	if code != 0 || !strings.Contains(stdout, "is valid (1 tasks)") {
		t.Errorf("good config: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// The same file without environment credentials has none usable.
	code, _, stderr = runArgs(t, noEnv, "--config.check", "--config.file="+good)
	if code != 1 || !strings.Contains(stderr, "credentials: none usable") {
		t.Errorf("no credentials: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runArgs(t, env, "--config.check", "--config.file="+typo)
	want := "line 5: scrape.concurency: unknown key (valid: timeout, concurrency, max_requests_per_second, min_requests_per_second, min_refresh_interval)"
	if code != 1 || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("typo: exit %d, stderr %q, want one line with %q", code, stderr, want)
	}
	code, _, stderr = runArgs(t, env, "--config.file="+typo)
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("start with a bad config: exit %d, stderr %q", code, stderr)
	}
	for _, out := range []string{stdout, stderr} {
		if strings.Contains(out, "very-secret-sk") {
			t.Errorf("the secret key was printed: %q", out)
		}
	}
}

func TestFlags(t *testing.T) {
	if code, stdout, _ := runArgs(t, noEnv, "--version"); code != 0 || !strings.Contains(stdout, "metastudio_exporter, version") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
	if code, _, stderr := runArgs(t, noEnv, "--no-such-flag"); code != 1 || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("unknown flag: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runArgs(t, noEnv, "--log.level=loud"); code != 1 || !strings.Contains(stderr, "log.level") {
		t.Errorf("bad log level: exit %d, %q", code, stderr)
	}
	if code, _, _ := runArgs(t, noEnv, "--config.file=/nonexistent/config.yml"); code != 1 {
		t.Errorf("missing config file: exit %d", code)
	}
}

// startExporter runs the exporter on a free loopback port until the returned stop is
// called; stop returns the exit code.
func startExporter(t *testing.T, getenv config.Getenv, args ...string) (addr string, stop func() int) {
	t.Helper()
	addr = testkit.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append(args, "--web.listen-address="+addr), &bytes.Buffer{}, &bytes.Buffer{}, getenv)
	}()
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr, func() int {
		cancel() // what SIGTERM does
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("no exit after shutdown")
			return -1
		}
	}
}

func testEnv(k string) string {
	return map[string]string{"CLOUD_SDK_AK": "AK", "CLOUD_SDK_SK": "SK"}[k]
}

func TestServeAndShutdown(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "c.yml", "region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [t1]\n")
	addr, stop := startExporter(t, testEnv, "--config.file="+cfg)
	resp, err := http.Get("http://" + addr + "/-/healthy")
	if err != nil {
		t.Fatalf("exporter never answered: %v", err)
	}
	resp.Body.Close()
	if code := stop(); code != 0 {
		t.Errorf("exit %d after shutdown, want 0", code)
	}

	// A port in use is an exit 1 with a message.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, _, stderrText := runArgsCtx(t, context.Background(), testEnv, "--config.file="+cfg, "--web.listen-address="+busy.Addr().String())
	if code != 1 || !strings.Contains(stderrText, "listening") {
		t.Errorf("busy port: exit %d, stderr %q", code, stderrText)
	}
}

func TestWebConfigBasicAuth(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yml", "region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [t1]\n")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := writeFile(t, dir, "web.yml", "basic_auth_users:\n  prom: "+string(hash)+"\n")
	bad := writeFile(t, dir, "bad-web.yml", "basic_auth_userz: {}\n")
	if code, _, stderr := runArgs(t, testEnv, "--config.file="+cfg, "--web.config.file="+bad); code != 1 || !strings.Contains(stderr, "web config") {
		t.Errorf("bad web config: exit %d, %q", code, stderr)
	}

	addr, stop := startExporter(t, testEnv, "--config.file="+cfg, "--web.config.file="+web)
	defer stop()
	for _, path := range []string{"/", "/metrics", "/-/healthy", "/-/ready"} {
		for _, tc := range []struct {
			user, pass string
			want       int
		}{{"", "", 401}, {"prom", "wrong", 401}, {"prom", "s3cret-pass", 200}} {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s as %q/%q: %d, want %d", path, tc.user, tc.pass, resp.StatusCode, tc.want)
			}
		}
	}
}

func runArgsCtx(t *testing.T, ctx context.Context, getenv config.Getenv, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

func TestEndpoints(t *testing.T) {
	cfg, _, err := config.Parse([]byte("region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [t1]\n"),
		func(k string) string { return map[string]string{"CLOUD_SDK_AK": "AK", "CLOUD_SDK_SK": "SK"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHandler(t.Context(), cfg, "/metrics", log.NewNopLogger(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/", 200, "metastudio_exporter"},
		{"/-/healthy", 200, "Healthy"},
		{"/-/ready", 200, "Ready"},
		{"/metrics", 200, `metastudio_task_scrape_success{project="default",task_id="t1"} 0`},
		{"/metrics", 200, "metastudio_exporter_build_info{"},
		{"/metrics", 200, `metastudio_api_requests_total{code="error",operation="ShowTask",project="default"} 3`}, // one per scrape
		{"/nope", 404, ""},
		{"/metricsx", 404, ""},
	} {
		rec := newRecorder()
		h.ServeHTTP(rec, mustRequest(t, tc.path))
		if rec.status != tc.status || !strings.Contains(rec.body.String(), tc.body) {
			t.Errorf("%s: status %d, body %q; want %d with %q", tc.path, rec.status, trim(rec.body.String()), tc.status, tc.body)
		}
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{header: http.Header{}, status: 200} }
func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

func mustRequest(t *testing.T, path string) *http.Request {
	t.Helper()
	r, err := http.NewRequest("GET", "http://exporter"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}
