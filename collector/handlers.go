package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// series are the series of results, through client_golang (the protobuf path).
func (c *Collector) series(results []result) replay {
	series := make(replay, 0, 9*len(results)+1)
	ch := make(chan prometheus.Metric, 1024)
	go func() {
		for _, r := range results {
			c.emitValues(ch, r)
		}
		close(ch)
	}()
	for m := range ch {
		series = append(series, m)
	}
	return series
}

// ScrapeTimeout is the deadline of one scrape: Prometheus' X-Prometheus-Scrape-Timeout-
// Seconds minus half a second (for encoding and transfer), at most scrape.timeout.
func ScrapeTimeout(r *http.Request, max time.Duration) time.Duration {
	header := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if header == "" {
		return max
	}
	seconds, err := strconv.ParseFloat(header, 64)
	if err != nil || seconds <= 0 || math.IsNaN(seconds) || math.IsInf(seconds, 0) || seconds > max.Seconds()+timeoutOffset.Seconds() {
		return max // also before converting: a huge value would overflow the duration
	}
	t := time.Duration(seconds * float64(time.Second))
	if t > timeoutOffset {
		t -= timeoutOffset
	}
	return min(t, max)
}

// Handler serves /metrics: each request scrapes under its own deadline, then answers with
// the tasks' series (written from their kept values, render.go) and the process-wide ones
// of global, gathered after the scrape so that the API counters include its calls. A
// client that asks for protobuf (or filters with name[]) is served through promhttp from
// the same results. current returns the Collector of the running config.
func Handler(current func() *Collector, global *Set, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := current()
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r, c.cfg.Scrape.Timeout))
		defer cancel()
		format, text := textFormat(r)
		results, duration := c.run(ctx, "")
		if !text {
			serveRegistry(w, r, logger, append(c.series(results), duration), global)
			return
		}
		writeExposition(w, r, format, results, c.statusNames, gatherExtra(logger, replay{duration}, global), logger)
	})
}

// serveRegistry answers through promhttp from a fresh registry of cs.
func serveRegistry(w http.ResponseWriter, r *http.Request, logger log.Logger, cs ...prometheus.Collector) {
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			level.Error(logger).Log("msg", "Registering the series of a scrape", "err", err)
		}
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      errorLogger{logger},
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

// ProbeHandler serves /probe, blackbox style, without the exporter-wide metrics:
// ?project=NAME&task=ID gives one task's series (written as on /metrics) with the probe's
// own; ?project=NAME alone gives the series of every task of that project, as /metrics
// would. Without project, a task is probed in its own project: the one project that lists
// it, or the only project. A missing, malformed, unknown or refused parameter is a 400
// that says what is right and costs no API call; an API failure is a 200 with
// metastudio_probe_success 0.
func ProbeHandler(current func() *Collector, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := current()
		q := r.URL.Query()
		project, id := q.Get("project"), q.Get("task")
		switch {
		case project != "" && c.byName[project] == nil:
			http.Error(w, fmt.Sprintf("the project parameter names no project: want one of %s", strings.Join(c.Projects(), ", ")),
				http.StatusBadRequest)
			return
		case id == "" && project == "":
			http.Error(w, "missing task parameter: use /probe?task=<task id>, /probe?project=<project>&task=<task id>, or /probe?project=<project> for a whole project",
				http.StatusBadRequest)
			return
		case id == "":
			probeProject(w, r, c, project, logger)
			return
		case !config.ValidID(id):
			http.Error(w, "the task parameter is not a task id: want 1 to 64 of A-Z a-z 0-9 - _", http.StatusBadRequest)
			return
		case project == "" && len(c.projects) == 1:
			project = c.projects[0].Name
		case project == "":
			listing := c.Listing(id)
			if len(listing) != 1 {
				http.Error(w, fmt.Sprintf("%s: add project=<name> to the query (one of %s)", listedBy(listing), strings.Join(c.Projects(), ", ")),
					http.StatusBadRequest)
				return
			}
			project = listing[0]
		}
		if !c.cfg.Probe.AllowUnlisted && !c.Listed(project, id) {
			http.Error(w, "the task is neither configured nor discovered in project "+project+"; set probe.allow_unlisted: true to probe any task",
				http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r, c.cfg.Scrape.Timeout))
		defer cancel()
		format, text := textFormat(r)
		res, probe := c.probe(ctx, project, id)
		if !text {
			series := make(replay, 0, 12)
			ch := make(chan prometheus.Metric, 16)
			c.emitValues(ch, res)
			close(ch)
			for m := range ch {
				series = append(series, m)
			}
			serveRegistry(w, r, logger, append(series, probe...))
			return
		}
		writeExposition(w, r, format, []result{res}, c.statusNames, gatherExtra(logger, probe), logger)
	})
}

// listedBy says which projects list a task that /probe cannot place alone.
func listedBy(projects []string) string {
	if len(projects) == 0 {
		return "no project configures or discovers the task"
	}
	return "the task is listed by several projects (" + strings.Join(projects, ", ") + ")"
}

// probeProject answers /probe?project=NAME: the series of every task of the project (of
// this shard) with the scrape's duration, as /metrics gives them for that project.
func probeProject(w http.ResponseWriter, r *http.Request, c *Collector, project string, logger log.Logger) {
	ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r, c.cfg.Scrape.Timeout))
	defer cancel()
	format, text := textFormat(r)
	results, duration := c.run(ctx, project)
	if !text {
		serveRegistry(w, r, logger, append(c.series(results), duration))
		return
	}
	writeExposition(w, r, format, results, c.statusNames, gatherExtra(logger, replay{duration}), logger)
}

// SDHandler serves /sd: Prometheus http_sd_configs JSON with one target per task of this
// shard. Only meta labels: a task_id target label would clash with /probe's own.
func SDHandler(current func() *Collector) http.Handler {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		groups := []group{}
		for _, t := range current().Targets(false) {
			groups = append(groups, group{Targets: []string{t.ID}, Labels: map[string]string{
				"__meta_metastudio_project": t.Project, "__meta_metastudio_resource": t.Resource}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	})
}

// errorLogger adapts go-kit's logger to promhttp's error log.
type errorLogger struct{ logger log.Logger }

func (l errorLogger) Println(v ...any) {
	level.Error(l.logger).Log("msg", "Serving metrics", "err", v)
}
