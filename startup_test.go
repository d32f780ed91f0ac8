package main

// Start-up that cannot lock the IAM user or the AK: a refused password or an unresolvable
// project does not exit; the exporter stays up, not ready, and retries under the gates.

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// steppingClock is a fake clock that the background resolver moves through its waits at
// once, up to a limit; a wait beyond the limit parks until the test moves the limit on.
type steppingClock struct {
	*testkit.Clock
	mu      sync.Mutex
	limit   time.Time
	parked  chan time.Time
	reached chan struct{}
}

func newSteppingClock(start time.Time) *steppingClock {
	return &steppingClock{Clock: testkit.NewClock(start), limit: start, reached: make(chan struct{}, 1)}
}

func (s *steppingClock) after(d time.Duration) <-chan time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan time.Time, 1)
	if s.Now().Add(d).After(s.limit) {
		s.parked = ch
		select {
		case s.reached <- struct{}{}:
		default:
		}
		return ch
	}
	s.Advance(d)
	ch <- s.Now()
	return ch
}

// release lets the parked resolver go on, and run freely until until.
func (s *steppingClock) release(until time.Time) {
	s.mu.Lock()
	s.limit = until
	parked := s.parked
	s.parked = nil
	s.mu.Unlock()
	parked <- s.Now()
}

// runUntil lets the resolver run until its clock would pass t, and waits until it parks.
func (s *steppingClock) runUntil(t *testing.T, until time.Time) {
	t.Helper()
	s.mu.Lock()
	s.limit = until
	parked := s.parked
	s.parked = nil
	s.mu.Unlock()
	if parked != nil {
		parked <- s.Now()
	}
	select {
	case <-s.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the resolver never waited again")
	}
}

// waitReady polls /-/ready until it answers 200 (a condition, not a guessed time).
func waitReady(t *testing.T, h http.Handler) {
	t.Helper()
	waitReadiness(t, func() (int, string) { return do(t, h, "GET", "/-/ready") }, http.StatusOK, "Ready")
}

// waitReadiness polls ready (an answer of /-/ready) until it has code and its body
// contains want, and returns the body.
func waitReadiness(t *testing.T, ready func() (int, string), code int, want string) string {
	t.Helper()
	var got int
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got, body = ready(); got == code && strings.Contains(body, want) {
			return body
		}
	}
	t.Fatalf("/-/ready never answered %d with %q; last %d %q", code, want, got, body)
	return ""
}

// startUnresolved builds an exporter without project_id on the stepping clock.
func startUnresolved(t *testing.T, url, creds string, clock *steppingClock) (http.Handler, *testkit.Buffer) {
	t.Helper()
	text := "region: cn-north-4\nendpoint: " + url + "\niam_endpoint: " + url + "\ntasks: [t1]\ncredentials:\n" + creds
	cfg, _, err := config.Parse([]byte(text), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e, err := newExporter(ctx, cfg, options{getenv: noEnv, logger: log.NewLogfmtLogger(logs), now: clock.Now, after: clock.after})
	if err != nil {
		t.Fatalf("start-up without a resolvable project must not fail: %v", err)
	}
	h, err := e.handler("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return h, logs
}

// settledFile writes a secret file whose time is in the past: it has settled.
func settledFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStartWithWrongPassword: not ready, at most 2 IAM calls in the first minute and in
// the first 15 minutes (IAM locks the user at 5); the fixed password file is tried as
// soon as it is noticed, and the exporter becomes ready.
func TestStartWithWrongPassword(t *testing.T) {
	clock := newSteppingClock(time.Now().UTC().Truncate(time.Second))
	start := clock.Now()
	sim, url := credSim(t, simulator.Options{Now: clock.Now})
	path := settledFile(t, filepath.Join(t.TempDir(), "password"), "wrong-"+iamPassword)
	h, logs := startUnresolved(t, url, "  iam_password: {domain_name: "+iamDomain+", user_name: "+iamUser+", password_file: "+path+"}\n", clock)
	if code, _ := do(t, h, "GET", "/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready answers %d with the password refused, want 503", code)
	}
	waitReadiness(t, func() (int, string) { return do(t, h, "GET", "/-/ready") },
		http.StatusServiceUnavailable, "The username or password is wrong")
	if n, waited := sim.Requests(simulator.OpIAMToken), clock.Now().Sub(start); n != 1 || waited != 0 {
		t.Errorf("the first attempt made %d IAM calls after %s, want 1 at once", n, waited)
	}
	if _, out := do(t, h, "GET", "/metrics"); !strings.Contains(out, `metastudio_task_scrape_success{project="default",task_id="t1"} 0`) {
		t.Errorf("/metrics while not ready:\n%s", out)
	}
	clock.runUntil(t, start.Add(time.Minute))
	if n := sim.Requests(simulator.OpIAMToken); n > 2 {
		t.Errorf("%d IAM calls in the first minute, want at most 2", n)
	}
	clock.runUntil(t, start.Add(15*time.Minute-time.Second))
	if n := sim.Requests(simulator.OpIAMToken); n != 2 {
		t.Errorf("%d IAM calls in the first 15 minutes, want 2", n)
	}
	if code, _ := do(t, h, "GET", "/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready answers %d, want 503", code)
	}
	settledFile(t, path, iamPassword) // the user fixes the file
	clock.release(start.Add(time.Hour))
	waitReady(t, h)
	if waited := clock.Now().Sub(start); waited > 15*time.Minute {
		t.Errorf("the fixed password was tried %s after start, want at once", waited-15*time.Minute+time.Second)
	}
	if _, out := do(t, h, "GET", "/metrics"); !strings.Contains(out, `metastudio_task_items{project="default",task_id="t1"} 5`) {
		t.Errorf("a scrape once ready:\n%s", out)
	}
	if n := sim.Requests(simulator.OpIAMToken); n != 3 {
		t.Errorf("%d IAM calls, want 3: two refused, one with the fixed password", n)
	}
	noSecrets(t, logs.String())
	if !strings.Contains(logs.String(), "The username or password is wrong") {
		t.Errorf("the log should carry IAM's message:\n%s", logs)
	}
}

// TestStartWithWrongSK: project resolution with a wrong SK costs at most 2 signature
// failures in the first minute, never locks the AK, and a rotated key file is used.
func TestStartWithWrongSK(t *testing.T) {
	clock := newSteppingClock(time.Now().UTC().Truncate(time.Second))
	start := clock.Now()
	sim, url := credSim(t, simulator.Options{Now: clock.Now})
	sk := settledFile(t, filepath.Join(t.TempDir(), "sk"), "wrong-secret-key")
	h, logs := startUnresolved(t, url, "  access_key: "+e2eAK+"\n  secret_key_file: "+sk+"\n", clock)
	clock.runUntil(t, start.Add(time.Minute))
	if n := sim.Requests(simulator.OpIAMProjects); n > 2 {
		t.Errorf("%d signed project lookups in the first minute, want at most 2", n)
	}
	clock.runUntil(t, start.Add(20*time.Minute))
	if n := sim.Requests(simulator.OpIAMProjects); n > 5 {
		t.Errorf("%d signed project lookups in 20 minutes: 6 in a row lock the AK", n)
	}
	settledFile(t, sk, e2eSK) // the key file is rotated
	clock.release(start.Add(time.Hour))
	waitReady(t, h)
	if _, out := do(t, h, "GET", "/metrics"); !strings.Contains(out, `metastudio_task_items{project="default",task_id="t1"} 5`) {
		t.Errorf("a scrape once ready:\n%s", out)
	}
	noSecrets(t, logs.String())
}

// iamGate serves the simulator of credSim with an IAM that answers nothing until answer
// is called. Each IAM request is announced on arrived as it comes, and on abandoned if the
// exporter gives it up before the answer.
type iamGate struct {
	sim                *simulator.Server
	url                string
	arrived, abandoned chan string
	answer             func()
}

func hangingIAM(t *testing.T) *iamGate {
	t.Helper()
	sim, _ := credSim(t, simulator.Options{})
	release := make(chan struct{})
	var once sync.Once
	g := &iamGate{sim: sim, arrived: make(chan string, 100), abandoned: make(chan string, 100),
		answer: func() { once.Do(func() { close(release) }) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v3/") { // IAM
			g.arrived <- r.URL.Path
			select {
			case <-release:
			case <-r.Context().Done():
				g.abandoned <- r.URL.Path
				return
			}
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(g.answer) // before srv.Close, which waits for the handlers
	g.url = srv.URL
	return g
}

// wait waits for a request on ch, and fails the test if none comes.
func (g *iamGate) wait(t *testing.T, ch chan string, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second): // only when the exporter is broken
		t.Fatalf("no IAM request %s", what)
	}
}

// TestListensWhileIAMHangs: start-up never waits for IAM. With project_id left out and IAM
// not answering, the binary listens at once: /-/healthy answers 200, /-/ready 503 with the
// reason, /metrics reports each task failed. Once IAM answers, the exporter becomes ready.
func TestListensWhileIAMHangs(t *testing.T) {
	iam := hangingIAM(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yml", "region: cn-north-4\nendpoint: "+iam.url+"\niam_endpoint: "+iam.url+"\ntasks: [t1, t2, t3, t4]\n"+
		"credentials:\n  access_key: "+e2eAK+"\n  secret_key_file: "+settledFile(t, filepath.Join(dir, "sk"), e2eSK)+"\n")

	started := time.Now()
	base, stderr, stop := startRun(t, noEnv, "--config.file="+cfg)
	if code, body := get(t, "GET", base+"/-/healthy"); code != http.StatusOK {
		t.Fatalf("/-/healthy while IAM hangs: %d %q", code, body)
	}
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("/-/healthy answered %s after start while IAM hangs; the attempt's bound is %s", took, projectTimeout)
	}
	if code, body := get(t, "GET", base+"/-/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "project_id") {
		t.Errorf("/-/ready while IAM hangs: %d %q, want 503 saying why", code, body)
	}
	// Scrapes while unresolved answer at once: no call is queued, so nothing waits for a
	// guard's probe or the rate (they took 1 s, 6 s and 10 s when a stand-in client failed
	// every call as a probe that verified nothing).
	scrapes := time.Now()
	for range 3 {
		if _, out := get(t, "GET", base+"/metrics"); strings.Count(out, `metastudio_task_scrape_success{project="default",task_id="t`) != 4 ||
			!strings.Contains(out, `metastudio_task_scrape_success{project="default",task_id="t4"} 0`) {
			t.Errorf("/metrics while IAM hangs:\n%s", out)
		}
	}
	if took := time.Since(scrapes); took > 5*time.Second {
		t.Errorf("three scrapes of 4 tasks took %s while the project is unresolved; with no call to make they answer at once", took)
	}
	if n := iam.sim.Requests(simulator.OpShowTask); n != 0 {
		t.Errorf("%d ShowTask calls before the project is resolved, want 0", n)
	}

	iam.answer()
	waitReadiness(t, func() (int, string) { return get(t, "GET", base+"/-/ready") }, http.StatusOK, "Ready")
	if _, out := get(t, "GET", base+"/metrics"); !strings.Contains(out, `metastudio_task_items{project="default",task_id="t1"} 5`) {
		t.Errorf("a scrape once ready:\n%s", out)
	}
	if n := iam.sim.Requests(simulator.OpIAMProjects); n != 1 {
		t.Errorf("%d project lookups, want 1", n)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	noSecrets(t, stderr.String())
}

// startResolving starts an exporter from a config file without project_id, whose IAM
// hangs, and waits until the first attempt to resolve the project reaches IAM.
func startResolving(t *testing.T) (iam *iamGate, e *exporter, h http.Handler, path, config string) {
	t.Helper()
	iam = hangingIAM(t)
	config = "region: cn-north-4\nendpoint: " + iam.url + "\niam_endpoint: " + iam.url +
		"\ncredentials: {access_key: " + e2eAK + ", secret_key: " + e2eSK + "}\ntasks: [t1]\n"
	e, h, path, _ = startOps(t, config, options{})
	iam.wait(t, iam.arrived, "to resolve the project")
	return iam, e, h, path, config
}

// TestReloadWhileResolving: while the project is being resolved, a reload of a config
// with the same client part lets the resolution go on: no second IAM request, and the
// reloaded config is the one that becomes ready.
func TestReloadWhileResolving(t *testing.T) {
	iam, e, h, path, config := startResolving(t)
	if err := os.WriteFile(path, []byte(strings.Replace(config, "[t1]", "[t1, t2]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reloader.Reload(); err != nil {
		t.Fatalf("a reload while resolving: %v", err)
	}
	if code, body := do(t, h, "GET", "/-/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "being resolved") {
		t.Errorf("/-/ready after a reload of the same client config: %d %q", code, body)
	}
	iam.answer()
	waitReady(t, h)
	if n := len(iam.arrived); n != 0 {
		t.Errorf("%d more IAM requests after the first, want none: the resolution goes on", n)
	}
	if _, body := do(t, h, "GET", "/config"); !strings.Contains(body, "- t2") || !strings.Contains(body, e2eProject) {
		t.Errorf("the reloaded config with the resolved project is not the one in use:\n%s", body)
	}
}

// TestReloadSetsProjectWhileResolving: a reload that sets project_id while the project is
// being resolved makes the exporter ready at once, and abandons the resolution.
func TestReloadSetsProjectWhileResolving(t *testing.T) {
	iam, e, h, path, config := startResolving(t)
	const other = "fedcba9876543210fedcba9876543210"
	if err := os.WriteFile(path, []byte(config+"project_id: "+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reloader.Reload(); err != nil {
		t.Fatalf("a reload that sets project_id: %v", err)
	}
	if code, body := do(t, h, "GET", "/-/ready"); code != http.StatusOK {
		t.Errorf("/-/ready after a reload that sets project_id: %d %q, want 200 at once", code, body)
	}
	iam.wait(t, iam.abandoned, "abandoned after the reload")
	if _, body := do(t, h, "GET", "/config"); !strings.Contains(body, other) {
		t.Errorf("/config does not show the configured project_id:\n%s", body)
	}
}

// TestReloadResolvesTheProject: once ready, a reload with other credentials and no
// project_id resolves the project before it answers. A failure fails the reload, and the
// running client, ready, goes on.
func TestReloadResolvesTheProject(t *testing.T) {
	sim, url := credSim(t, simulator.Options{})
	dir := t.TempDir()
	config := func(file, sk string) string {
		return "region: cn-north-4\nendpoint: " + url + "\niam_endpoint: " + url + "\ntasks: [t1]\n" +
			"credentials: {access_key: " + e2eAK + ", secret_key_file: " + settledFile(t, filepath.Join(dir, file), sk) + "}\n"
	}
	e, h, path, logs := startOps(t, config("sk", e2eSK), options{})
	waitReady(t, h)
	reload := func(text, wantErr string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		before := sim.Requests(simulator.OpIAMProjects)
		err := e.reloader.Reload()
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("reload: %v, want %q", err, wantErr)
		}
		if n := sim.Requests(simulator.OpIAMProjects) - before; n != 1 {
			t.Errorf("%d project lookups before the reload answered, want 1", n)
		}
		if code, _ := do(t, h, "GET", "/-/ready"); code != http.StatusOK {
			t.Errorf("/-/ready answers %d after the reload, want 200", code)
		}
		if _, out := do(t, h, "GET", "/metrics"); !strings.Contains(out, `metastudio_task_items{project="default",task_id="t1"} 5`) {
			t.Errorf("a scrape after the reload:\n%s", out)
		}
	}
	reload(config("wrong", "wrong-secret-key"), "resolving project_id for region cn-north-4")
	reload(config("right", e2eSK), "") // new credentials (another file), right ones
	noSecrets(t, logs.String())
}

// startRun runs the binary's run() on a free port; stop returns the exit code.
func startRun(t *testing.T, getenv config.Getenv, args ...string) (base string, stderr *testkit.Buffer, stop func() int) {
	t.Helper()
	addr := testkit.FreeAddr(t)
	stderr = &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append(args, "--web.listen-address="+addr), io.Discard, stderr, getenv) }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("run exited %d at start:\n%s", code, stderr)
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
	}
	stopped := false
	stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("no exit after shutdown")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	return "http://" + addr, stderr, stop
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestRunWithWrongPassword: the binary with a refused password and no project_id stays up
// (a restart loop would lock the IAM user), answers 503 on /-/ready, serves /metrics, and
// a reload of the same config makes no new attempt.
func TestRunWithWrongPassword(t *testing.T) {
	sim, url := credSim(t, simulator.Options{})
	dir := t.TempDir()
	password := settledFile(t, filepath.Join(dir, "password"), "wrong-"+iamPassword)
	cfg := writeFile(t, dir, "c.yml", "region: cn-north-4\nendpoint: "+url+"\niam_endpoint: "+url+"\ntasks: [t1]\n"+
		"credentials:\n  iam_password: {domain_name: "+iamDomain+", user_name: "+iamUser+", password_file: "+password+"}\n")
	base, stderr, stop := startRun(t, noEnv, "--config.file="+cfg)
	waitReadiness(t, func() (int, string) { return get(t, "GET", base+"/-/ready") },
		http.StatusServiceUnavailable, "The username or password is wrong")
	if code, out := get(t, "GET", base+"/metrics"); code != 200 || !strings.Contains(out, `metastudio_task_scrape_success{project="default",task_id="t1"} 0`) {
		t.Errorf("/metrics: %d\n%s", code, out)
	}
	if code, out := get(t, "POST", base+"/-/reload"); code != 200 {
		t.Errorf("reload of a valid config: %d %s", code, out)
	}
	if n := sim.Requests(simulator.OpIAMToken); n > 2 {
		t.Errorf("%d IAM calls, want at most 2", n)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "The username or password is wrong") {
		t.Errorf("the log should say why:\n%s", stderr)
	}
	noSecrets(t, stderr.String())
}

// TestSecretInTheWrongPlace: a secret written where credentials expects a mapping is
// never printed: not by --config.check, the start-up error, the reload log or the answer
// of POST /-/reload.
func TestSecretInTheWrongPlace(t *testing.T) {
	const secret = "hunter2-secret-value"
	dir := t.TempDir()
	good := "region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [t1]\n"
	bads := []string{
		good + "credentials: {iam_password: " + secret + "}\n",
		good + "credentials: " + secret + "\n",
		good + "credentials:\n  ecs_metadata: " + secret + "\n",
		good + "credentials:\n  " + secret + ": x\n",
	}
	for i, bad := range bads {
		path := writeFile(t, dir, "bad.yml", bad)
		for _, args := range [][]string{{"--config.check"}, {}} {
			code, stdout, stderr := runArgs(t, noEnv, append(args, "--config.file="+path)...)
			if code != 1 || strings.Contains(stdout+stderr, "hunter2") || !strings.Contains(stderr, "not shown") {
				t.Errorf("config %d %v: exit %d, output %q %q", i, args, code, stdout, stderr)
			}
		}
	}
	path := writeFile(t, dir, "c.yml", good)
	base, stderr, stop := startRun(t, testEnv, "--config.file="+path)
	for i, bad := range bads {
		writeFile(t, dir, "c.yml", bad)
		code, body := get(t, "POST", base+"/-/reload")
		if code != http.StatusInternalServerError || strings.Contains(body, "hunter2") || !strings.Contains(body, "not shown") {
			t.Errorf("reload of config %d: %d %q", i, code, body)
		}
	}
	stop()
	if strings.Contains(stderr.String(), "hunter2") || !strings.Contains(stderr.String(), "Reload failed") {
		t.Errorf("the reload log:\n%s", stderr)
	}
}

// TestConfigPageEnvironmentCredentials: /config does not show environment credentials as
// inline keys, so that what it shows loads back with the same environment.
func TestConfigPageEnvironmentCredentials(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"CLOUD_SDK_AK": e2eAK, "CLOUD_SDK_SK": e2eSK}[k]
	}
	cfg, _, err := config.Parse([]byte("region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [t1]\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHandler(t.Context(), cfg, "/metrics", log.NewNopLogger(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	code, body := do(t, h, "GET", "/config")
	if code != 200 || !strings.Contains(body, "# AK/SK from the environment: CLOUD_SDK_AK/CLOUD_SDK_SK") ||
		strings.Contains(body, e2eAK) || strings.Contains(body, "<secret>") || strings.Contains(body, e2eSK) {
		t.Errorf("/config: %d\n%s", code, body)
	}
	again, _, err := config.Parse([]byte(body), env)
	if err != nil || again.Credentials.AccessKey != e2eAK || string(again.Credentials.SecretKey) != e2eSK {
		t.Errorf("/config does not load back as the same credentials: %v", err)
	}
}
