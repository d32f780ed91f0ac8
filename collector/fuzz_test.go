package collector_test

// Fuzz target of the /probe query parsing. `go test` runs the seeds (the f.Add calls and
// testdata/fuzz/FuzzProbeQuery/); `make fuzz` explores from them. See docs/reliability.md.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// fuzzListed are the configured tasks of the probed exporter.
var fuzzListed = []string{"fd1c56acbb2c4b1aa24ba37df99f3129", "task_2-b", "A", strings.Repeat("z", 64)}

// FuzzProbeQuery sends /probe any raw query (and any Prometheus timeout header), with
// probe.allow_unlisted off or on. The answer is a 200 exactly when the first "task"
// parameter is a valid id that is configured (or any valid id with allow_unlisted), and
// only then may the API be called, for that id alone; anything else is a 400 that costs
// no call.
func FuzzProbeQuery(f *testing.F) {
	for _, s := range []struct {
		query, timeout string
		allowUnlisted  bool
	}{
		{"task=fd1c56acbb2c4b1aa24ba37df99f3129", "", false},
		{"task=task_2-b", "14.5", false},
		{"task=A&task=B", "", false},
		{"task=B&task=A", "", false},
		{"task=unlisted-but-valid", "", false},
		{"task=unlisted-but-valid", "10", true},
		{"", "", false},
		{"task=", "", true},
		{"task", "", false},
		{"Task=A", "", false},
		{"task=%41", "", false},
		{"task=%4", "", false},
		{"task=A%00", "", true},
		{"task=A;task=task_2-b", "", false},
		{"x=1&task=A", "", false},
		{"task=A+", "", true},
		{"task=A%20", "", true},
		{"task=../../etc/passwd", "", true},
		{"task=%E2%80%AEA", "", true},
		{"task=" + strings.Repeat("z", 64), "", false},
		{"task=" + strings.Repeat("z", 65), "", true},
		{"task=A#fragment", "", false},
		{"task=\xff", "", true},
		{"task=A", "0", false},
		{"task=A", "-1", false},
		{"task=A", "NaN", false},
		{"task=A", "1e10", false},
		{"task=A", "1e-12", false},
	} {
		f.Add(s.query, s.timeout, s.allowUnlisted)
	}

	api := &fakeapi.API{} // answers every ShowTask at once
	logger := log.NewNopLogger()
	guard := refresh.NewGuard(time.Minute, nil, time.Now, logger)
	refresher := refresh.NewRefresher(time.Now, logger)
	refresher.SetProject(collector.DefaultProject, collector.NewAPI(api), guard, refresh.NewRate(0, 1, 2, time.Now))
	refresher.Configure(2, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	refresher.Start(ctx)
	f.Cleanup(func() {
		cancel()
		refresher.Wait()
	})
	newCollector := func(allowUnlisted bool) *collector.Collector {
		cfg := &config.Config{
			Region: "cn-north-4",
			Tasks:  fuzzListed,
			Scrape: config.Scrape{Timeout: 5 * time.Second, Concurrency: 2},
			Cache:  config.Cache{FinishedTTL: 10 * time.Minute},
			Probe:  config.Probe{AllowUnlisted: allowUnlisted},
		}
		return collector.New(cfg, []collector.Project{{Project: &config.Project{Name: collector.DefaultProject, Tasks: cfg.Tasks}}}, refresher, collector.Shard{}, logger)
	}
	handlers := map[bool]http.Handler{}
	for _, allow := range []bool{false, true} {
		c := newCollector(allow)
		handlers[allow] = collector.ProbeHandler(func() *collector.Collector { return c }, logger)
	}

	f.Fuzz(func(t *testing.T, rawQuery, timeout string, allowUnlisted bool) {
		req := httptest.NewRequest(http.MethodGet, "/probe", nil)
		req.URL.RawQuery = rawQuery // as it arrived, however malformed
		req.RequestURI = ""
		if timeout != "" {
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
		}
		rec := httptest.NewRecorder()
		api.Reset()
		handlers[allowUnlisted].ServeHTTP(rec, req)
		shows, lists := api.Order(), len(api.Searches())

		// The contract: the first "task" value, as Go parses a query (pairs that do not
		// parse are skipped).
		values, _ := url.ParseQuery(rawQuery)
		id := values.Get("task")
		want := http.StatusBadRequest
		if taskIDShaped(id) && (allowUnlisted || contains(fuzzListed, id)) {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Fatalf("query %q (task %q, allow_unlisted %v): status %d, want %d\n%s", rawQuery, id, allowUnlisted, rec.Code, want, rec.Body)
		}
		if lists != 0 {
			t.Errorf("query %q: /probe called SearchTask %d times", rawQuery, lists)
		}
		if want == http.StatusBadRequest {
			if len(shows) != 0 {
				t.Fatalf("query %q: a 400 called ShowTask for %q", rawQuery, shows)
			}
			if body := strings.TrimSuffix(rec.Body.String(), "\n"); body == "" || strings.ContainsAny(body, "\r\n") {
				t.Errorf("query %q: the 400 does not say why in one line: %q", rawQuery, rec.Body)
			}
			return
		}
		for _, s := range shows {
			if s != id {
				t.Fatalf("query %q: probing %q called ShowTask for %q", rawQuery, id, s)
			}
		}
		if len(shows) > 1 {
			t.Errorf("query %q: %d ShowTask calls for one probe", rawQuery, len(shows))
		}
		body := rec.Body.String()
		if !strings.Contains(body, "metastudio_probe_success ") {
			t.Fatalf("query %q: a 200 without metastudio_probe_success:\n%s", rawQuery, body)
		}
		if len(shows) == 1 && !strings.Contains(body, "metastudio_probe_success 1") {
			t.Errorf("query %q: the call succeeded but the probe did not:\n%s", rawQuery, body)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// taskIDShaped is the contract's task id, written here independently of config.ValidID:
// 1 to 64 of A-Z a-z 0-9 - _.
func taskIDShaped(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
