package main

import (
	"flag"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

var updateShorthand = flag.Bool("update-shorthand", false, "rewrite testdata/shorthand.prom (only at a base that predates the project label)")

// addedFamilies are the families that several projects added, which the saved
// exposition predates.
var addedFamilies = map[string]bool{"metastudio_project_resolved": true}

// defaultLabel is the project label of the shorthand's series, which the saved
// exposition predates.
var defaultLabel = regexp.MustCompile(`project="default",?`)

// shapeOf reduces an exposition to what must not change: every metastudio_ series with
// its labels (build info aside: it names the Go version), and the values of the task series (the others are timings and clocks).
func shapeOf(families map[string]string) string {
	var lines []string
	for name, samples := range families {
		if !strings.HasPrefix(name, "metastudio_") || name == "metastudio_exporter_build_info" || addedFamilies[name] {
			continue
		}
		for _, line := range strings.Split(samples, "\n") {
			line = strings.Replace(defaultLabel.ReplaceAllString(line, ""), ",}", "}", 1)
			line = strings.Replace(line, "{}", "", 1)
			if !strings.HasPrefix(name, "metastudio_task_") || name == "metastudio_task_data_age_seconds" {
				line = line[:strings.LastIndexByte(line, ' ')]
			}
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestShorthandExposition: the top-level keys give the series they gave before projects
// existed, but for the project label "default".
func TestShorthandExposition(t *testing.T) {
	sim, url := startSimulator(t)
	sim.SetTask("good_numbers", map[string]any{
		"task_id": "good_numbers", "task_name": "FAQ import", "resource": "qa_pair", "begin_time": 1744276967708,
		"end_time": 1744277967708, "task_type": 0, "operator": "ops", "total_count": 5000, "success_count": 4990,
		"failure_count": 10, "task_status": 2, "user_id": "u-1",
	})
	sim.SetTask("not_found", map[string]any{"task_id": "not_found", "total_count": 1})
	sim.SetFault("not_found", simulator.FaultNotFound())
	h := exporterFor(t, url, e2eSK, []string{"good_numbers", "not_found"}, &testkit.Buffer{})
	got := shapeOf(scrape(t, h, "10"))
	if *updateShorthand {
		if err := os.WriteFile("testdata/shorthand.prom", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/shorthand.prom")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the shorthand's series changed:\n%s\nwant (testdata/shorthand.prom):\n%s", got, want)
	}
}
