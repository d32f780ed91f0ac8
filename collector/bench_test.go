package collector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit/fakeapi"
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
