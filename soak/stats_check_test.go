package soak

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// Quick tests of the soak's helpers: `go test ./soak/` runs these and no benchmark.

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.5, 3}, {1, 5}, {0.25, 2}, {0.9, 4.6}} {
		if got := testkit.Quantile(xs, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("testkit.Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("quantile sorted its argument")
	}
	if !math.IsNaN(testkit.Quantile(nil, 0.5)) {
		t.Error("quantile of nothing is not NaN")
	}
}

func TestFlatness(t *testing.T) {
	span, window := 5*time.Minute, time.Minute
	var flat, growing []point
	for s := 0; s <= 300; s++ {
		at := time.Duration(s) * time.Second
		noise := float64(s%7) - 3 // -3..3
		flat = append(flat, point{at, 100 + noise})
		growing = append(growing, point{at, 100 + noise + float64(s)/10}) // +30 over 5 minutes
	}
	if tr := flatness(flat, window, span, 1); tr.beyond || math.Abs(tr.growth) > 1 || math.Abs(tr.slope) > 0.5 {
		t.Errorf("flat series judged %+v", tr)
	}
	tr := flatness(growing, window, span, 1)
	if !tr.beyond || tr.growth < 20 || math.Abs(tr.slope-6) > 0.5 {
		t.Errorf("growing series judged %+v", tr)
	}
	if tr.start != 97 || tr.max < 129 || tr.verdict() != "GROWS beyond noise" {
		t.Errorf("start %v, max %v, verdict %q", tr.start, tr.max, tr.verdict())
	}
	// Under minNoise, a step is no growth.
	step := []point{{0, 10}, {10 * time.Second, 10}, {290 * time.Second, 11}, {300 * time.Second, 11}}
	if tr := flatness(step, window, span, 2); tr.beyond {
		t.Errorf("a step of 1 under minNoise 2 judged %+v", tr)
	}
	if tr := flatness(nil, window, span, 1); tr.verdict() != "no samples" {
		t.Errorf("no samples judged %q", tr.verdict())
	}
}

func TestSummarize(t *testing.T) {
	body := `# TYPE go_goroutines gauge
go_goroutines 42
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.5e+07
# TYPE metastudio_api_requests_total counter
metastudio_api_requests_total{code="200",operation="ShowTask",project="default"} 90
metastudio_api_requests_total{code="500",operation="ShowTask",project="default"} 10
# TYPE metastudio_api_rate_limit_per_second gauge
metastudio_api_rate_limit_per_second{project="default"} 5
# TYPE metastudio_scrape_duration_seconds gauge
metastudio_scrape_duration_seconds 9.25
# TYPE metastudio_task_scrape_success gauge
metastudio_task_scrape_success{project="default",task_id="a"} 1
metastudio_task_scrape_success{project="default",task_id="b"} 0
metastudio_task_scrape_success{project="default",task_id="c"} 1
# TYPE metastudio_task_data_age_seconds gauge
metastudio_task_data_age_seconds{project="default",task_id="a"} 0
metastudio_task_data_age_seconds{project="default",task_id="c"} 30
# TYPE metastudio_task_end_timestamp_seconds gauge
metastudio_task_end_timestamp_seconds{project="default",task_id="c"} 1.7e+09
`
	e, err := summarize(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if e.tasks != 3 || e.failed != 1 || e.finished != 1 || e.meanAge != 15 || e.maxAge != 30 ||
		e.goroutines != 42 || e.rss != 1.5e7 || e.apiCalls != 100 || e.rateLimit != 5 || e.duration != 9.25 {
		t.Errorf("summarize = %+v", e)
	}
	if e.byCode["200"] != 90 || e.byCode["500"] != 10 || len(e.byCode) != 2 {
		t.Errorf("by code: %v", e.byCode)
	}
	if !math.IsNaN(e.probeOK) || !math.IsNaN(e.throttled) {
		t.Errorf("absent gauges are not NaN: %+v", e)
	}
	for name, text := range map[string]string{
		"broken":              "metastudio_task_scrape_success{project=\"default\",task_id=\"a\" 1\n",
		"without task series": "# TYPE go_goroutines gauge\ngo_goroutines 42\n",
	} {
		if e, err := summarize(strings.NewReader(text)); err == nil {
			t.Errorf("an exposition %s parsed: %+v", name, e)
		}
	}
}

func TestProcStatus(t *testing.T) {
	text := "Name:\tmetastudio_expo\nVmHWM:\t   30000 kB\nVmRSS:\t   25000 kB\nThreads:\t9\n"
	got, err := procStatus(text, "VmRSS", "Threads")
	if err != nil {
		t.Fatal(err)
	}
	if got["VmRSS"] != 25000*1024 || got["Threads"] != 9 {
		t.Errorf("procStatus = %v", got)
	}
	if _, err := procStatus(text, "VmSwap"); err == nil {
		t.Error("a missing field is no error")
	}
}

func TestLogValue(t *testing.T) {
	line := `ts=2025-01-01T00:00:00Z caller=collector.go:307 level=warn msg="Task scrape failed" task_id=01 error_code=rate_budget err="a b"`
	for key, want := range map[string]string{"level": "warn", "msg": "Task scrape failed", "error_code": "rate_budget",
		"err": "a b", "ts": "2025-01-01T00:00:00Z", "status": ""} {
		if got := logValue(line, key); got != want {
			t.Errorf("logValue(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestParseFaults(t *testing.T) {
	f, err := parseFaults("error=0.02, throttle=0.01,slow=0.01,malformed=0.01")
	if err != nil || f != (faultMix{0.02, 0.01, 0.01, 0.01}) || math.Abs(f.total()-0.05) > 1e-12 {
		t.Errorf("parseFaults = %+v, %v", f, err)
	}
	if f, err := parseFaults("error=0.05"); err != nil || f != (faultMix{errors: 0.05}) {
		t.Errorf("parseFaults(error only) = %+v, %v", f, err)
	}
	for _, bad := range []string{"error", "error=x", "error=2", "timeout=0.1", "error=0.6,slow=0.6"} {
		if _, err := parseFaults(bad); err == nil {
			t.Errorf("parseFaults(%q) accepted", bad)
		}
	}
}
