package collector

import (
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

// TestAPIMetricsCountEachCall: the cached children count every call under its own
// (operation, code), and time it under its operation.
func TestAPIMetricsCountEachCall(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewAPIMetrics(reg, log.NewNopLogger())
	for _, c := range []auth.Call{
		{Operation: "ShowTask", Code: "200", Duration: 30 * time.Millisecond},
		{Operation: "ShowTask", Code: "200", Duration: 30 * time.Millisecond},
		{Operation: "ShowTask", Code: "429", Duration: 30 * time.Millisecond},
		{Operation: "SearchTask", Code: "error", Duration: 2 * time.Second},
	} {
		m.ObserveCall(c)
	}
	want := `
# HELP metastudio_api_requests_total API calls made, by operation and outcome: code is the HTTP status, or error when no response came.
# TYPE metastudio_api_requests_total counter
metastudio_api_requests_total{code="200",operation="ShowTask"} 2
metastudio_api_requests_total{code="429",operation="ShowTask"} 1
metastudio_api_requests_total{code="error",operation="SearchTask"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "metastudio_api_requests_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "metastudio_api_request_duration_seconds" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			counts[metric.GetLabel()[0].GetValue()] = metric.GetHistogram().GetSampleCount()
		}
	}
	if counts["ShowTask"] != 3 || counts["SearchTask"] != 1 || len(counts) != 2 {
		t.Errorf("duration sample counts %v, want ShowTask 3 and SearchTask 1", counts)
	}
}
