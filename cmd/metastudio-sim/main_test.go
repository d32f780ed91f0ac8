package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// TestMain lets the test binary stand in for the command (see TestSignalExit).
func TestMain(m *testing.M) {
	if os.Getenv("METASTUDIO_SIM_TEST_MAIN") == "1" {
		os.Args = append([]string{programName}, strings.Fields(os.Getenv("METASTUDIO_SIM_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

var addressRE = regexp.MustCompile(`address=(\S+)`)

// waitAddress waits for the startup line and returns the address it names.
func waitAddress(t *testing.T, out interface{ String() string }) string {
	t.Helper()
	return waitMatch(t, out, addressRE)
}

// waitMatch polls out until re matches it, and returns the first submatch.
func waitMatch(t *testing.T, out interface{ String() string }, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no line matching %s: %q", re, out.String())
	return ""
}

// getAs sends a GET of path, signed with AK1 and sk unless sk is empty, with X-Project-Id
// project unless it is empty, and returns the answer and its body.
func getAs(t *testing.T, addr, path, sk, project string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if project != "" {
		req.Header.Set(auth.HeaderProjectID, project)
	}
	if sk != "" {
		auth.Sign(req, nil, auth.Keys{AccessKey: "AK1", SecretKey: sk}, time.Now())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestServesSignedRequestsAndStops(t *testing.T) {
	const sk = "env-secret-for-the-test-0123456789"
	t.Setenv("METASTUDIO_SIM_SK", sk)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--web.listen-address=127.0.0.1:0", "--tasks=3", "--field-style=string",
			"--project-id=p1", "--ak=AK1", "--token=tok-secret", "--iam-user=dom/bot:pw-secret:with/odd",
			"--region=cn-east-3", "--token-ttl=1h", "--metadata"}, &stdout, &stderr)
	}()
	addr := waitAddress(t, &stderr)

	resp, answer := getAs(t, addr, "/v2/p1/ies/task/00000000000000000000000000000002", sk, "p1")
	var task map[string]any
	err := json.Unmarshal([]byte(answer), &task)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if _, ok := task["total_count"].(string); !ok {
		t.Errorf("--field-style=string: total_count = %#v", task["total_count"])
	}

	// IAM: a password token for --iam-user, scoped by --region to --project-id, lasting --token-ttl.
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"bot","password":"pw-secret:with/odd",` +
		`"domain":{"name":"dom"}}}},"scope":{"project":{"name":"cn-east-3"}}}}`
	resp, err = http.Post("http://"+addr+"/v3/auth/tokens?nocatalog=true", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			Project   struct{ ID string }
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 || tok.Token.Project.ID != "p1" || resp.Header.Get("X-Subject-Token") == "" {
		t.Fatalf("password token: %d %v %+v", resp.StatusCode, err, tok)
	}
	if exp, err := time.Parse(time.RFC3339, tok.Token.ExpiresAt); err != nil || time.Until(exp) > time.Hour || time.Until(exp) < 50*time.Minute {
		t.Errorf("--token-ttl=1h: expires_at %s", tok.Token.ExpiresAt)
	}

	// --metadata: session tokens are required.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/openstack/latest/securitykey", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("securitykey without a session token: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPut, "http://"+addr+"/meta-data/latest/api/token", nil)
	req.Header.Set("X-Metadata-Token-Ttl-Seconds", "600")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("metadata session token: %d", resp.StatusCode)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, want 0; stderr %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	out := stderr.String()
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("want one startup line, got %q", out)
	}
	for _, want := range []string{"project_id=p1", "first_task_ids=00000000000000000000000000000001,", "access_key=AK1",
		"region=cn-east-3", "iam_users=dom/bot ", "metadata=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("startup line lacks %q: %s", want, out)
		}
	}
	for _, secret := range []string{sk, "tok-secret", "pw-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("startup line shows a secret: %s", out)
		}
	}
}

// runFails runs the command with args, which must make it exit 1, and returns its stderr.
func runFails(t *testing.T, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // args wrongly accepted serve until ctx ends: at once, with exit code 0
	var stdout, stderr testkit.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 1 {
		t.Errorf("%v: exit code %d, want 1", args, code)
	}
	return stderr.String()
}

// helpText is what --help prints; it must exit 0.
func helpText(t *testing.T) string {
	t.Helper()
	var stdout, stderr testkit.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Errorf("--help: exit code %d", code)
	}
	return stdout.String()
}

func TestFlagErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, args := range [][]string{
		{"--field-style=bogus"},
		{"--error-rate=1.5"},
		{"--slow-rate=-0.1"},
		{"--tasks=-1"},
		{"--no-such-flag"},
		{"--web.listen-address=" + busy.Addr().String()},
		{"--iam-user=nodomain:pw-secret"},
		{"--iam-user=dom/user"},
		{"--iam-user=dom/user:"},
		{"--iam-user=/user:pw-secret"},
		{"--token-ttl=0s"},
		{"--metadata-credential-ttl=-1h"},
		{"--region="},
	} {
		stderr := runFails(t, args)
		if strings.TrimSpace(stderr) == "" {
			t.Errorf("%v: nothing on stderr", args)
		}
		if strings.Contains(stderr, "pw-secret") {
			t.Errorf("%v: the error shows the password: %s", args, stderr)
		}
	}
	help := helpText(t)
	for _, flag := range []string{"--web.listen-address", "--project-id", "--ak", "--sk", "--token", "--tasks",
		"--seed", "--latency", "--error-rate", "--throttle-rate", "--slow-rate", "--slow-delay",
		"--malformed-rate", "--field-style", "--iam-user", "--region", "--token-ttl", "--metadata",
		"--metadata-credential-ttl"} {
		if !strings.Contains(help, flag) {
			t.Errorf("--help does not list %s", flag)
		}
	}
}

// TestShareFlags: each flag that is a share of the answers takes 0 to 1, and an error
// names the flag.
func TestShareFlags(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // with good flags, run serves until ctx ends: at once
	for _, name := range []string{"error-rate", "throttle-rate", "slow-rate", "malformed-rate"} {
		for value, wantCode := range map[string]int{"0": 0, "1": 0, "1.5": 1, "-0.1": 1, "NaN": 1} {
			var stdout, stderr testkit.Buffer
			args := []string{"--web.listen-address=127.0.0.1:0", "--" + name + "=" + value}
			code := run(ctx, args, &stdout, &stderr)
			want := "--" + name + " must be between 0 and 1"
			if code != wantCode || (wantCode == 1 && !strings.Contains(stderr.String(), want)) {
				t.Errorf("%v: exit code %d, stderr %q; want %d and %q", args, code, stderr.String(), wantCode, want)
			}
		}
	}
}

// TestSignalExit runs the command in a child process and stops it with SIGTERM and SIGINT.
func TestSignalExit(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "METASTUDIO_SIM_TEST_MAIN=1",
				"METASTUDIO_SIM_TEST_ARGS=--web.listen-address=127.0.0.1:0 --tasks=2")
			var stderr testkit.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitAddress(t, &stderr)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- cmd.Wait() }()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("exit after %v: %v; stderr %s", sig, err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 10s after %v", sig)
			}
		})
	}
}
