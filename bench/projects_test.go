//go:build linux

package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// The several-projects case: N tasks spread evenly over benchProjects projects of one
// simulator and one exporter, against N tasks in one project, interleaved.
const (
	// benchProjects is how many projects the tasks are spread over. The target (at most
	// 1.10 × one project's CPU per task and peak RSS) is judged by bench/cmd/benchtable.
	benchProjects = 10
)

// projectsTaskCounts are the sizes of BenchmarkProjects; make bench-quick runs the first.
var projectsTaskCounts = []int{1000, 10000}

// benchProjectName is the name of the k-th project (from 1), as long as "default" so that
// every series is as long as in the one-project case.
func benchProjectName(k int) string { return fmt.Sprintf("proj-%02d", k-1) }

// benchProjectID, benchProjectAK and benchProjectSK are the k-th project's id and key
// (from 1): each project has its own.
func benchProjectID(k int) string { return fmt.Sprintf("%032x", 0xbe0c00+k) }
func benchProjectAK(k int) string { return fmt.Sprintf("BENCHAKPROJECT%06d", k) }
func benchProjectSK(k int) string {
	return fmt.Sprintf("bench-secret-key-project-%02d-not-a-secret", k)
}

// projectTasks is how many of n tasks each of p projects has; n must be a multiple of p.
func projectTasks(n, p int) int { return n / p }

// simProjects are the simulator's projects of n tasks over p projects, besides its default
// one (which keeps no task): each with its own id and AK/SK, and n/p tasks seeded by the
// simulator when seeded, none otherwise (newSim sets them).
func simProjects(n, p int, seeded bool) []simulator.Project {
	out := make([]simulator.Project, p)
	for k := 1; k <= p; k++ {
		out[k-1] = simulator.Project{Name: benchProjectName(k), ID: benchProjectID(k),
			Credentials: map[string]string{benchProjectAK(k): benchProjectSK(k)}}
		if seeded {
			out[k-1].Tasks = projectTasks(n, p)
		}
	}
	return out
}

// setProjectTasks gives each of p projects of sim its n/p finished tasks: task j of the
// k-th project is task (k-1)×n/p + j of the one-project case, under its project's id.
func setProjectTasks(sim *simulator.Server, n, p int, now time.Time) {
	per := projectTasks(n, p)
	for k := 1; k <= p; k++ {
		for j := range per {
			id := simulator.ProjectTaskID(k, j)
			f := taskFields((k-1)*per+j, now, false)
			f["task_id"] = id
			sim.SetProjectTask(benchProjectName(k), id, f)
		}
	}
}

// BenchmarkProjects measures n tasks spread over 10 projects (each with its own id,
// AK/SK and n/10 tasks, one simulator, one exporter with a projects list of 10) against n
// tasks in one project, cold and warm, each run scraping the two exporters in turn (the
// order alternating) so that both sides see the same machine. Metrics of the 10 projects
// as BenchmarkScrape names them (wall-ms, cpu-us/task, cpu-ms/scrape, ShowTask/scrape,
// body-MiB, first-ms, RSS-MiB); the same of the one project prefixed one- (one-wall-ms,
// one-cpu-us/task, one-RSS-MiB, one-ShowTask/scrape); x-cpu, the median over the pairs
// of scrapes of the ratio of CPU per task (10 projects / 1), and x-RSS, the ratio of the
// peak RSS. The target: both ≤ 1.10.
func BenchmarkProjects(b *testing.B) {
	for _, mode := range []string{modeCold, modeWarm} {
		for _, n := range projectsTaskCounts {
			b.Run(fmt.Sprintf("%s/tasks=%d/projects=%d", mode, n, benchProjects), func(b *testing.B) {
				benchProjectsCase(b, mode, n)
			})
		}
	}
}

// projectsSide is one side of the comparison: a simulator and its exporter.
type projectsSide struct {
	sim     *child
	e       *exporterProcess
	first   sample
	samples []sample
}

func benchProjectsCase(b *testing.B, mode string, n int) {
	skipLarge(b, n)
	shape, cfg := shapeSeeded, exporterConfig{tasks: n}
	if mode == modeWarm {
		shape, cfg.finishedTTL = shapeFinished, time.Hour
	}
	many := cfg
	many.projects = benchProjects
	start := func(cfg exporterConfig, env ...string) *projectsSide {
		s := &projectsSide{sim: startSim(b, n, shape, env...)}
		s.e = startExporter(b, s.sim.url, cfg)
		return s
	}
	one := start(cfg)
	ten := start(many, fmt.Sprintf("%s=%d", envProjects, benchProjects))
	scrape := func(s *projectsSide) sample {
		r := measure(b, s.e, s.sim, 1)
		expectTasks(b, r.scrapeResult, n)
		return r
	}
	one.first, ten.first = scrape(one), scrape(ten)
	var xCPU []float64
	k := 0
	for b.Loop() {
		var a, t sample
		if k%2 == 0 {
			a, t = scrape(one), scrape(ten)
		} else {
			t, a = scrape(ten), scrape(one)
		}
		k++
		one.samples, ten.samples = append(one.samples, a), append(ten.samples, t)
		xCPU = append(xCPU, float64(t.cpu)/float64(a.cpu))
	}
	reportScrapes(b, ten.samples, n)
	b.ReportMetric(ms(ten.first.wall), "first-ms")
	rssOne, rssTen := one.e.peakRSS(b), ten.e.peakRSS(b)
	b.ReportMetric(float64(rssTen)/mib, "RSS-MiB")
	b.ReportMetric(medianOf(one.samples, func(s sample) float64 { return ms(s.wall) }), "one-wall-ms")
	b.ReportMetric(medianOf(one.samples, func(s sample) float64 { return us(s.cpu) / float64(n) }), "one-cpu-us/task")
	b.ReportMetric(medianOf(one.samples, func(s sample) float64 { return float64(s.show) }), "one-ShowTask/scrape")
	b.ReportMetric(ms(one.first.wall), "one-first-ms")
	b.ReportMetric(float64(rssOne)/mib, "one-RSS-MiB")
	b.ReportMetric(median(xCPU), "x-cpu")
	b.ReportMetric(float64(rssTen)/float64(rssOne), "x-RSS")
	b.ReportMetric(loadAverage(), "load1")
}
