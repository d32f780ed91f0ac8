package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
		sk, project := "", ""
		if sign {
			sk, project = "sk-for-the-gateway-test", "p1"
		}
		resp, body := getAs(t, addr, path, sk, project)
		return resp.StatusCode, body
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
		if stderr := runFails(t, args); !strings.Contains(stderr, "--rate-") {
			t.Errorf("%v: stderr %q does not name the flag", args, stderr)
		}
	}
	help := helpText(t)
	for _, flag := range []string{"--rate-limit", "--rate-burst"} {
		if !strings.Contains(help, flag) {
			t.Errorf("--help does not list %s", flag)
		}
	}
}

// startSim runs the command with args (plus a free port, project p1 and AK AK1 with the
// SK simSK; 12 tasks unless args say otherwise) until the test ends, and returns its address.
func startSim(t *testing.T, args ...string) string {
	t.Helper()
	t.Setenv("METASTUDIO_SIM_SK", simSK)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"--web.listen-address=127.0.0.1:0", "--project-id=p1", "--ak=AK1"}, args...),
			&stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit code %d; stderr %s", code, stderr.String())
		}
	})
	return waitAddress(t, &stderr)
}

const simSK = "sk-for-the-flag-tests"

// signedGet sends a GET of path signed with AK1, with X-Project-Id p1, and returns the
// status and body.
func signedGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, body := getAs(t, addr, path, simSK, "p1")
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		t.Errorf("%s: Retry-After %q", path, ra)
	}
	return resp.StatusCode, body
}

// simStats fetches the gateway's stats.
func simStats(t *testing.T, addr string) simulator.GatewayStats {
	t.Helper()
	resp, err := http.Get("http://" + addr + simulator.StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st simulator.GatewayStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats: %d %v", resp.StatusCode, err)
	}
	return st
}

const showOne = "/v2/p1/ies/task/00000000000000000000000000000001"

func TestFaultFlag(t *testing.T) {
	addr := startSim(t, "--fault=token-project", "--fault=quota-used-up", "--fault=auth-forbidden")
	for i, want := range []string{
		`400 {"error_code":"MSS.00010009","error_msg":"urlTenantId is not equal tokenTenantId"`,
		`405 {"error_code":"APIGW.0501","error_msg":"The app quota has been used up."`,
		`403 {"error_code":"MSS.000000004","error_msg":"Authentication failed."`,
		`400 {"error_code":"MSS.00010009"`,
	} {
		path := showOne
		if i == 1 {
			path = "/v2/p1/ies/task"
		}
		code, body := signedGet(t, addr, path)
		if got := fmt.Sprint(code, " ", body); !strings.HasPrefix(got, want) {
			t.Errorf("call %d: %s, want %s...", i, got, want)
		}
	}
}

func TestQuotaFlags(t *testing.T) {
	t.Run("quota", func(t *testing.T) {
		addr := startSim(t, "--quota=2")
		for i, want := range []int{200, 200, 405, 405} {
			code, body := signedGet(t, addr, showOne)
			if code != want {
				t.Fatalf("call %d: %d %s, want %d", i, code, body, want)
			}
			if code == 405 && !strings.Contains(body, `"error_code":"APIGW.0501","error_msg":"The app quota has been used up."`) {
				t.Errorf("405 body %s", body)
			}
		}
		if st := simStats(t, addr); st.Quota != 2 || st.QuotaCalls != 2 || st.UsedUpRefused != 2 || st.Answered != 4 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("per minute", func(t *testing.T) {
		addr := startSim(t, "--quota-per-minute=2")
		// The quota is per clock minute: try again when a minute boundary fell between
		// the calls.
		for attempt := 0; ; attempt++ {
			minute := time.Now().Truncate(time.Minute)
			var codes []int
			var last string
			for range 3 {
				code, body := signedGet(t, addr, showOne)
				codes, last = append(codes, code), body
			}
			if !time.Now().Truncate(time.Minute).Equal(minute) && attempt < 2 {
				continue
			}
			if fmt.Sprint(codes) != "[200 200 429]" && !(attempt > 0 && fmt.Sprint(codes) == "[429 429 429]") {
				t.Fatalf("codes %v, want [200 200 429]", codes)
			}
			if !strings.Contains(last, `"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:2,time:1 minute"`) {
				t.Errorf("429 body %s", last)
			}
			break
		}
		if st := simStats(t, addr); st.QuotaPerMinute != 2 || st.MinuteRefused < 1 || st.RateLimit != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestQuotaAndFaultFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--fault=token-invalid", "--fault=quota-hour"},
		{"--fault="},
		{"--quota-per-minute=-1"},
		{"--quota=-5"},
		{"--search-paging=cursor"},
	} {
		stderr := runFails(t, args)
		flag, _, _ := strings.Cut(strings.TrimPrefix(args[0], "--"), "=")
		if !strings.Contains(stderr, flag) {
			t.Errorf("%v: stderr %q does not name the flag", args, stderr)
		}
	}
	help := helpText(t)
	for _, want := range []string{"--fault", "--quota-per-minute", "--quota=", "--search-paging", "token-invalid",
		"quota-used-up", "strictest"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestDocumentedAnswers(t *testing.T) {
	addr := startSim(t, "--field-style=number", "--rate-limit=1000")
	cases := []struct {
		name, path string
		noProject  bool
		want       string // the start of "status body"
	}{
		{"unknown task", "/v2/p1/ies/task/nosuchtask", false,
			`400 {"error_code":"MSS.000000003","error_msg":"Invalid parameter: task nosuchtask does not exist."`},
		{"no X-Project-Id", showOne, true,
			`401 {"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: Unauthorized, the X-Project-Id header is missing"`},
		{"a finished task has status 0", showOne, false, `200 {`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			project := "p1"
			if c.noProject {
				project = ""
			}
			resp, body := getAs(t, addr, c.path, simSK, project)
			if got := fmt.Sprint(resp.StatusCode, " ", body); !strings.HasPrefix(got, c.want) {
				t.Fatalf("%s, want %s...", got, c.want)
			}
			if resp.StatusCode == 200 && (!strings.Contains(body, `"end_time":`) || !strings.Contains(body, `"task_status":0,`)) {
				t.Errorf("task 1 (finished) %s, want an end_time and task_status 0", body)
			}
		})
	}
	resp, err := http.Get("http://" + addr + simulator.StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(raw), `"overlaps":0,`) {
		t.Errorf("stats %s lack overlaps", raw)
	}
}

func TestSearchPagingFlag(t *testing.T) {
	cases := []struct {
		args []string
		want string // the answer's start for ?offset=1&limit=2 over 25 tasks
	}{
		{nil, `{"offset":0,"limit":10,"count":25,"data":[`},
		{[]string{"--search-paging=rows"}, `{"offset":1,"limit":2,"count":25,"data":[`},
		{[]string{"--search-paging=pages"}, `{"offset":1,"limit":2,"count":25,"data":[`},
		{[]string{"--search-paging=ignored"}, `{"offset":0,"limit":10,"count":25,"data":[`},
	}
	rowsOf := map[string]int{}
	for _, c := range cases {
		name := fmt.Sprint(c.args)
		t.Run(name, func(t *testing.T) {
			addr := startSim(t, append([]string{"--tasks=25"}, c.args...)...)
			code, body := signedGet(t, addr, "/v2/p1/ies/task?offset=1&limit=2")
			if code != 200 || !strings.HasPrefix(body, c.want) {
				t.Fatalf("%d %s, want %s...", code, body, c.want)
			}
			var page struct {
				Data []struct {
					TaskID string `json:"task_id"`
				}
			}
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			rowsOf[name] = len(page.Data)
			if len(page.Data) > 0 {
				// The first row of the answer tells the readings apart: row 1 under rows,
				// row 2 under pages (page 1 of 2 rows), row 0 under ignored.
				_, all := signedGet(t, addr, "/v2/p1/ies/task?limit=100")
				var full struct {
					Data []struct {
						TaskID string `json:"task_id"`
					}
				}
				if err := json.Unmarshal([]byte(all), &full); err != nil {
					t.Fatal(err)
				}
				first := map[string]int{"[]": 0, "[--search-paging=rows]": 1, "[--search-paging=pages]": 2, "[--search-paging=ignored]": 0}[name]
				if full.Data[first].TaskID != page.Data[0].TaskID {
					t.Errorf("first row %s, want row %d (%s)", page.Data[0].TaskID, first, full.Data[first].TaskID)
				}
			}
		})
	}
	if rowsOf["[--search-paging=ignored]"] != 10 || rowsOf["[--search-paging=pages]"] != 2 {
		t.Errorf("rows per answer %v", rowsOf)
	}
}
