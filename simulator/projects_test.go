package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

const (
	projB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	projC = "cccccccccccccccccccccccccccccccc"
	akB   = "TEAMBAKTEAMBAKTEAMB1"
	skB   = "team-b-secret-key"
	akC   = "TEAMCAKTEAMCAKTEAMC1"
	skC   = "team-c-secret-key"
)

// twoRegions is the default project (testProject, testAK, 3 tasks, cn-north-4), "team-b"
// (projB, akB, 2 tasks, cn-east-3) and "team-c" (projC, akC and testAK too, 1 task, in
// the default region).
func twoRegions(o Options) Options {
	o.Tasks = 3
	o.MoreProjects = []Project{
		{Name: "team-b", ID: projB, Region: "cn-east-3", Credentials: map[string]string{akB: skB}, Tasks: 2},
		{Name: "team-c", ID: projC, Credentials: map[string]string{akC: skC, testAK: testSK}, Tasks: 1},
	}
	return o
}

// signedFor is a GET of path signed with ak/sk at the clock's time, with X-Project-Id
// project, as the exporter sends it.
func signedFor(c *testkit.Clock, path, project, ak, sk string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+path, nil)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(auth.HeaderProjectID, project)
	auth.Sign(r, nil, auth.Keys{AccessKey: ak, SecretKey: sk}, c.Now())
	return r
}

func taskPath(project, id string) string { return "/v2/" + project + "/ies/task/" + id }

func TestProjectTaskID(t *testing.T) {
	for _, c := range []struct {
		k, i int
		want string
	}{
		{0, 0, "00000000000000000000000000000001"},
		{0, 41, "0000000000000000000000000000002a"},
		{1, 0, "00000001000000000000000000000001"},
		{2, 15, "00000002000000000000000000000010"},
	} {
		if got := ProjectTaskID(c.k, c.i); got != c.want {
			t.Errorf("ProjectTaskID(%d, %d) = %s, want %s", c.k, c.i, got, c.want)
		}
	}
}

func TestProjectsRouting(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, twoRegions(Options{}))
	a, b, c := s.TaskIDs(), s.ProjectTaskIDs("team-b"), s.ProjectTaskIDs("team-c")
	if fmt.Sprint(len(a), len(b), len(c)) != "3 2 1" || b[1] != "00000001000000000000000000000002" ||
		c[0] != "00000002000000000000000000000001" || s.ProjectTaskIDs("nobody") != nil {
		t.Fatalf("task ids: %v %v %v", a, b, c)
	}

	// Each project answers its own tasks, with its own AK.
	for _, tc := range []struct {
		project, ak, sk, id string
	}{
		{testProject, testAK, testSK, a[2]},
		{projB, akB, skB, b[1]},
		{projC, akC, skC, c[0]},
		{projC, testAK, testSK, c[0]}, // an AK of two projects
	} {
		got := serve(s, signedFor(clock, taskPath(tc.project, tc.id), tc.project, tc.ak, tc.sk))
		if got.status != 200 || got.json(t)["task_id"] != tc.id {
			t.Errorf("%s task %s with %s: %d %s", tc.project, tc.id, tc.ak, got.status, got.body)
		}
	}

	// Tasks are separate: another project's task does not exist here.
	serve(s, signedFor(clock, taskPath(projB, a[0]), projB, akB, skB)).
		wantError(t, 400, CodeInvalidParam, "task "+a[0]+" does not exist")
	serve(s, signedFor(clock, taskPath(testProject, b[0]), testProject, testAK, testSK)).
		wantError(t, 400, CodeInvalidParam, "does not exist")
	s.SetProjectTask("team-b", "fixed-b", map[string]any{"task_id": "fixed-b", "resource": "intent"})
	serve(s, signedFor(clock, taskPath(testProject, "fixed-b"), testProject, testAK, testSK)).
		wantError(t, 400, CodeInvalidParam, "does not exist")

	// SearchTask lists the project's tasks only.
	for project, want := range map[string]string{projB: "[" + b[0] + " " + b[1] + " fixed-b]", projC: "[" + c[0] + "]"} {
		ak, sk := akB, skB
		if project == projC {
			ak, sk = akC, skC
		}
		got := serve(s, signedFor(clock, "/v2/"+project+"/ies/task", project, ak, sk))
		var page struct {
			Count int
			Data  []struct {
				TaskID string `json:"task_id"`
			}
		}
		if err := json.Unmarshal(got.body, &page); err != nil || got.status != 200 {
			t.Fatalf("SearchTask %s: %d %s", project, got.status, got.body)
		}
		var ids []string
		for _, d := range page.Data {
			ids = append(ids, d.TaskID)
		}
		slices.Sort(ids)
		if fmt.Sprint(ids) != want || page.Count != len(ids) {
			t.Errorf("SearchTask %s: count %d, %v, want %s", project, page.Count, ids, want)
		}
	}

	// A project this server does not serve is the gateway's 404.
	serve(s, signedFor(clock, taskPath("dddddddddddddddddddddddddddddddd", a[0]), "dddddddddddddddddddddddddddddddd", testAK, testSK)).
		wantError(t, 404, CodeGatewayNotFound, "does not exist")

	// Counts per project: routed requests, whatever their answer.
	for _, tc := range []struct {
		name, op string
		want     int64
	}{
		{DefaultProject, OpShowTask, 3}, {DefaultProject, OpSearchTask, 0},
		{"team-b", OpShowTask, 2}, {"team-b", OpSearchTask, 1},
		{"team-c", OpShowTask, 2}, {"team-c", OpSearchTask, 1},
		{"nobody", OpShowTask, 0},
	} {
		if got := s.ProjectRequests(tc.name, tc.op); got != tc.want {
			t.Errorf("ProjectRequests(%s, %s) = %d, want %d", tc.name, tc.op, got, tc.want)
		}
	}
}

func TestWrongProjectKeyRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode, code, msg string
		status          int
	}{
		{"", CodeGatewayAuth, "Incorrect IAM authentication information: the AK " + testAK + " has no permission on project " + projB, 401},
		{WrongProjectGateway, CodeGatewayAuth, "has no permission on project", 401},
		{WrongProjectMetaStudio, CodeAuthFailed, "Authentication failed.", 403},
	} {
		t.Run("mode "+tc.mode, func(t *testing.T) {
			t.Parallel()
			s, clock := newSim(t, twoRegions(Options{WrongProject: tc.mode}))
			idB := s.ProjectTaskIDs("team-b")[0]
			// A correctly signed call with the default project's AK to team-b's id.
			for range lockAfter + 2 {
				serve(s, signedFor(clock, taskPath(projB, idB), projB, testAK, testSK)).wantError(t, tc.status, tc.code, tc.msg)
			}
			// ... does not count toward the AK lock: the AK still works on its own project.
			if got := serve(s, signed(clock, showPath(s.TaskIDs()[0]))); got.status != 200 {
				t.Errorf("own project after wrong-project calls: %d %s", got.status, got.body)
			}
			// team-b's AK on the default project, and on team-c's, is refused alike.
			serve(s, signedFor(clock, showPath(s.TaskIDs()[0]), testProject, akB, skB)).wantError(t, tc.status, tc.code, "")
			serve(s, signedFor(clock, taskPath(projC, s.ProjectTaskIDs("team-c")[0]), projC, akB, skB)).
				wantError(t, tc.status, tc.code, "")
			// Signed with another project's SK, the AK's signature fails.
			serve(s, signedFor(clock, taskPath(projB, idB), projB, akB, testSK)).
				wantError(t, 401, CodeGatewayAuth, "verify aksk signature fail")
		})
	}
}

func TestProjectTokenScope(t *testing.T) {
	t.Parallel()
	s, _ := newSim(t, twoRegions(Options{IAMUsers: testUserOpt, Tokens: []string{"static"}}))
	a := postToken(s, "?nocatalog=true", tokenBody(testDomain, testUser, testPassword, `{"name":"cn-east-3"}`))
	if a.status != http.StatusCreated || !strings.Contains(string(a.body), `"id":"`+projB+`"`) {
		t.Fatalf("token for cn-east-3: %d %s", a.status, a.body)
	}
	tokB := a.header.Get("X-Subject-Token")
	idB, idA := s.ProjectTaskIDs("team-b")[0], s.TaskIDs()[0]
	if got := serve(s, withToken(taskPath(projB, idB), tokB)); got.status != 200 {
		t.Errorf("team-b's token on team-b: %d %s", got.status, got.body)
	}
	serve(s, withToken(showPath(idA), tokB)).wantError(t, 400, CodeTokenProject, "urlTenantId is not equal tokenTenantId")
	for _, path := range []string{showPath(idA), taskPath(projB, idB)} {
		if got := serve(s, withToken(path, "static")); got.status != 200 {
			t.Errorf("a static token on %s: %d %s", path, got.status, got.body)
		}
	}
}

func TestRegionHandler(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, twoRegions(Options{}))
	idA, idB, idC := s.TaskIDs()[0], s.ProjectTaskIDs("team-b")[0], s.ProjectTaskIDs("team-c")[0]
	get := func(region, project, id, ak, sk string) answer {
		w := httptest.NewRecorder()
		s.RegionHandler(region).ServeHTTP(w, signedFor(clock, taskPath(project, id), project, ak, sk))
		return answer{status: w.Code, header: w.Result().Header, body: w.Body.Bytes()}
	}
	for _, tc := range []struct {
		region, project, id, ak, sk string
		want                        int
	}{
		{"cn-north-4", testProject, idA, testAK, testSK, 200},
		{"cn-north-4", projC, idC, akC, skC, 200},
		{"cn-north-4", projB, idB, akB, skB, 404},
		{"cn-east-3", projB, idB, akB, skB, 200},
		{"cn-east-3", testProject, idA, testAK, testSK, 404},
		{"ap-southeast-3", projB, idB, akB, skB, 404},
		{"", projB, idB, akB, skB, 200},
		{"", testProject, idA, testAK, testSK, 200},
	} {
		got := get(tc.region, tc.project, tc.id, tc.ak, tc.sk)
		if got.status != tc.want {
			t.Errorf("region %q, project %s: %d, want %d: %s", tc.region, tc.project, got.status, tc.want, got.body)
		}
		if tc.want == 404 {
			got.wantError(t, 404, CodeGatewayNotFound, "does not exist")
		}
	}
	// IAM is global: a region's listener lists every region's projects.
	w := httptest.NewRecorder()
	s.RegionHandler("cn-east-3").ServeHTTP(w, signedFor(clock, "/v3/projects?name=cn-north-4", "", testAK, testSK))
	if got := fmt.Sprint(projectsOf(t, answer{status: w.Code, body: w.Body.Bytes()})); got != "[cn-north-4="+testProject+" cn-north-4="+projC+"]" {
		t.Errorf("cn-north-4's projects from cn-east-3's handler: %s", got)
	}
}

func TestIAMProjectsPerRegion(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, twoRegions(Options{}))
	for query, want := range map[string]string{
		"?name=cn-east-3":  "[cn-east-3=" + projB + "]",
		"?name=cn-north-4": "[cn-north-4=" + testProject + " cn-north-4=" + projC + "]",
		"":                 "[cn-east-3=" + projB + " cn-north-4=" + testProject + " cn-north-4=" + projC + "]",
	} {
		// Any known AK may list them, as IAM's listing is the account's.
		for _, k := range [][2]string{{testAK, testSK}, {akB, skB}} {
			got := fmt.Sprint(projectsOf(t, serve(s, signedFor(clock, "/v3/projects"+query, "", k[0], k[1]))))
			if got != want {
				t.Errorf("/v3/projects%s with %s: %s, want %s", query, k[0], got, want)
			}
		}
	}
	// Options.Projects, when given, is the listing as it says.
	o := twoRegions(Options{Projects: map[string][]string{"cn-east-3": {"other"}}})
	s, clock = newSim(t, o)
	if got := fmt.Sprint(projectsOf(t, serve(s, signed(clock, "/v3/projects")))); got != "[cn-east-3=other]" {
		t.Errorf("explicit Projects: %s", got)
	}
}

func TestGatewayStatsPerProject(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, twoRegions(Options{RateLimit: 1000, RateBurst: 1000}))
	idA, idB := s.TaskIDs()[0], s.ProjectTaskIDs("team-b")[0]
	serve(s, signed(clock, showPath(idA)))
	serve(s, signedFor(clock, taskPath(projB, idB), projB, akB, skB))
	serve(s, signedFor(clock, taskPath(projB, idB), projB, akB, skB))
	serve(s, signedFor(clock, "/v2/"+projB+"/ies/task", projB, akB, skB))
	serve(s, signedFor(clock, taskPath(projB, idB), projB, testAK, testSK)) // refused, still answered
	serve(s, signed(clock, "/v2/dddddddddddddddddddddddddddddddd/ies/task/x"))

	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, StatsPath, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	s.StatsHandler().ServeHTTP(w, r)
	var got struct {
		Answered int64
		Projects map[string]struct {
			Answered, Repeats int64
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	a, b := got.Projects[DefaultProject], got.Projects["team-b"]
	if got.Answered != 6 || len(got.Projects) != 2 || a.Answered != 1 || b.Answered != 4 || b.Repeats != 2 {
		t.Errorf("stats: %s", w.Body)
	}
}

func TestCheckProjects(t *testing.T) {
	t.Parallel()
	base := Options{ProjectID: testProject, Credentials: map[string]string{testAK: testSK}}
	for _, tc := range []struct {
		name string
		more []Project
		want string
	}{
		{"ok", []Project{{Name: "b", ID: projB, Credentials: map[string]string{testAK: testSK}}}, ""},
		{"no name", []Project{{ID: projB}}, "project #1: name and id must not be empty"},
		{"no id", []Project{{Name: "b"}}, "project #1: name and id must not be empty"},
		{"default name", []Project{{Name: DefaultProject, ID: projB}}, `project "default": the name is used twice`},
		{"name twice", []Project{{Name: "b", ID: projB}, {Name: "b", ID: projC}}, `project "b": the name is used twice`},
		{"default id", []Project{{Name: "b", ID: testProject}}, `project "b": id ` + testProject + " is used twice"},
		{"id twice", []Project{{Name: "b", ID: projB}, {Name: "c", ID: projB}}, "is used twice"},
		{"running above tasks", []Project{{Name: "b", ID: projB, Tasks: 1, Running: 2}}, "nor running above tasks"},
		{"AK with two SKs", []Project{{Name: "b", ID: projB, Credentials: map[string]string{testAK: "other-sk"}}},
			`project "b": AK ` + testAK + " is given two different SKs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.MoreProjects = tc.more
			err := CheckProjects(o)
			got := fmt.Sprint(err)
			if (tc.want == "" && err != nil) || (tc.want != "" && !strings.Contains(got, tc.want)) {
				t.Errorf("CheckProjects: %v, want %q", err, tc.want)
			}
			if err != nil && (strings.Contains(got, testSK) || strings.Contains(got, "other-sk")) {
				t.Errorf("the error shows an SK: %v", err)
			}
		})
	}
	defer func() {
		if v := recover(); v == nil || !strings.Contains(fmt.Sprint(v), "used twice") {
			t.Errorf("New with a bad project: recovered %v", v)
		}
	}()
	New(Options{MoreProjects: []Project{{Name: "b", ID: projB}, {Name: "b", ID: projC}}, Now: func() time.Time { return testStart }})
}
