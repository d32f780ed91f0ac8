package main

import (
	"fmt"
	"io"
	"strconv"
)

// The several-projects case (BenchmarkProjects): N tasks spread over projectsCount
// projects against N tasks in one, the two exporters scraped in turn within each run.
const (
	projectsCount  = 10
	projectsTarget = 1.10 // the most 10 projects may cost, as a ratio to one: CPU per task and peak RSS
)

var projectsModes = []string{"cold", "warm"}

func projectsName(mode string, n int) string {
	return fmt.Sprintf("BenchmarkProjects/%s/tasks=%d/projects=%d", mode, n, projectsCount)
}

// writeProjects writes the table of the several-projects case.
func writeProjects(w io.Writer, r *results) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\n### Several projects: N tasks over %d projects against N in one, scraped in turn in the same runs\n\n", projectsCount)
	p("Each project has its own id, AK/SK and N/%d tasks; one simulator, one exporter with a `projects` list. Cold: cache off; warm: every task finished and cached. A ratio is the median over the runs of each run's ratio (CPU: the median of its pairs of scrapes).\n\n", projectsCount)
	p("| mode | tasks | scrape wall, 1 project / %d (ms) | exporter CPU per task, 1 / %d (µs) | CPU per task, %d / 1 | peak RSS, 1 / %d (MiB) | peak RSS, %d / 1 | ShowTask calls per scrape, 1 / %d | runs |\n",
		projectsCount, projectsCount, projectsCount, projectsCount, projectsCount, projectsCount)
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, mode := range projectsModes {
		for _, n := range []int{1000, 10000} {
			name := projectsName(mode, n)
			_, runs := r.get(name, "x-cpu")
			p("| %s | %s | %s / %s | %s / %s | %s | %s / %s | %s | %s / %s | %d |\n", mode, addCommas(strconv.Itoa(n)),
				r.num(name, "one-wall-ms"), r.num(name, "wall-ms"), r.num(name, "one-cpu-us/task"), r.num(name, "cpu-us/task"),
				times(r.val(name, "x-cpu")), r.num(name, "one-RSS-MiB"), r.num(name, "RSS-MiB"), times(r.val(name, "x-RSS")),
				r.num(name, "one-ShowTask/scrape"), r.num(name, "ShowTask/scrape"), runs)
		}
	}
}

// writeProjectsTargets writes the rows of the targets table of the several-projects case:
// at 10,000 tasks, in each mode, the medians of both ratios at most projectsTarget.
func writeProjectsTargets(w io.Writer, r *results) {
	for _, mode := range projectsModes {
		name := projectsName(mode, 10000)
		xc, xr := r.val(name, "x-cpu"), r.val(name, "x-RSS")
		fmt.Fprintf(w, "| %s, 10,000 tasks in %d projects: CPU per task and peak RSS ≤ %.2f × 10,000 in one project, same runs | CPU %s (runs: %s), RSS %s (runs: %s) | %s |\n",
			mode, projectsCount, projectsTarget, times(xc), r.span(name, "x-cpu"), times(xr), r.span(name, "x-RSS"),
			verdict(xc <= projectsTarget && xr <= projectsTarget, xc, xr))
	}
}
