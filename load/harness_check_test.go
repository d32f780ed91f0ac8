//go:build linux

package load

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// TestGet: get sends Prometheus' timeout header, times the answer, and keeps a body only
// for a 200 read whole.
func TestGet(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); got != "2.5" {
			http.Error(w, "timeout header "+got, http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/fail" {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t0 := time.Now()
	for _, c := range []struct {
		path, body, err string
		status          int
	}{
		{"/ok", "ok", "", 200},
		{"/fail", "", "status 503: broken\n", 503},
	} {
		a := get(srv.Client(), t0, srv.URL+c.path, "2.5")
		if a.status != c.status || string(a.body) != c.body || a.err != c.err || a.at < 0 || a.latency <= 0 {
			t.Errorf("%s: %+v, want status %d, body %q, err %q", c.path, a, c.status, c.body, c.err)
		}
	}
	srv.Close()
	if a := get(http.DefaultClient, t0, srv.URL+"/ok", "2.5"); a.err == "" || a.status != 0 || a.body != nil {
		t.Errorf("a closed server: %+v, want a transport error", a)
	}
}

// TestGatewayCounts: each case reads the gateway's counts as its own type.
func TestGatewayCounts(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"answered": 7, "overlaps": 2}`)
	}))
	defer srv.Close()
	if s := gatewayCounts[simulator.GatewayStats](t, srv.Client(), srv.URL); s.Answered != 7 || s.Overlaps != 2 {
		t.Errorf("GatewayStats %+v", s)
	}
	if s := gatewayCounts[churnStats](t, srv.Client(), srv.URL); s.Answered != 7 || s.Overlaps == nil || *s.Overlaps != 2 {
		t.Errorf("churnStats %+v", s)
	}
}

// errorsTB records what a caseReport reports as errors.
type errorsTB struct {
	testing.TB
	errs []string
}

func (e *errorsTB) Errorf(format string, a ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, a...))
}

// TestCaseReportFinish: missed targets fail a case unless LOAD_REPORT_ONLY=1.
func TestCaseReportFinish(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		missed     int
		reportOnly bool
		want       string
	}{
		{"all met", 0, false, ""},
		{"missed", 2, false, "2 of the listing targets missed (LOAD_REPORT_ONLY=1 only reports them)"},
		{"missed, report only", 2, true, ""},
	} {
		tb := &errorsTB{TB: t}
		r := &caseReport{b: tb, prefix: "test", reportOnly: c.reportOnly}
		r.finish("exit 0 on SIGTERM", nil, c.missed, "of the listing targets")
		if got := fmt.Sprint(tb.errs); (c.want == "" && len(tb.errs) > 0) || (c.want != "" && got != "["+c.want+"]") {
			t.Errorf("%s: errors %s, want %q", c.name, got, c.want)
		}
	}
}
