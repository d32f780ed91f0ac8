//go:build linux

package bench

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// Quick checks of the several-projects case's helpers.

// TestProjectsConfig: the exporter accepts the config of n tasks over several projects,
// each with its own id, AK and n/p tasks, named as long as "default".
func TestProjectsConfig(t *testing.T) {
	const n, p = 40, 4
	for _, ttl := range []time.Duration{0, time.Hour} {
		c := exporterConfig{tasks: n, finishedTTL: ttl, projects: p}
		cfg, _, err := config.Parse([]byte(c.yaml("http://127.0.0.1:1")), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Projects) != p || cfg.Cache.FinishedTTL != ttl || cfg.Scrape.Concurrency != benchConcurrency ||
			cfg.Scrape.MaxRequestsPerSecond != 0 {
			t.Fatalf("parsed as %+v", cfg)
		}
		ids, aks, tasks := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for k, pr := range cfg.Projects {
			if pr.Name != benchProjectName(k+1) || len(pr.Name) != len(config.DefaultProjectName) || len(pr.Tasks) != n/p ||
				pr.Credentials.AccessKey != benchProjectAK(k+1) || pr.Endpoint != "http://127.0.0.1:1" {
				t.Errorf("project %d: %s, %d tasks, AK %s, endpoint %s", k, pr.Name, len(pr.Tasks), pr.Credentials.AccessKey, pr.Endpoint)
			}
			ids[pr.ProjectID], aks[pr.Credentials.AccessKey] = true, true
			for _, id := range pr.Tasks {
				tasks[id] = true
			}
		}
		if len(ids) != p || len(aks) != p || len(tasks) != n {
			t.Errorf("%d ids, %d AKs, %d tasks; want %d, %d, %d", len(ids), len(aks), len(tasks), p, p, n)
		}
	}
}

// TestProjectsSim: the simulator of the several-projects case serves each project's n/p
// tasks under its own id (finished ones with end_time for the warm case), none beyond,
// and none in the default project; each project's AK/SK is its own.
func TestProjectsSim(t *testing.T) {
	const n, p = 40, 4
	now := time.Now()
	for _, shape := range []string{shapeSeeded, shapeFinished} {
		t.Run(shape, func(t *testing.T) {
			sim := newSim(simShape{n: n, shape: shape, projects: p}, 0, now)
			show := func(project, id string) (int, map[string]any) {
				r := httptest.NewRequest(http.MethodGet, "/v2/"+project+"/ies/task/"+id, nil)
				r.Header.Set("X-Auth-Token", benchToken)
				w := httptest.NewRecorder()
				sim.ServeHTTP(w, r)
				var f map[string]any
				_ = json.Unmarshal(w.Body.Bytes(), &f)
				return w.Code, f
			}
			for k := 1; k <= p; k++ {
				for _, j := range []int{0, n/p - 1} {
					id := simulator.ProjectTaskID(k, j)
					code, f := show(benchProjectID(k), id)
					if code != http.StatusOK || f["task_id"] != id || (shape == shapeFinished && f["end_time"] == nil) ||
						(shape == shapeSeeded && f["task_name"] == nil) {
						t.Errorf("project %d task %d: %d %v", k, j, code, f)
					}
				}
				if code, _ := show(benchProjectID(k), simulator.ProjectTaskID(k, n/p)); code == http.StatusOK {
					t.Errorf("project %d: a task beyond its %d answered %d", k, n/p, code)
				}
			}
			if code, _ := show(benchProject, simulator.TaskID(0)); code == http.StatusOK {
				t.Errorf("the default project's first task answered %d, want none", code)
			}
		})
	}
	aks := map[string]bool{}
	for _, pr := range simProjects(n, p, true) {
		for ak := range pr.Credentials {
			aks[ak] = true
		}
		if pr.Tasks != n/p {
			t.Errorf("%s: %d tasks", pr.Name, pr.Tasks)
		}
	}
	if len(aks) != p || aks[benchAK] {
		t.Errorf("AKs %v: want %d of their own", aks, p)
	}
}
