package collector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// benchTasks returns n task ids and the fake's answers for them: every field set, the task
// running, the success count different for each.
func benchTasks(n int) ([]string, map[string]string) {
	ids := make([]string, n)
	bodies := map[string]string{}
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i)
		bodies[ids[i]] = fmt.Sprintf(`{"task_id":"%s","task_name":"import %d","resource":"qa_pair","begin_time":1744276967708,
			"task_type":0,"operator":"ops","total_count":5000,"success_count":%d,"failure_count":3,"task_status":1,"user_id":"u1"}`, ids[i], i, i)
	}
	return ids, bodies
}

// discardWriter is an http.ResponseWriter that drops the body.
type discardWriter struct{ header http.Header }

func (w discardWriter) Header() http.Header         { return w.header }
func (w discardWriter) Write(b []byte) (int, error) { return io.Discard.Write(b) }
func (w discardWriter) WriteHeader(int)             {}

// BenchmarkWriteExposition1000Tasks measures the text exposition of 1,000 tasks whose
// values are known: what a scrape costs once the refresher has answered, without gzip.
func BenchmarkWriteExposition1000Tasks(b *testing.B) {
	ids, bodies := benchTasks(1000)
	cfg := testConfig(ids...)
	c := newTestCollector(b, cfg, &fakeapi.API{Bodies: bodies}, log.NewNopLogger())
	results, _ := c.run(context.Background(), "")
	req := httptest.NewRequest("GET", "/metrics", nil)
	format, _ := textFormat(req)
	w := discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		writeExposition(w, req, format, results, func(string) map[string]string { return cfg.StatusNames }, nil, log.NewNopLogger())
	}
}

// BenchmarkScrapeProjects measures a warm scrape of 10,000 tasks through Handler, the
// tasks in one project or spread over 10: what serving several projects costs per task
// in the collector (make bench's BenchmarkProjects measures the whole exporter).
func BenchmarkScrapeProjects(b *testing.B) {
	for _, projects := range []int{1, 10} {
		b.Run(fmt.Sprintf("projects=%d", projects), func(b *testing.B) {
			ids, bodies := benchTasks(10000)
			cfg := testConfig(ids...)
			cfg.Cache.FinishedTTL, cfg.Scrape.MinRefreshInterval = time.Hour, time.Hour // warm: no call
			r := refresh.NewRefresher(time.Now, log.NewNopLogger())
			var ps []Project
			per := len(ids) / projects
			for k := range projects {
				name := fmt.Sprintf("proj-%02d", k)
				r.SetProject(name, NewAPI(&fakeapi.API{Bodies: bodies}), refresh.NewGuard(time.Minute, nil, time.Now, log.NewNopLogger()),
					refresh.NewRate(0, 1, 8, time.Now))
				ps = append(ps, Project{Project: &config.Project{Name: name, Tasks: ids[k*per : (k+1)*per]}})
			}
			r.Configure(8, 30*time.Second)
			ctx, cancel := context.WithCancel(context.Background())
			r.Start(ctx)
			b.Cleanup(func() {
				cancel()
				r.Wait()
			})
			c := New(cfg, ps, r, Shard{}, log.NewNopLogger())
			h := Handler(func() *Collector { return c }, NewSet(), log.NewNopLogger())
			req := httptest.NewRequest("GET", "/metrics", nil)
			h.ServeHTTP(discardWriter{header: http.Header{}}, req) // fetches every task
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(discardWriter{header: http.Header{}}, req)
			}
		})
	}
}
