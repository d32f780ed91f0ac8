package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// The setup of the probe-churn case (BenchmarkLoadProbes); doc.go gives the reasons.
const (
	churnConfigured = 5    // configured tasks, all running
	churnUnlisted   = 1200 // distinct /probe ids that no config lists, each probed once
	churnSimTasks   = 1300 // seeded: the configured and the unlisted ids are all among them
	// churnSpread is how long the probes take to arrive, evenly spaced (400/s).
	churnSpread  = 3 * time.Second
	churnRPS     = 20                    // the exporter's scrape.max_requests_per_second
	churnLatency = 50 * time.Millisecond // the simulator's answer time
	// churnGatewayRate turns the simulator's gateway on for its counts (/-/sim/stats),
	// far above the exporter's rate: it throttles nothing.
	churnGatewayRate = 1000
	// churnProbeTimeout is each probe's X-Prometheus-Scrape-Timeout-Seconds; an answer may
	// take churnGrace more.
	churnProbeTimeout = 5 * time.Second
	churnGrace        = time.Second
	// churnScrapeEvery is the /metrics scraper's interval, and its timeout header.
	churnScrapeEvery = time.Second
	// churnWarmUp is how long /metrics is scraped before the first probe.
	churnWarmUp = 2 * time.Second
	// churnRunFor: the scraper goes on until the last probe's deadline and grace have passed.
	churnRunFor = churnWarmUp + churnSpread + churnProbeTimeout + churnGrace + time.Second

	churnWantMaxAge = 4.0 // seconds of data_age of every configured task, in every scrape
)

// churnTasks splits the seeded ids: the first churnConfigured running tasks are
// configured, and the first churnUnlisted of the rest are probed.
func churnTasks() (configured, unlisted []string) {
	for i := 0; i < churnSimTasks; i++ {
		id := simulator.TaskID(i)
		if isRunning(i) && len(configured) < churnConfigured {
			configured = append(configured, id)
		} else if len(unlisted) < churnUnlisted {
			unlisted = append(unlisted, id)
		}
	}
	return configured, unlisted
}

// churnConfig is the exporter's configuration: the rate, /probe of any id, the configured
// tasks; every other key at its default.
func churnConfig(simAddr, projectID, accessKey, skFile string, ids []string) string {
	var c strings.Builder
	fmt.Fprintf(&c, "region: cn-north-4\nproject_id: %s\nendpoint: http://%s\n", projectID, simAddr)
	fmt.Fprintf(&c, "credentials:\n  access_key: %s\n  secret_key_file: %s\n", accessKey, skFile)
	fmt.Fprintf(&c, "scrape:\n  max_requests_per_second: %d\nprobe:\n  allow_unlisted: true\n", churnRPS)
	c.WriteString("tasks:\n")
	for _, id := range ids {
		fmt.Fprintf(&c, "  - %s\n", id)
	}
	return c.String()
}

// churnStats are the simulator's counts. Overlaps (the ShowTask requests that arrived
// while another of the same id and credentials was in flight) shadows GatewayStats' field
// as a pointer, so that a simulator that does not count them reads as nil, not as 0.
type churnStats struct {
	simulator.GatewayStats
	Overlaps *int64 `json:"overlaps"`
}

// decodeStats decodes the gateway's counts (simulator.GatewayStats or churnStats).
func decodeStats[T any](r io.Reader) (T, error) {
	var s T
	err := json.NewDecoder(r).Decode(&s)
	return s, err
}

// taskScrape is what one /metrics answer says about the configured tasks.
type taskScrape struct {
	at, latency time.Duration
	err         string             // transport, status or parse error
	age         map[string]float64 // metastudio_task_data_age_seconds by task_id
	success     map[string]float64 // metastudio_task_scrape_success by task_id
}

// parseTaskSeries reads each task's data_age and scrape_success from an exposition, by
// task_id, whatever other labels a series carries (project). An exposition without a
// single scrape_success series, or with a task_id twice in a family (two projects list
// it), is an error: the figures would be wrong, not just empty.
func parseTaskSeries(r io.Reader) (age, success map[string]float64, err error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, nil, err
	}
	byTask := func(name string) (map[string]float64, error) {
		out := map[string]float64{}
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "task_id" {
					continue
				}
				if _, dup := out[l.GetValue()]; dup {
					return nil, fmt.Errorf("%s: task_id %q twice", name, l.GetValue())
				}
				out[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
		return out, nil
	}
	if age, err = byTask("metastudio_task_data_age_seconds"); err != nil {
		return nil, nil, err
	}
	if success, err = byTask("metastudio_task_scrape_success"); err != nil {
		return nil, nil, err
	}
	if len(success) == 0 {
		return nil, nil, errors.New("no metastudio_task_scrape_success series")
	}
	return age, success, nil
}

// probeRecord is one /probe request.
type probeRecord struct {
	at, latency time.Duration
	status      int
	err         string  // transport, status or parse error
	success     float64 // metastudio_probe_success; NaN when absent
}

// churnFigures is what the run gave.
type churnFigures struct {
	probes, probesLate, probesFailed, probesOK int // OK: probe_success 1
	p50, p99, maxLatency                       float64
	overlaps                                   *int64 // over the run; nil: not counted

	scrapes, scrapesFailed int     // /metrics scrapes sent from the first probe on
	overAge, missingAge    int     // ... with a configured task's data_age over the target, or absent
	maxAge                 float64 // the largest data_age of a configured task in them (NaN: none)
	minSuccess             int     // the fewest configured tasks with scrape_success 1 in one of them
	// minCalls is the fewest ShowTask answers of one configured task while the probes
	// arrived; unlistedCalls, the answers of the probed ids in the whole run.
	minCalls      int64
	unlistedCalls int64
}

// measureChurn judges the records. scrapes sent before from are warm-up; storm and
// stormEnd are the gateway's counts when the probes began and when the last was sent.
func measureChurn(probes []probeRecord, scrapes []taskScrape, from time.Duration, configured, unlisted []string,
	first, storm, stormEnd, last churnStats) churnFigures {
	f := churnFigures{maxAge: math.NaN(), minSuccess: len(configured), minCalls: math.MaxInt64}
	var lat []float64
	for _, p := range probes {
		f.probes++
		lat = append(lat, p.latency.Seconds())
		switch {
		case p.err != "":
			f.probesFailed++
		case p.latency > churnProbeTimeout+churnGrace:
			f.probesLate++
		}
		if p.err == "" && p.success == 1 {
			f.probesOK++
		}
	}
	f.p50, f.p99, f.maxLatency = testkit.Quantile(lat, 0.5), testkit.Quantile(lat, 0.99), testkit.Quantile(lat, 1)
	if first.Overlaps != nil && last.Overlaps != nil {
		n := *last.Overlaps - *first.Overlaps
		f.overlaps = &n
	}
	for _, s := range scrapes {
		if s.at < from {
			continue
		}
		f.scrapes++
		if s.err != "" {
			f.scrapesFailed++
			f.minSuccess = 0
			continue
		}
		over, missing, good := false, false, 0
		for _, id := range configured {
			a, ok := s.age[id]
			switch {
			case !ok:
				missing = true
			case a > churnWantMaxAge:
				over = true
			}
			if ok && (math.IsNaN(f.maxAge) || a > f.maxAge) {
				f.maxAge = a
			}
			if s.success[id] == 1 {
				good++
			}
		}
		if over {
			f.overAge++
		}
		if missing {
			f.missingAge++
		}
		f.minSuccess = min(f.minSuccess, good)
	}
	for _, id := range configured {
		f.minCalls = min(f.minCalls, stormEnd.Tasks[id].Answered-storm.Tasks[id].Answered)
	}
	for _, id := range unlisted {
		f.unlistedCalls += last.Tasks[id].Answered - first.Tasks[id].Answered
	}
	return f
}

// targets judges the figures against the probe-churn case's acceptance targets.
func (f churnFigures) targets() []target {
	overlaps := "not counted: the simulator's stats have no overlaps field"
	if f.overlaps != nil {
		overlaps = fmt.Sprintf("%d ShowTask requests arrived while the same id was in flight", *f.overlaps)
	}
	return []target{{
		want: fmt.Sprintf("every probe answers within its %s timeout + %s", churnProbeTimeout, churnGrace),
		got: fmt.Sprintf("%d of %d late, %d failed (latency p50 %.2f s, p99 %.2f s, max %.2f s)",
			f.probesLate, f.probes, f.probesFailed, f.p50, f.p99, f.maxLatency),
		met: f.probes == churnUnlisted && f.probesLate == 0 && f.probesFailed == 0,
	}, {
		want: "no id is called twice at once by the same client",
		got:  overlaps,
		met:  f.overlaps != nil && *f.overlaps == 0,
	}, {
		want: fmt.Sprintf("every scrape: each configured task's data_age <= %.0f s", churnWantMaxAge),
		got: fmt.Sprintf("max %.1f s; %d of %d scrapes over, %d missing a task's data_age, %d without an exposition",
			f.maxAge, f.overAge, f.scrapes, f.missingAge, f.scrapesFailed),
		met: f.scrapes > 0 && f.overAge == 0 && f.missingAge == 0 && f.scrapesFailed == 0,
	}}
}

// probeSuccess reads metastudio_probe_success from a /probe answer with Prometheus' text
// parser, whatever labels it carries: false when the answer does not parse or holds no
// such series, or more than one.
func probeSuccess(body []byte) (float64, bool) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	ms := families["metastudio_probe_success"].GetMetric()
	if len(ms) != 1 {
		return 0, false
	}
	switch m := ms[0]; {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}
