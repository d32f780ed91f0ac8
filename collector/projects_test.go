package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// testProject is one project of a multi-project test: its config and its own fake API.
type testProject struct {
	name        string
	tasks       []string
	statusNames map[string]string
	api         *fakeapi.API
	unavailable error
}

// startProjects runs one Refresher with a lane per project, each with its own fake API,
// guard and rate (an unavailable project too: a call it should not get would show), and
// returns a Collector of shard over them.
func startProjects(t *testing.T, shard Shard, ps ...testProject) *Collector {
	t.Helper()
	cfg := testConfig()
	r := startRefresher(t, &fakeapi.API{}, time.Now, 0, cfg.Scrape.Concurrency, cfg.Scrape.Timeout)
	var projects []Project
	for _, p := range ps {
		guard := refresh.NewGuard(time.Minute, nil, time.Now, log.NewNopLogger())
		r.SetProject(p.name, NewAPI(p.api), guard, refresh.NewRate(0, 1, cfg.Scrape.Concurrency, time.Now))
		projects = append(projects, Project{Project: &config.Project{Name: p.name, Tasks: p.tasks, StatusNames: p.statusNames}, Unavailable: p.unavailable})
	}
	return New(cfg, projects, r, shard, log.NewNopLogger())
}

// tasksWith is a fake API whose task id answers with total_count items and task_status.
func tasksWith(t *testing.T, bodies map[string]string) *fakeapi.API {
	api := &fakeapi.API{Tasks: map[string]*metastudio.Task{}}
	for id, b := range bodies {
		api.Tasks[id] = decodeTask(t, `{"task_id":"`+id+`","begin_time":1744276967708,`+b+`}`)
	}
	return api
}

const protobufAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"

// serve asks h for url with Accept accept ("" for none) and returns the status and the
// body, decoded and written again as text when it is protobuf.
func serve(t *testing.T, h http.Handler, url, accept string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), "protobuf") {
		return rec.Code, rec.Body.String()
	}
	var buf bytes.Buffer
	dec := expfmt.NewDecoder(rec.Body, expfmt.ResponseFormat(rec.Header()))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s as protobuf: %v", url, err)
		}
		if _, err := expfmt.MetricFamilyToText(&buf, &mf); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Code, buf.String()
}

// scrapeBoth scrapes /metrics as text and as protobuf and checks that each has every
// line of want (in text form).
func scrapeBoth(t *testing.T, c *Collector, want ...string) {
	t.Helper()
	h := Handler(func() *Collector { return c }, NewSet(), log.NewNopLogger())
	for _, accept := range []string{"text/plain;version=0.0.4", protobufAccept} {
		_, body := serve(t, h, "/metrics", accept)
		for _, line := range want {
			if !strings.Contains(body, line+"\n") {
				t.Errorf("Accept %s: want %s in\n%s", accept, line, body)
			}
		}
	}
}

// TestProjectsInOneScrape: one scrape of two projects on one refresher gives the task t1
// of each, with its own project label and its own API's values, in text and protobuf.
func TestProjectsInOneScrape(t *testing.T) {
	a := tasksWith(t, map[string]string{"t1": `"total_count":10`})
	b := tasksWith(t, map[string]string{"t1": `"total_count":20`})
	c := startProjects(t, Shard{}, testProject{name: "a", tasks: []string{"t1"}, api: a},
		testProject{name: "b", tasks: []string{"t1"}, api: b})
	scrapeBoth(t, c,
		`metastudio_task_items{project="a",task_id="t1"} 10`,
		`metastudio_task_items{project="b",task_id="t1"} 20`,
		`metastudio_task_scrape_success{project="a",task_id="t1"} 1`,
		`metastudio_task_scrape_success{project="b",task_id="t1"} 1`)
	if a.PerID()["t1"] == 0 || b.PerID()["t1"] == 0 {
		t.Errorf("calls a %v, b %v: each project's task goes to its own API", a.PerID(), b.PerID())
	}
}

// TestUnavailableProject: the tasks of a project without a client fail with no call made;
// the other project's tasks are scraped.
func TestUnavailableProject(t *testing.T) {
	good, refused := &fakeapi.API{}, &fakeapi.API{}
	c := startProjects(t, Shard{}, testProject{name: "good", tasks: []string{"t1", "t2"}, api: good},
		testProject{name: "refused", tasks: []string{"t1", "t3"}, api: refused, unavailable: errors.New("credentials refused")})
	scrapeBoth(t, c,
		`metastudio_task_scrape_success{project="good",task_id="t1"} 1`,
		`metastudio_task_scrape_success{project="good",task_id="t2"} 1`,
		`metastudio_task_scrape_success{project="refused",task_id="t1"} 0`,
		`metastudio_task_scrape_success{project="refused",task_id="t3"} 0`)
	probe := ProbeHandler(func() *Collector { return c }, log.NewNopLogger())
	if _, body := serve(t, probe, "/probe?project=refused&task=t3", ""); !strings.Contains(body, "metastudio_probe_success 0\n") {
		t.Errorf("probing the unavailable project's task: want probe_success 0 in\n%s", body)
	}
	if n := refused.Total(); n != 0 {
		t.Errorf("the unavailable project's API got %d calls, want none", n)
	}
}

// TestStatusNamesPerProject: each project's status_names name its own tasks' status.
func TestStatusNamesPerProject(t *testing.T) {
	body := map[string]string{"t1": `"task_status":2`}
	c := startProjects(t, Shard{},
		testProject{name: "a", tasks: []string{"t1"}, statusNames: map[string]string{"2": "succeeded"}, api: tasksWith(t, body)},
		testProject{name: "b", tasks: []string{"t1"}, statusNames: map[string]string{"2": "done"}, api: tasksWith(t, body)},
		testProject{name: "c", tasks: []string{"t1"}, api: tasksWith(t, body)})
	scrapeBoth(t, c,
		`metastudio_task_status{project="a",status="succeeded",task_id="t1"} 1`,
		`metastudio_task_status{project="b",status="done",task_id="t1"} 1`,
		`metastudio_task_status{project="c",status="2",task_id="t1"} 1`)
}

// TestProbeChoosesTheProject: /probe takes project=NAME, or the one project that lists
// the task, or the only project; otherwise a 400 that names the projects, with no call.
func TestProbeChoosesTheProject(t *testing.T) {
	a := tasksWith(t, map[string]string{"t1": `"total_count":10`})
	b := tasksWith(t, map[string]string{"t1": `"total_count":20`, "x": `"total_count":30`})
	c := startProjects(t, Shard{}, testProject{name: "a", tasks: []string{"t1"}, api: a},
		testProject{name: "b", tasks: []string{"t1", "x"}, api: b})
	probe := ProbeHandler(func() *Collector { return c }, log.NewNopLogger())
	for _, tc := range []struct {
		url    string
		code   int
		want   []string
		absent string
		calls  map[*fakeapi.API][]string // the ids each API is asked for
	}{
		{"/probe?project=a&task=t1", 200, []string{`metastudio_task_items{project="a",task_id="t1"} 10`, "metastudio_probe_success 1"},
			`project="b"`, map[*fakeapi.API][]string{a: {"t1"}}},
		{"/probe?project=b&task=t1", 200, []string{`metastudio_task_items{project="b",task_id="t1"} 20`}, `project="a"`,
			map[*fakeapi.API][]string{b: {"t1"}}},
		{"/probe?task=x", 200, []string{`metastudio_task_items{project="b",task_id="x"} 30`}, `project="a"`,
			map[*fakeapi.API][]string{b: {"x"}}},
		{"/probe?task=t1", 400, []string{"several projects (a, b)"}, "", nil},
		{"/probe?task=nowhere", 400, []string{"no project configures or discovers the task", "one of a, b"}, "", nil},
		{"/probe?project=zz&task=t1", 400, []string{"want one of a, b"}, "", nil},
		{"/probe?project=zz", 400, []string{"want one of a, b"}, "", nil},
		{"/probe?project=a", 200, []string{`metastudio_task_items{project="a",task_id="t1"} 10`, "metastudio_scrape_duration_seconds "},
			`project="b"`, map[*fakeapi.API][]string{a: {"t1"}}},
		{"/probe?project=b", 200, []string{`metastudio_task_items{project="b",task_id="t1"} 20`, `metastudio_task_items{project="b",task_id="x"} 30`},
			`project="a"`, map[*fakeapi.API][]string{b: {"t1", "x"}}},
	} {
		for _, accept := range []string{"", protobufAccept} {
			a.Reset()
			b.Reset()
			code, body := serve(t, probe, tc.url, accept)
			if code != tc.code {
				t.Errorf("%s (Accept %q): status %d, want %d: %s", tc.url, accept, code, tc.code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s (Accept %q): want %q in\n%s", tc.url, accept, w, body)
				}
			}
			if tc.absent != "" && strings.Contains(body, tc.absent) {
				t.Errorf("%s (Accept %q): want no %s in\n%s", tc.url, accept, tc.absent, body)
			}
			for name, api := range map[string]*fakeapi.API{"a": a, "b": b} {
				got := api.Order()
				slices.Sort(got)
				if want := tc.calls[api]; !slices.Equal(got, want) {
					t.Errorf("%s (Accept %q): the API of %s was asked for %v, want %v", tc.url, accept, name, got, want)
				}
			}
		}
	}

	solo := startProjects(t, Shard{}, testProject{name: "solo", tasks: []string{"t1"}, api: &fakeapi.API{}})
	soloProbe := ProbeHandler(func() *Collector { return solo }, log.NewNopLogger())
	solo.cfg.Probe.AllowUnlisted = true // an unlisted task, too, is the only project's
	for _, id := range []string{"t1", "unlisted"} {
		code, body := serve(t, soloProbe, "/probe?task="+id, "")
		if want := `metastudio_task_scrape_success{project="solo",task_id="` + id + `"} 1`; code != 200 || !strings.Contains(body, want) {
			t.Errorf("one project: /probe?task=%s gave %d, want %s in\n%s", id, code, want, body)
		}
	}
}

// TestSDNamesTheProject: /sd gives one target group per task of each project, the project
// in __meta_metastudio_project; the same id in two projects is two groups.
func TestSDNamesTheProject(t *testing.T) {
	c := startProjects(t, Shard{}, testProject{name: "a", tasks: []string{"t1"}, api: &fakeapi.API{}},
		testProject{name: "b", tasks: []string{"t1", "x"}, api: &fakeapi.API{}})
	_, body := serve(t, SDHandler(func() *Collector { return c }), "/sd", "")
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(body), &groups); err != nil {
		t.Fatalf("/sd: %v\n%s", err, body)
	}
	var got []string
	for _, g := range groups {
		got = append(got, fmt.Sprintf("%s/%v", g.Labels["__meta_metastudio_project"], g.Targets))
	}
	if want := []string{"a/[t1]", "b/[t1]", "b/[x]"}; !slices.Equal(got, want) {
		t.Errorf("/sd groups %v, want %v", got, want)
	}
}

// TestShardSplitsByIDAlone: the tasks of all projects are split together by their ids
// alone (FNV-1a-64(id) mod count, whatever the project), so a task id shows in the same
// shard in every project that lists it, and every target is in exactly one shard.
func TestShardSplitsByIDAlone(t *testing.T) {
	ids := manyTasks(40)
	const count = 3
	seen := map[string]int{} // project/id: the shards that export it
	for index := range count {
		shard := Shard{Index: index, Count: count}
		c := startProjects(t, shard, testProject{name: "a", tasks: ids, api: &fakeapi.API{}},
			testProject{name: "b", tasks: ids[10:], api: &fakeapi.API{}})
		inShard := map[string][]string{} // id: the projects this shard exports it for
		for _, k := range c.Watched("") {
			seen[k.Project+"/"+k.ID]++
			inShard[k.ID] = append(inShard[k.ID], k.Project)
		}
		for _, id := range ids {
			want := []string{"a", "b"}
			if id < ids[10] {
				want = want[:1]
			}
			if fnv1a64(id)%count != uint64(index) {
				want = nil
			}
			if !slices.Equal(inShard[id], want) {
				t.Errorf("shard %d of %d exports %s for projects %v, want %v", index, count, id, inShard[id], want)
			}
		}
	}
	if len(seen) != 40+30 {
		t.Errorf("%d of 70 targets exported by some shard", len(seen))
	}
	for target, n := range seen {
		if n != 1 {
			t.Errorf("%s is exported by %d shards, want 1", target, n)
		}
	}
}
