package collector

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// FuzzProbeQuery: whatever the query, /probe answers 400 unless it names a listed task, and
// never calls the API for a refused one.
func FuzzProbeQuery(f *testing.F) {
	for _, seed := range []string{"task=listed", "task=", "", "task=a%2Fb", "task=..%2F..", "task=listed&task=other",
		"task=%00", "task=" + string(make([]byte, 70)), "task=unlisted", "task=%E4%BB%BB%E5%8A%A1", "task=%zz"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		api := &countingAPI{}
		cfg := testConfig("listed")
		c := New(cfg, NewFetcher(api, NewGuard(time.Minute, nil, time.Now, log.NewNopLogger()), NewLimiter(0, 1, time.Now), time.Now),
			nil, Shard{}, log.NewNopLogger())
		h := ProbeHandler(func() *Collector { return c }, log.NewNopLogger())
		req := httptest.NewRequest("GET", "/probe", nil)
		req.URL.RawQuery = rawQuery
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		values, _ := url.ParseQuery(rawQuery)
		id := values.Get("task")
		listed := id == "listed"
		switch {
		case listed && rec.Code != 200:
			t.Fatalf("query %q names the listed task but got %d", rawQuery, rec.Code)
		case !listed && rec.Code != 400:
			t.Fatalf("query %q (task %q) got %d, want 400", rawQuery, id, rec.Code)
		case !listed && api.total() != 0:
			t.Fatalf("query %q was refused but called the API", rawQuery)
		case listed && !config.ValidID(id):
			t.Fatal("a listed id must be valid")
		}
	})
}
