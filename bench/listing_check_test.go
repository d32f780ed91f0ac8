//go:build linux

package bench

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// Quick checks of the listing benchmarks' helpers.

func TestParseListed(t *testing.T) {
	loaded := `level=info ts=2026-12-04T00:00:01.5Z caller=main.go:129 msg="Loaded config" file=/c.yml region=cn-north-4 tasks=0` + "\n"
	listed := `level=debug ts=2026-12-04T00:00:04.25Z caller=discovery.go:223 project=default msg="Discovery listed tasks" tasks=10000 calls=1113 paging=none` + "\n"
	cases := []struct {
		name string
		log  string
		want listedPass
		ok   bool
		err  bool
	}{
		{"both lines", loaded + "level=info msg=other\n" + listed, listedPass{tasks: 10000, calls: 1113, wall: 2750 * time.Millisecond}, true, false},
		{"the pass not yet logged", loaded, listedPass{}, false, false},
		{"an empty log", "", listedPass{}, false, false},
		{"the first pass counts", loaded + listed + `level=debug ts=2026-12-04T01:00:04Z caller=discovery.go:196 msg="Discovery listed tasks" tasks=3 calls=1 paging=none` + "\n",
			listedPass{tasks: 10000, calls: 1113, wall: 2750 * time.Millisecond}, true, false},
		{"a broken time", `level=info ts=yesterday caller=main.go:129 msg="Loaded config"` + "\n" + listed, listedPass{}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, ok, err := parseListed([]byte(c.log))
			if p != c.want || ok != c.ok || (err != nil) != c.err {
				t.Errorf("got %+v, %v, %v; want %+v, %v, error %v", p, ok, err, c.want, c.ok, c.err)
			}
		})
	}
}

func TestParseDiscoveryGauges(t *testing.T) {
	body := []byte(`# TYPE metastudio_discovery_missed_tasks gauge
metastudio_discovery_missed_tasks{project="default"} 15
# TYPE metastudio_discovery_paging gauge
metastudio_discovery_paging{mode="rows",project="default"} 0
metastudio_discovery_paging{mode="pages",project="default"} 1
metastudio_discovery_paging{mode="none",project="default"} 0
# TYPE metastudio_discovery_tasks gauge
metastudio_discovery_tasks{project="default"} 10
`)
	g, err := parseDiscoveryGauges(body)
	if err != nil || g.missed != 15 || len(g.paging) != 3 || g.paging["pages"] != 1 || g.paging["rows"] != 0 {
		t.Errorf("got %+v, %v", g, err)
	}
	// Several projects, more labels: the missed tasks are summed.
	two := []byte(`metastudio_discovery_missed_tasks{project="a"} 2
metastudio_discovery_missed_tasks{project="b",region="x"} 3
`)
	if g, err := parseDiscoveryGauges(two); err != nil || g.missed != 5 || len(g.paging) != 0 {
		t.Errorf("two projects: %+v, %v", g, err)
	}
	for name, body := range map[string]string{
		"without the gauges":    "go_goroutines 7\n",
		"a paging without mode": "metastudio_discovery_missed_tasks{project=\"a\"} 0\nmetastudio_discovery_paging{project=\"a\"} 1\n",
		"a broken exposition":   "metastudio_discovery_missed_tasks{project=\"a\" 0\n",
	} {
		if g, err := parseDiscoveryGauges([]byte(body)); err == nil {
			t.Errorf("%s: no error, got %+v", name, g)
		}
	}
}

func TestCallBound(t *testing.T) {
	cases := []struct {
		name      string
		n, per    int
		want      float64
		perAnswer string
	}{
		{"10,000 by 100", 10000, 100, 160, simulator.PagingRows},
		{"10,000 by 10", 10000, 10, 1510, simulator.PagingIgnored},
		{"100,000 by 100", 100000, 100, 1510, simulator.PagingPages},
		{"a partial answer counts", 101, 100, 13, simulator.PagingRows},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := callBound(c.n, c.per); got != c.want {
				t.Errorf("callBound(%d, %d) = %v, want %v", c.n, c.per, got, c.want)
			}
			if got := rowsPerAnswer(c.perAnswer); got != c.per {
				t.Errorf("rowsPerAnswer(%s) = %d, want %d", c.perAnswer, got, c.per)
			}
		})
	}
}

// TestSpreadShape: the simulator of the listing benchmarks lists n finished tasks begun
// over the span, newest first (task 0 first), under the paging asked for.
func TestSpreadShape(t *testing.T) {
	const n = 30
	span := 7 * 24 * time.Hour
	now := time.Now()
	for _, paging := range pagings {
		t.Run(paging, func(t *testing.T) {
			sim := newSim(simShape{n: n, shape: shapeSpread, span: span, paging: paging}, 0, now)
			q := url.Values{"begin_time": {strconv.FormatInt(now.Add(-span).UnixMilli(), 10)}, "limit": {"100"}}
			r := httptest.NewRequest(http.MethodGet, "/v2/"+benchProject+"/ies/task?"+q.Encode(), nil)
			r.Header.Set("X-Auth-Token", benchToken)
			w := httptest.NewRecorder()
			sim.ServeHTTP(w, r)
			var page struct {
				Limit int              `json:"limit"`
				Count int              `json:"count"`
				Data  []map[string]any `json:"data"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || w.Code != http.StatusOK {
				t.Fatalf("SearchTask: %d %v", w.Code, err)
			}
			if page.Count != n || len(page.Data) != min(n, rowsPerAnswer(paging)) || page.Limit != rowsPerAnswer(paging) {
				t.Fatalf("count %d, %d rows, limit %d", page.Count, len(page.Data), page.Limit)
			}
			for i, d := range page.Data {
				if d["task_id"] != simulator.TaskID(i) || d["end_time"] == nil {
					t.Errorf("row %d: %v, want finished task %d", i, d["task_id"], i)
				}
			}
			// Task 0 began half a step (2.8 h) before now; the step is 7 days / 30.
			b0 := time.UnixMilli(int64(page.Data[0]["begin_time"].(float64)))
			if want := now.Add(-span / (2 * n)); b0.Sub(want).Abs() > time.Millisecond {
				t.Errorf("task 0 began %s, want %s", b0, want)
			}
		})
	}
}

// TestListingConfigs: the exporter accepts the listing benchmarks' configs.
func TestListingConfigs(t *testing.T) {
	getenv := func(name string) string {
		return map[string]string{"CLOUD_SDK_AK": benchAK, "CLOUD_SDK_SK": benchSK}[name]
	}
	cases := []struct {
		name     string
		c        exporterConfig
		lookback time.Duration
		maxTasks int
	}{
		{"the defaults", exporterConfig{discovery: true}, 24 * time.Hour, 100000},
		{"the pass", exporterConfig{finishedTTL: time.Hour, discovery: true, lookback: listSpan + time.Hour, debugLog: true},
			169 * time.Hour, 100000},
		{"100,000 listed", exporterConfig{discovery: true, lookback: listSpan + time.Hour, maxTasks: 200000}, 169 * time.Hour, 200000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _, err := config.Parse([]byte(c.c.yaml("http://127.0.0.1:1")), getenv)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.Discovery.Enabled || cfg.Discovery.Lookback != c.lookback || cfg.Discovery.MaxTasks != c.maxTasks {
				t.Errorf("parsed as %+v", cfg.Discovery)
			}
		})
	}
}
