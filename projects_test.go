package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	sgProject = "fedcba9876543210fedcba9876543210"
	sgAK      = "SGACCESSKEY000000000"
	sgSK      = "sg-secret-key-must-never-be-logged"
	sgRegion  = "ap-southeast-3"
)

// twoProjectSim is one simulator serving two projects in two regions: the default one
// (e2eProject, cn-north-4, AK e2eAK) and "sg" (sgProject, ap-southeast-3, AK sgAK, or
// e2eAK as well when sharedAK), each with 3 seeded tasks, and IAM for both regions.
func twoProjectSim(t *testing.T, sharedAK bool) (*simulator.Server, string) {
	t.Helper()
	creds := map[string]string{sgAK: sgSK}
	if sharedAK {
		creds = map[string]string{e2eAK: e2eSK}
	}
	sim := simulator.New(simulator.Options{
		Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject, Tasks: 3, FieldStyle: "number",
		MoreProjects: []simulator.Project{{Name: "sg", ID: sgProject, Region: sgRegion, Credentials: creds, Tasks: 3}},
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// projectEntry is one entry of a projects list for the simulator at url.
func projectEntry(name, url, region, projectID, ak, sk string, tasks []string) string {
	s := "  - name: " + name + "\n    region: " + region + "\n    endpoint: " + url + "\n    iam_endpoint: " + url +
		"\n    credentials: {access_key: " + ak + ", secret_key: " + sk + "}\n    tasks: [" + strings.Join(tasks, ", ") + "]\n"
	if projectID != "" {
		s += "    project_id: " + projectID + "\n"
	}
	return s
}

// TestTwoProjectsOneRefused: one exporter, one simulator, two projects in two regions;
// one project's key is refused. The other's tasks are all scraped, each series names its
// project, the refused one shows in its own auth_ok only, and /sd and /probe place every
// task in its project.
func TestTwoProjectsOneRefused(t *testing.T) {
	sim, url := twoProjectSim(t, false)
	good, bad := sim.ProjectTaskIDs("sg"), sim.ProjectTaskIDs(simulator.DefaultProject)
	text := "projects:\n" + projectEntry("good", url, sgRegion, sgProject, sgAK, sgSK, good) +
		projectEntry("bad", url, "cn-north-4", e2eProject, e2eAK, "wrong-"+e2eSK, bad)
	_, h, _, logs := startOps(t, text, options{})
	waitReady(t, h)
	families := scrape(t, h, "10")
	for _, id := range good {
		if !strings.Contains(families["metastudio_task_scrape_success"], `metastudio_task_scrape_success{project="good",task_id="`+id+`"} 1`) ||
			!strings.Contains(families["metastudio_task_items"], `{project="good",task_id="`+id+`"}`) {
			t.Errorf("good task %s is not scraped:\n%s", id, families["metastudio_task_scrape_success"])
		}
	}
	for _, id := range bad {
		if !strings.Contains(families["metastudio_task_scrape_success"], `metastudio_task_scrape_success{project="bad",task_id="`+id+`"} 0`) {
			t.Errorf("bad task %s is not scrape_success 0:\n%s", id, families["metastudio_task_scrape_success"])
		}
	}
	if got := families["metastudio_auth_ok"]; got != "metastudio_auth_ok{project=\"bad\"} 0\nmetastudio_auth_ok{project=\"good\"} 1" {
		t.Errorf("auth_ok:\n%s", got)
	}
	if got := families["metastudio_project_resolved"]; got != "metastudio_project_resolved{project=\"bad\"} 1\nmetastudio_project_resolved{project=\"good\"} 1" {
		t.Errorf("project_resolved:\n%s", got)
	}
	// One clock per API host: both projects show the same skew, whichever answer sampled it.
	skews := strings.Split(families["metastudio_clock_skew_seconds"], "\n")
	if len(skews) != 2 || !strings.HasPrefix(skews[0], `metastudio_clock_skew_seconds{project="bad"} `) ||
		strings.Fields(skews[0])[1] != strings.Fields(skews[1])[1] {
		t.Errorf("clock skew, want the host's under each project:\n%s", families["metastudio_clock_skew_seconds"])
	}
	if n := sim.ProjectRequests(simulator.DefaultProject, simulator.OpShowTask); n != 1 {
		t.Errorf("%d ShowTask calls with the refused key, want 1 (its guard cools down)", n)
	}

	// /sd: every task once, with its project.
	_, body := do(t, h, "GET", "/sd")
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(body), &groups); err != nil || len(groups) != len(good)+len(bad) {
		t.Fatalf("/sd: %v\n%s", err, body)
	}
	for _, g := range groups {
		want := "good"
		if strings.HasPrefix(g.Targets[0], bad[0][:8]) {
			want = "bad"
		}
		if g.Labels["__meta_metastudio_project"] != want {
			t.Errorf("/sd group %+v: want project %s", g, want)
		}
	}

	// /probe: with and without project; unknown projects and tasks cost no call.
	before := sim.ProjectRequests("sg", simulator.OpShowTask)
	for _, tc := range []struct{ target, want string }{
		{"/probe?project=good&task=" + good[0], `metastudio_task_items{project="good",task_id="` + good[0] + `"}`},
		{"/probe?task=" + good[1], `metastudio_task_items{project="good",task_id="` + good[1] + `"}`},
		{"/probe?project=good", `metastudio_task_items{project="good",task_id="` + good[2] + `"}`},
	} {
		code, body := do(t, h, "GET", tc.target)
		if code != http.StatusOK || !strings.Contains(body, tc.want) || strings.Contains(body, `project="bad"`) {
			t.Errorf("%s: %d, want 200 with %s and nothing of bad:\n%s", tc.target, code, tc.want, body)
		}
	}
	for _, tc := range []struct{ target, want string }{
		{"/probe?project=nope&task=" + good[0], "want one of good, bad"},
		{"/probe?project=bad&task=" + good[0], "neither configured nor discovered in project bad"},
		{"/probe?task=0000000000000000000000ff", "no project configures or discovers the task"},
	} {
		if code, body := do(t, h, "GET", tc.target); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want 400 with %q", tc.target, code, body, tc.want)
		}
	}
	if n := sim.ProjectRequests("sg", simulator.OpShowTask) - before; n > 3 {
		t.Errorf("%d ShowTask calls for 3 probes", n)
	}
	noSecrets(t, logs.String(), body)
}

// TestProbeOfATaskTwoProjectsList: an id that two projects list needs project=.
func TestProbeOfATaskTwoProjectsList(t *testing.T) {
	sim, url := twoProjectSim(t, false)
	id := sim.ProjectTaskIDs("sg")[0]
	sim.SetTask(id, map[string]any{"task_id": id, "total_count": 7})
	text := "projects:\n" + projectEntry("a", url, sgRegion, sgProject, sgAK, sgSK, []string{id}) +
		projectEntry("b", url, "cn-north-4", e2eProject, e2eAK, e2eSK, []string{id})
	_, h, _, _ := startOps(t, text, options{})
	if code, body := do(t, h, "GET", "/probe?task="+id); code != http.StatusBadRequest || !strings.Contains(body, "listed by several projects (a, b)") {
		t.Errorf("/probe of a task two projects list: %d %q, want 400 naming a and b", code, body)
	}
	if _, body := do(t, h, "GET", "/probe?project=b&task="+id); !strings.Contains(body, `metastudio_task_items{project="b",task_id="`+id+`"} 7`) {
		t.Errorf("/probe?project=b:\n%s", body)
	}
	families := scrape(t, h, "10")
	if got := families["metastudio_task_scrape_success"]; strings.Count(got, `task_id="`+id+`"} 1`) != 2 {
		t.Errorf("the id in two projects is not scraped in each:\n%s", got)
	}
}

// TestTwoProjectsOneWrongSK: two projects on one AK with a wrong SK cost one refused call
// in total until the cool-down ends, whether the calls are ShowTask (project_id given)
// or IAM's project lookup (project_id resolved), and neither project is ready or served
// meanwhile.
func TestTwoProjectsOneWrongSK(t *testing.T) {
	for _, resolve := range []bool{false, true} {
		t.Run(map[bool]string{false: "show_task", true: "resolution"}[resolve], func(t *testing.T) {
			sim, url := twoProjectSim(t, true)
			ids := map[bool]string{false: e2eProject, true: ""}
			sgID := map[bool]string{false: sgProject, true: ""}
			text := "projects:\n" +
				projectEntry("a", url, "cn-north-4", ids[resolve], e2eAK, "wrong-"+e2eSK, sim.ProjectTaskIDs(simulator.DefaultProject)) +
				projectEntry("b", url, sgRegion, sgID[resolve], e2eAK, "wrong-"+e2eSK, sim.ProjectTaskIDs("sg"))
			_, h, _, _ := startOps(t, text, options{})
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				scrape(t, h, "2")
				time.Sleep(50 * time.Millisecond) // scrapes keep coming, as from Prometheus
			}
			calls := sim.Requests(simulator.OpShowTask) + sim.Requests(simulator.OpIAMProjects)
			if calls != 1 {
				t.Errorf("%d refused calls (ShowTask and IAM) with one wrong AK in two projects, want 1", calls)
			}
			if resolve {
				code, body := do(t, h, "GET", "/-/ready")
				if code != http.StatusServiceUnavailable || !strings.Contains(body, "project a:") || !strings.Contains(body, "project b:") {
					t.Errorf("/-/ready: %d %q, want 503 naming a and b", code, body)
				}
			}
		})
	}
}

// TestProjectJoiningAnAKKeepsItsCoolDown: a project that a reload adds on an AK whose
// guard cools down does not end the cool-down.
func TestProjectJoiningAnAKKeepsItsCoolDown(t *testing.T) {
	sim, url := twoProjectSim(t, true)
	a := projectEntry("a", url, "cn-north-4", e2eProject, e2eAK, "wrong-"+e2eSK, sim.ProjectTaskIDs(simulator.DefaultProject))
	b := projectEntry("b", url, sgRegion, sgProject, e2eAK, "wrong-"+e2eSK, sim.ProjectTaskIDs("sg"))
	e, h, path, _ := startOps(t, "projects:\n"+a, options{})
	scrape(t, h, "2")
	if err := os.WriteFile(path, []byte("projects:\n"+a+b), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reloader.Reload(); err != nil {
		t.Fatal(err)
	}
	families := scrape(t, h, "2")
	if n := sim.Requests(simulator.OpShowTask); n != 1 {
		t.Errorf("%d refused calls, want 1: the cool-down goes on for the project that joined", n)
	}
	if got := families["metastudio_auth_backoff_seconds"]; strings.Count(got, "metastudio_auth_backoff_seconds{") != 2 || strings.Contains(got, "} 0\n") {
		t.Errorf("both projects show the AK's cool-down:\n%s", got)
	}
}

// TestUnresolvedProjectHoldsUpNoOther: a project whose project_id cannot be resolved (a
// refused key) is listed by /-/ready, which answers 200 for the project that is served.
func TestUnresolvedProjectHoldsUpNoOther(t *testing.T) {
	sim, url := twoProjectSim(t, false)
	good := sim.ProjectTaskIDs("sg")
	text := "projects:\n" + projectEntry("good", url, sgRegion, sgProject, sgAK, sgSK, good) +
		projectEntry("bad", url, "cn-north-4", "", e2eAK, "wrong-"+e2eSK, sim.ProjectTaskIDs(simulator.DefaultProject))
	_, h, _, _ := startOps(t, text, options{})
	body := waitReadiness(t, func() (int, string) { return do(t, h, "GET", "/-/ready") }, http.StatusOK, "Unresolved: project bad: ")
	if strings.Contains(body, "project good") {
		t.Errorf("/-/ready lists the resolved project:\n%s", body)
	}
	families := scrape(t, h, "10")
	if got := families["metastudio_project_resolved"]; got != "metastudio_project_resolved{project=\"bad\"} 0\nmetastudio_project_resolved{project=\"good\"} 1" {
		t.Errorf("project_resolved:\n%s", got)
	}
	if got := families["metastudio_task_scrape_success"]; strings.Count(got, `{project="good"`) != len(good) || strings.Contains(got, `{project="good",task_id="`+good[0]+`"} 0`) {
		t.Errorf("the served project's tasks:\n%s", got)
	}
	if n := sim.Requests(simulator.OpShowTask) - sim.ProjectRequests("sg", simulator.OpShowTask); n != 0 {
		t.Errorf("%d ShowTask calls for the unresolved project", n)
	}
}

// TestReloadAddsAndRemovesProjects: a reload that adds a project serves it; one that
// removes a project drops its series and calls it no more.
func TestReloadAddsAndRemovesProjects(t *testing.T) {
	sim, url := twoProjectSim(t, false)
	a := projectEntry("a", url, "cn-north-4", e2eProject, e2eAK, e2eSK, sim.ProjectTaskIDs(simulator.DefaultProject)[:1])
	b := projectEntry("b", url, sgRegion, sgProject, sgAK, sgSK, sim.ProjectTaskIDs("sg")[:1])
	e, h, path, _ := startOps(t, "projects:\n"+a, options{})
	reload := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.reloader.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	reload("projects:\n" + a + b)
	waitReadiness(t, func() (int, string) { return do(t, h, "GET", "/-/ready") }, http.StatusOK, "Ready")
	if got := scrape(t, h, "10")["metastudio_task_scrape_success"]; strings.Count(got, "} 1") != 2 || !strings.Contains(got, `project="b"`) {
		t.Errorf("after adding b:\n%s", got)
	}
	reload("projects:\n" + b)
	if n := e.refresher.Len(); n != 1 {
		t.Errorf("the refresher keeps %d tasks after a's removal, want b's 1", n)
	}
	calls := sim.ProjectRequests(simulator.DefaultProject, simulator.OpShowTask)
	families := scrape(t, h, "10")
	for name, f := range families {
		if strings.Contains(f, `project="a"`) {
			t.Errorf("after removing a, %s still shows it:\n%s", name, f)
		}
	}
	if n := sim.ProjectRequests(simulator.DefaultProject, simulator.OpShowTask) - calls; n != 0 {
		t.Errorf("%d calls for a removed project", n)
	}
	if strings.Count(families["metastudio_task_scrape_success"], "} 1") != 1 {
		t.Errorf("after removing a:\n%s", families["metastudio_task_scrape_success"])
	}
}

// TestBadProjectsConfig: the bad inputs give one line naming the line and path.
func TestBadProjectsConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, text, want string }{
		{"duplicate", "projects:\n" + projectEntry("a", "https://x", "cn-north-4", e2eProject, e2eAK, e2eSK, []string{"t1"}) +
			projectEntry("a", "https://x", "cn-north-4", e2eProject, e2eAK, e2eSK, []string{"t1"}), `line 9: projects[1].name: duplicate project name "a"`},
		{"space", "projects:\n" + projectEntry("a b", "https://x", "cn-north-4", e2eProject, e2eAK, e2eSK, []string{"t1"}), `line 2: projects[0].name: "a b" is not a project name`},
		{"no credentials", "projects:\n  - name: a\n    region: cn-north-4\n    project_id: " + e2eProject + "\n    tasks: [t1]\n", "line 2: projects[0].credentials"},
	} {
		path := filepath.Join(dir, tc.name+".yml")
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		code := run(t.Context(), []string{"--config.file=" + path, "--config.check"}, &stdout, &stderr, noEnv)
		if code == 0 || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want one line with %q", tc.name, code, stderr.String(), tc.want)
		}
	}
}

// TestDemoConfigHasTwoProjects: make demo's config checks, with both projects counted.
func TestDemoConfigHasTwoProjects(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run(t.Context(), []string{"--config.file=examples/demo.yml", "--config.check"}, &stdout, &stderr, noEnv)
	if code != 0 || !strings.Contains(stdout.String(), "is valid (2 projects, 18 tasks)") {
		t.Errorf("--config.check of the demo: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
}

// TestRevokedTokensOfTwoProjects: one IAM user serves two projects in two regions, a
// token each, behind one guard. IAM revokes the user's tokens (as after a password
// change): the refusal refreshes both projects' tokens, not only one, and both recover
// with no cool-down. Once a reload has removed a project, its token is no longer
// refreshed.
func TestRevokedTokensOfTwoProjects(t *testing.T) {
	sim := simulator.New(simulator.Options{
		Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject, Tasks: 3, FieldStyle: "number",
		IAMUsers:     []simulator.IAMUser{{Domain: iamDomain, User: iamUser, Password: iamPassword}},
		MoreProjects: []simulator.Project{{Name: "sg", ID: sgProject, Region: sgRegion, Credentials: map[string]string{sgAK: sgSK}, Tasks: 3}},
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	password := secretFile(t, iamPassword)
	entry := func(name, region, projectID string, tasks []string) string {
		return "  - name: " + name + "\n    region: " + region + "\n    project_id: " + projectID + "\n    endpoint: " + srv.URL +
			"\n    iam_endpoint: " + srv.URL + "\n    tasks: [" + strings.Join(tasks, ", ") + "]\n" +
			"    credentials: {iam_password: {domain_name: " + iamDomain + ", user_name: " + iamUser + ", password_file: " + password + "}}\n"
	}
	text := "projects:\n" + entry("a", "cn-north-4", e2eProject, sim.ProjectTaskIDs(simulator.DefaultProject)) +
		entry("b", sgRegion, sgProject, sim.ProjectTaskIDs("sg"))
	e, h, path, logs := startOps(t, text, options{})
	revokeAndRecover := func(tasks, projects int) {
		t.Helper()
		allGood := func(families map[string]string) bool {
			got := families["metastudio_task_scrape_success"]
			return strings.Count(got, "} 1") == tasks && !strings.Contains(got, "} 0")
		}
		if families := scrape(t, h, "5"); !allGood(families) {
			t.Fatalf("before the revocation:\n%s", families["metastudio_task_scrape_success"])
		}
		issued := sim.IssuedTokens()
		sim.RevokeTokens()
		var families map[string]string
		for range 5 {
			if families = scrape(t, h, "5"); allGood(families) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !allGood(families) {
			t.Errorf("after the revocation, every task must recover:\n%s\n%s\n%s", families["metastudio_task_scrape_success"],
				families["metastudio_auth_backoff_seconds"], logs)
		}
		if n := sim.IssuedTokens() - issued; n != projects {
			t.Errorf("%d tokens issued after the revocation, want %d: one for each project", n, projects)
		}
	}
	revokeAndRecover(6, 2)
	if err := os.WriteFile(path, []byte("projects:\n"+entry("a", "cn-north-4", e2eProject, sim.ProjectTaskIDs(simulator.DefaultProject))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reloader.Reload(); err != nil {
		t.Fatal(err)
	}
	revokeAndRecover(3, 1)
}
