package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// getSigned sends a GET of path to addr signed with ak/sk, with X-Project-Id project, and
// returns the status and the body.
func getSigned(t *testing.T, addr, path, project, ak, sk string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Header.Set("Content-Type", "application/json")
	if project != "" {
		req.Header.Set(auth.HeaderProjectID, project)
	}
	auth.Sign(req, nil, auth.Keys{AccessKey: ak, SecretKey: sk}, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServesSeveralProjects(t *testing.T) {
	const (
		skA   = "secret-of-team-a-0123456789"
		projA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		projB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	)
	t.Setenv("METASTUDIO_SIM_SK", skA)
	t.Setenv("METASTUDIO_SIM_PROJECTS", "name=team-b,id="+projB+",ak=AKB,sk=secret=of,region=cn-east-3,tasks=2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--web.listen-address=127.0.0.1:0", "--tasks=3", "--project-id=" + projA, "--ak=AKA",
			"--listen=cn-east-3=127.0.0.1:0", "--rate-limit=1000"}, &stdout, &stderr)
	}()
	addr := waitAddress(t, &stderr)
	east := waitMatch(t, &stderr, regexp.MustCompile(`region=cn-east-3 listen=(\S+)`))
	const idA, idB = "00000000000000000000000000000003", "00000001000000000000000000000002"
	for _, c := range []struct {
		name, addr, project, id, ak, sk string
		want                            int
		body                            string
	}{
		{"A on the main listener", addr, projA, idA, "AKA", skA, 200, `"task_id":"` + idA + `"`},
		{"B on the main listener", addr, projB, idB, "AKB", "secret=of", 200, `"task_id":"` + idB + `"`},
		{"B's task under A", addr, projA, idB, "AKA", skA, 400, "MSS.000000003"},
		{"A's AK on B", addr, projB, idB, "AKA", skA, 401, "has no permission on project " + projB},
		{"B's AK on A", addr, projA, idA, "AKB", "secret=of", 401, "APIGW.0301"},
		{"B signed with A's SK", addr, projB, idB, "AKB", skA, 401, "verify aksk signature fail"},
		{"B on cn-east-3's listener", east, projB, idB, "AKB", "secret=of", 200, `"task_id":"` + idB + `"`},
		{"A on cn-east-3's listener", east, projA, idA, "AKA", skA, 404, "APIGW.0101"},
	} {
		status, body := getSigned(t, c.addr, "/v2/"+c.project+"/ies/task/"+c.id, c.project, c.ak, c.sk)
		if status != c.want || !strings.Contains(body, c.body) {
			t.Errorf("%s: %d %s, want %d and %q", c.name, status, body, c.want, c.body)
		}
	}
	// IAM answers each region's project, on either listener.
	for _, a := range []string{addr, east} {
		for region, want := range map[string]string{"cn-north-4": projA, "cn-east-3": projB} {
			status, body := getSigned(t, a, "/v3/projects?name="+region, "", "AKB", "secret=of")
			if status != 200 || !strings.Contains(body, `"id":"`+want+`"`) || strings.Count(body, `"id":"`) != 1 {
				t.Errorf("projects of %s from %s: %d %s", region, a, status, body)
			}
		}
	}
	// The statistics count per project the requests its path routed to a project of the
	// listener: A's 404 on cn-east-3's listener is in none.
	resp, err := http.Get("http://" + east + "/-/sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats struct {
		Projects map[string]struct{ Answered int64 }
	}
	err = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if err != nil || stats.Projects["default"].Answered != 3 || stats.Projects["team-b"].Answered != 4 {
		t.Errorf("stats per project: %v %+v", err, stats)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d; stderr %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	out := stderr.String()
	for _, want := range []string{"projects=default,team-b", "project=team-b project_id=" + projB + " region=cn-east-3 access_key=AKB tasks=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("startup lines lack %q: %s", want, out)
		}
	}
	for _, secret := range []string{skA, "secret=of"} {
		if strings.Contains(out, secret) {
			t.Errorf("startup lines show an SK: %s", out)
		}
	}
}

func TestProjectFlagErrors(t *testing.T) {
	const ok = "name=b,id=pb,ak=AKB,sk=sk-secret"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--project=name=b,id=pb,ak=AKB"}, `--project "b": sk is missing (name, id, ak and sk are required)`},
		{[]string{"--project=id=pb,ak=AKB,sk=sk-secret"}, "--project #1: name is missing"},
		{[]string{"--project=" + ok + ",colour=red"}, `--project "b": unknown key "colour" (valid: name, id, ak, sk, region, tasks, spread, running, seed)`},
		{[]string{"--project=" + ok + ",sk-secret"}, `--project "b": want key=value pairs separated by commas`},
		{[]string{"--project=" + ok + ",id=pc"}, `--project "b": id is given twice`},
		{[]string{"--project=" + ok + ",region="}, `--project "b": region must not be empty`},
		{[]string{"--project=" + ok + ",tasks=many"}, `--project "b": tasks must be a whole number, not "many"`},
		{[]string{"--project=" + ok + ",tasks=-1"}, `--project "b": tasks must be between 0 and 1000000, not -1`},
		{[]string{"--project=" + ok + ",spread=soon"}, `--project "b": spread must be a duration such as 1h, not "soon"`},
		{[]string{"--project=" + ok + ",tasks=2,spread=1h,running=3"}, `--project "b": running must be between 0 and tasks (2), not 3`},
		{[]string{"--project=" + ok + ",running=1"}, `--project "b": running needs spread`},
		{[]string{"--project=" + ok + ",seed=x"}, `--project "b": seed must be a whole number, not "x"`},
		{[]string{"--project=" + ok, "--project=" + ok}, `project "b": the name is used twice`},
		{[]string{"--project=name=default,id=pb,ak=AKB,sk=sk-secret"}, `project "default": the name is used twice`},
		{[]string{"--project=name=b,id=0123456789abcdef0123456789abcdef,ak=AKB,sk=sk-secret"}, `project "b": id 0123456789abcdef0123456789abcdef is used twice`},
		{[]string{"--project=name=b,id=pb,ak=DEMOAKDEMOAKDEMOAK00,sk=sk-secret"}, `project "b": AK DEMOAKDEMOAKDEMOAK00 is given two different SKs`},
		{[]string{"--listen=127.0.0.1:0"}, `--listen #1: want REGION=ADDRESS, not "127.0.0.1:0"`},
		{[]string{"--listen=cn-east-3=127.0.0.1:0"}, "--listen cn-east-3: no project is in that region (regions: cn-north-4)"},
		{[]string{"--project=" + ok + ",region=cn-east-3", "--listen=cn-east-3=127.0.0.1:0", "--listen=cn-east-3=127.0.0.1:0"},
			"--listen cn-east-3: the region is given twice"},
		{[]string{"--wrong-project=teapot"}, "enum value must be one of gateway,metastudio"},
	} {
		stderr := runFails(t, append([]string{"--web.listen-address=127.0.0.1:0"}, c.args...))
		if want := programName + ": " + c.want; !strings.HasPrefix(stderr, want) {
			t.Errorf("%v: stderr %q, want %q", c.args, stderr, want)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: more than one line: %q", c.args, stderr)
		}
		if strings.Contains(stderr, "sk-secret") {
			t.Errorf("%v: the error shows the SK: %s", c.args, stderr)
		}
	}
	help := helpText(t)
	for _, flag := range []string{"--project", "--wrong-project", "--listen"} {
		if !strings.Contains(help, flag+"=") {
			t.Errorf("--help does not list %s", flag)
		}
	}
}
