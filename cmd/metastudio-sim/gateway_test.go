package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

func TestRateLimitFlags(t *testing.T) {
	t.Setenv("METASTUDIO_SIM_SK", "sk-for-the-gateway-test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		// One token every 100 s: the bucket of 2 cannot refill during the test.
		done <- run(ctx, []string{"--web.listen-address=127.0.0.1:0", "--tasks=2", "--project-id=p1", "--ak=AK1",
			"--rate-limit=0.01", "--rate-burst=2"}, &stdout, &stderr)
	}()
	addr := waitAddress(t, &stderr)

	get := func(path string, sign bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if sign {
			req.Header.Set(auth.HeaderProjectID, "p1")
			auth.Sign(req, nil, auth.Keys{AccessKey: "AK1", SecretKey: "sk-for-the-gateway-test"}, time.Now())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	show := "/v2/p1/ies/task/" + simulator.TaskID(1)
	for i, want := range []int{200, 200, 429} {
		code, body := get(show, true)
		if code != want {
			t.Fatalf("request %d: %d, want %d: %s", i, code, want, body)
		}
		if code == 429 && !strings.Contains(body, `"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:0.01,time:1 second"`) {
			t.Errorf("429 body %s", body)
		}
	}
	code, body := get(simulator.StatsPath, false)
	var st simulator.GatewayStats
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("%s: %d %v: %s", simulator.StatsPath, code, err, body)
	}
	if st.Answered != 2 || st.Throttled != 1 || st.Repeats != 1 || st.RateBurst != 2 || st.Tasks[simulator.TaskID(1)].Answered != 2 {
		t.Errorf("stats %s", body)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit code %d; stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "rate_limit=0.01") {
		t.Errorf("the startup line does not give the rate limit: %s", stderr.String())
	}
}

func TestRateLimitFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--rate-limit=-1"},
		{"--rate-limit=NaN"},
		{"--rate-limit=1e9"},
		{"--rate-limit=5", "--rate-burst=-1"},
		{"--rate-burst=5"},
	} {
		var stdout, stderr testkit.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
			t.Errorf("%v: exit code %d, want 1", args, code)
		}
		if !strings.Contains(stderr.String(), "--rate-") {
			t.Errorf("%v: stderr %q does not name the flag", args, stderr.String())
		}
	}
	var stdout, stderr testkit.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Errorf("--help: exit code %d", code)
	}
	for _, flag := range []string{"--rate-limit", "--rate-burst"} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("--help does not list %s", flag)
		}
	}
}
