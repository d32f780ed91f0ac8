package main

// Operating the exporter: reload, /probe, /sd, sharding and /config, against the simulator.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// opsSim serves a simulator with finished tasks done1, done2 and a running task run1.
func opsSim(t *testing.T) (*simulator.Server, string) {
	t.Helper()
	sim := simulator.New(simulator.Options{Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject})
	for _, id := range []string{"done1", "done2"} {
		sim.SetTask(id, map[string]any{"task_id": id, "resource": "qa_pair", "total_count": 3, "success_count": 3,
			"failure_count": 0, "begin_time": 1744276967708, "end_time": 1744277967708})
	}
	sim.SetTask("run1", map[string]any{"task_id": "run1", "resource": "intent", "total_count": 3, "begin_time": 1744276967708})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func opsConfig(url, secret, extra string, tasks ...string) string {
	return "region: cn-north-4\nproject_id: " + e2eProject + "\nendpoint: " + url +
		"\ncredentials: {access_key: " + e2eAK + ", secret_key: " + secret + "}\ntasks: [" + strings.Join(tasks, ", ") + "]\n" + extra
}

// startOps builds the exporter from a config file, as the binary does.
func startOps(t *testing.T, text string, o options) (*exporter, http.Handler, string, *testkit.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	o.configFile, o.getenv, o.logger = path, noEnv, log.NewLogfmtLogger(logs)
	e, err := newExporter(ctx, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	h, err := e.handler("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return e, h, path, logs
}

func do(t *testing.T, h http.Handler, method, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code, rec.Body.String()
}

func TestReload(t *testing.T) {
	sim, url := opsSim(t)
	_, h, path, logs := startOps(t, opsConfig(url, e2eSK, "", "done1"), options{})
	if _, body := do(t, h, "GET", "/metrics"); !strings.Contains(body, `metastudio_task_scrape_success{project="default",task_id="done1"} 1`) ||
		!strings.Contains(body, "metastudio_config_last_reload_successful 1") {
		t.Fatalf("before the reload:\n%s", body)
	}
	if code, _ := do(t, h, "GET", "/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", code)
	}

	// A good file: the next scrape uses it; done1 stays cached across the reload.
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(opsConfig(url, e2eSK, "", "done1", "run1"))
	if code, body := do(t, h, "POST", "/-/reload"); code != 200 {
		t.Fatalf("POST /-/reload of a good file: %d %s", code, body)
	}
	before := sim.Requests(simulator.OpShowTask)
	_, body := do(t, h, "GET", "/metrics")
	if !strings.Contains(body, `metastudio_task_scrape_success{project="default",task_id="run1"} 1`) {
		t.Errorf("after the reload the new task is missing:\n%s", body)
	}
	if n := sim.Requests(simulator.OpShowTask) - before; n != 1 {
		t.Errorf("the scrape after the reload made %d calls, want 1 (done1 stays cached)", n)
	}

	// Bad files: the caller is told why, and the running config keeps serving.
	for name, text := range map[string]string{
		"invalid YAML":    "region: [",
		"fails checks":    opsConfig(url, e2eSK, "", "bad/id"),
		"unknown key":     opsConfig(url, e2eSK, "scrape: {concurency: 2}\n", "done1"),
		"unreadable file": "",
	} {
		if name == "unreadable file" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else {
			write(text)
		}
		code, body := do(t, h, "POST", "/-/reload")
		if code != 500 || !strings.Contains(body, "reload failed") {
			t.Errorf("%s: %d %q, want 500 with the reason", name, code, body)
		}
		_, metrics := do(t, h, "GET", "/metrics")
		if !strings.Contains(metrics, `metastudio_task_scrape_success{project="default",task_id="run1"} 1`) ||
			!strings.Contains(metrics, "metastudio_config_last_reload_successful 0") {
			t.Errorf("%s: the previous config must keep serving, and the failure show:\n%s", name, metrics)
		}
	}
	if !strings.Contains(logs.String(), "Reload failed") {
		t.Errorf("failed reloads must be logged:\n%s", logs)
	}

	// A credential change rebuilds the client; the cache of still-configured tasks survives.
	write(opsConfig(url, "a-new-but-wrong-secret", "", "done1", "run1"))
	if code, body := do(t, h, "POST", "/-/reload"); code != 200 {
		t.Fatalf("reload with new credentials: %d %s", code, body)
	}
	_, body = do(t, h, "GET", "/metrics")
	if !strings.Contains(body, `metastudio_task_scrape_success{project="default",task_id="done1"} 1`) ||
		!strings.Contains(body, `metastudio_task_scrape_success{project="default",task_id="run1"} 0`) || !strings.Contains(body, `metastudio_auth_ok{project="default"} 0`) {
		t.Errorf("after new (wrong) credentials: done1 from the cache, run1 refused:\n%s", body)
	}
	if strings.Contains(body, "a-new-but-wrong-secret") || strings.Contains(logs.String(), "a-new-but-wrong-secret") {
		t.Error("the secret appears in the output")
	}
}

func TestReloadWatchesTheFile(t *testing.T) {
	_, url := opsSim(t)
	_, h, path, _ := startOps(t, opsConfig(url, e2eSK, "", "done1"), options{watchInterval: 10 * time.Millisecond})
	if err := os.WriteFile(path, []byte(opsConfig(url, e2eSK, "", "done1", "done2")), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, body := do(t, h, "GET", "/metrics"); strings.Contains(body, `task_id="done2"`) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("a changed file was not reloaded")
}

// TestReloadRacesScrapes runs scrapes, probes and reloads at once (meant for -race).
func TestReloadRacesScrapes(t *testing.T) {
	_, url := opsSim(t)
	e, h, path, _ := startOps(t, opsConfig(url, e2eSK, "", "done1", "run1"), options{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if code, body := do(t, h, "GET", "/metrics"); code != 200 || !strings.Contains(body, `task_id="done1"`) {
					t.Errorf("scrape during reloads: %d", code)
					return
				}
				do(t, h, "GET", "/probe?task=done1")
			}
		}()
	}
	for j := 0; j < 20; j++ {
		tasks := []string{"done1", "run1"}
		if j%2 == 0 {
			tasks = append(tasks, "done2")
		}
		if err := os.WriteFile(path, []byte(opsConfig(url, e2eSK, "", tasks...)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.reloader.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestProbe(t *testing.T) {
	sim, url := opsSim(t)
	sim.SetFault("run1", simulator.FaultThrottled())
	_, h, _, _ := startOps(t, opsConfig(url, e2eSK, "", "done1", "run1"), options{})
	for _, tc := range []struct {
		target string
		code   int
		want   string
	}{
		{"/probe", 400, "missing task parameter"},
		{"/probe?task=", 400, "missing task parameter"},
		{"/probe?task=..%2F..%2Fetc", 400, "is not a task id"},
		{"/probe?task=a%2Fb", 400, "is not a task id"},
		{"/probe?task=done2", 400, "neither configured nor discovered"},
	} {
		before := sim.Requests(simulator.OpShowTask) + sim.Requests(simulator.OpOther)
		code, body := do(t, h, "GET", tc.target)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d with %q", tc.target, code, body, tc.code, tc.want)
		}
		if sim.Requests(simulator.OpShowTask)+sim.Requests(simulator.OpOther) != before {
			t.Errorf("%s made an API call", tc.target)
		}
	}
	code, body := do(t, h, "GET", "/probe?task=done1")
	for _, want := range []string{`metastudio_task_items{project="default",task_id="done1"} 3`, `metastudio_task_scrape_success{project="default",task_id="done1"} 1`,
		"metastudio_probe_success 1", "metastudio_probe_duration_seconds "} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("probe of done1 lacks %q:\n%s", want, body)
		}
	}
	for _, unwanted := range []string{"go_goroutines", "metastudio_api_requests_total", "metastudio_scrape_duration_seconds", `task_id="run1"`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("a probe carries %s", unwanted)
		}
	}
	if code, body := do(t, h, "GET", "/probe?task=run1"); code != 200 || !strings.Contains(body, "metastudio_probe_success 0") ||
		!strings.Contains(body, `metastudio_task_scrape_success{project="default",task_id="run1"} 0`) {
		t.Errorf("a probe of a failing task: %d\n%s", code, body)
	}

	// allow_unlisted lets any valid id through.
	_, h2, _, _ := startOps(t, opsConfig(url, e2eSK, "probe: {allow_unlisted: true}\n", "done1"), options{})
	if code, body := do(t, h2, "GET", "/probe?task=done2"); code != 200 || !strings.Contains(body, "metastudio_probe_success 1") {
		t.Errorf("allow_unlisted: %d\n%s", code, body)
	}
}

func TestProbeDuringCoolDown(t *testing.T) {
	_, url := opsSim(t)
	_, h, _, _ := startOps(t, opsConfig(url, "wrong-secret", "", "done1", "run1"), options{})
	do(t, h, "GET", "/metrics") // fails authentication: the cool-down starts
	code, body := do(t, h, "GET", "/probe?task=done1")
	if code != 200 || !strings.Contains(body, "metastudio_probe_success 0") {
		t.Errorf("probe during a cool-down: %d\n%s", code, body)
	}
}

func TestSDAndShards(t *testing.T) {
	_, url := opsSim(t)
	tasks := []string{"done1", "done2", "run1"}
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	seen := map[string]int{}
	for index := 0; index < 2; index++ {
		_, h, _, _ := startOps(t, opsConfig(url, e2eSK, "", tasks...), options{shard: collector.Shard{Index: index, Count: 2}})
		_, metrics := do(t, h, "GET", "/metrics") // learns the resources
		code, body := do(t, h, "GET", "/sd")
		var groups []group
		if err := json.Unmarshal([]byte(body), &groups); code != 200 || err != nil {
			t.Fatalf("/sd: %d %v\n%s", code, err, body)
		}
		for _, g := range groups {
			if _, ok := g.Labels["__meta_metastudio_resource"]; len(g.Targets) != 1 || !ok || g.Labels["__meta_metastudio_project"] != "default" || len(g.Labels) != 2 {
				t.Errorf("/sd group %+v: want one target and only the meta labels (project default)", g)
			}
			seen[g.Targets[0]]++
			if !strings.Contains(metrics, `metastudio_task_scrape_success{project="default",task_id="`+g.Targets[0]+`"}`) {
				t.Errorf("shard %d lists %s on /sd but does not export it", index, g.Targets[0])
			}
		}
	}
	for _, id := range tasks {
		if seen[id] != 1 {
			t.Errorf("task %s is on %d shards' /sd, want exactly 1", id, seen[id])
		}
	}
}

func TestConfigPageHidesSecrets(t *testing.T) {
	_, url := opsSim(t)
	_, h, _, _ := startOps(t, opsConfig(url, e2eSK, "", "done1"), options{})
	code, body := do(t, h, "GET", "/config")
	if code != 200 || !strings.Contains(body, "secret_key: <secret>") || strings.Contains(body, e2eSK) ||
		!strings.Contains(body, "access_key: "+e2eAK) || !strings.Contains(body, "timeout: 10s") {
		t.Errorf("/config: %d\n%s", code, body)
	}
	_, landing := do(t, h, "GET", "/")
	for _, link := range []string{`href="/metrics"`, `action="/probe"`, `href="/sd"`, `href="/config"`, `href="/-/healthy"`, `href="/-/ready"`} {
		if !strings.Contains(landing, link) {
			t.Errorf("the landing page lacks %s", link)
		}
	}
}

func TestShardFlags(t *testing.T) {
	for _, args := range [][]string{{"--shard.index=2", "--shard.count=2"}, {"--shard.count=0"}, {"--shard.index=-1"}} {
		code, _, stderr := runArgs(t, testEnv, append(args, "--config.file=examples/demo.yml")...)
		if code != 1 || !strings.Contains(stderr, "--shard.index") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}
