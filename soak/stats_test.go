package soak

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// point is one observation of a gauge, at a time since the start of the measured window.
type point struct {
	at time.Duration
	v  float64
}

// trend says whether a gauge stayed flat over the measured window [0, span]: the medians
// of its first and last `window`, their difference, and the noise it is judged against.
type trend struct {
	n                       int
	start, end, max         float64 // first, last and largest observation
	firstMedian, lastMedian float64
	growth                  float64 // lastMedian - firstMedian
	noise                   float64 // the larger p10..p90 spread of the two windows, at least minNoise
	slope                   float64 // least-squares slope over the whole window, per minute
	beyond                  bool    // |growth| > noise
}

// flatness judges the points (in time order, within [0, span]) of one gauge. minNoise is the
// smallest change that counts (a goroutine or two, a MiB of RSS): below it nothing is growth.
func flatness(points []point, window, span time.Duration, minNoise float64) trend {
	t := trend{n: len(points), start: math.NaN(), end: math.NaN(), max: math.NaN()}
	if len(points) == 0 {
		t.firstMedian, t.lastMedian, t.growth, t.noise, t.slope = math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()
		return t
	}
	t.start, t.end, t.max = points[0].v, points[len(points)-1].v, points[0].v
	var first, last []float64
	for _, p := range points {
		t.max = max(t.max, p.v)
		if p.at < window {
			first = append(first, p.v)
		}
		if p.at >= span-window {
			last = append(last, p.v)
		}
	}
	t.firstMedian, t.lastMedian = testkit.Quantile(first, 0.5), testkit.Quantile(last, 0.5)
	t.growth = t.lastMedian - t.firstMedian
	spread := func(xs []float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		return testkit.Quantile(xs, 0.9) - testkit.Quantile(xs, 0.1)
	}
	t.noise = max(spread(first), spread(last), minNoise)
	t.beyond = math.Abs(t.growth) > t.noise
	t.slope = slopePerMinute(points)
	return t
}

// slopePerMinute is the least-squares slope of the points, per minute (0 for fewer than two
// distinct times).
func slopePerMinute(points []point) float64 {
	n := float64(len(points))
	var sx, sy, sxx, sxy float64
	for _, p := range points {
		x := p.at.Minutes()
		sx += x
		sy += p.v
		sxx += x * x
		sxy += x * p.v
	}
	d := n*sxx - sx*sx
	if n < 2 || d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func (t trend) verdict() string {
	switch {
	case t.n == 0:
		return "no samples"
	case math.IsNaN(t.growth):
		return "too few samples to judge"
	case t.beyond && t.growth > 0:
		return "GROWS beyond noise"
	case t.beyond:
		return "falls beyond noise"
	}
	return "flat (within noise)"
}

// exposition is what the soak reads from one /metrics or /probe answer. Gauges absent from
// the answer are NaN.
type exposition struct {
	tasks      int     // metastudio_task_scrape_success series
	failed     int     // ... of them 0
	finished   int     // metastudio_task_end_timestamp_seconds series
	meanAge    float64 // metastudio_task_data_age_seconds, over the tasks that have one
	maxAge     float64
	goroutines float64            // go_goroutines
	rss        float64            // process_resident_memory_bytes
	apiCalls   float64            // sum of metastudio_api_requests_total
	byCode     map[string]float64 // metastudio_api_requests_total by its code label
	rateLimit  float64            // metastudio_api_rate_limit_per_second
	throttled  float64            // metastudio_api_throttled_total
	probeOK    float64            // metastudio_probe_success
	duration   float64            // metastudio_scrape_duration_seconds, or metastudio_probe_duration_seconds
}

// summarize parses a text exposition (it fails on anything Prometheus' text parser refuses,
// and on an answer without task series) and extracts what the soak reports, whatever labels
// a series carries (project). A family of several series (one per project) gives its first
// series, except metastudio_api_requests_total, which is summed.
func summarize(r io.Reader) (exposition, error) {
	e := exposition{meanAge: math.NaN(), maxAge: math.NaN(), goroutines: math.NaN(), rss: math.NaN(),
		apiCalls: math.NaN(), rateLimit: math.NaN(), throttled: math.NaN(), probeOK: math.NaN(), duration: math.NaN()}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return e, err
	}
	// one is the value of a family's first sample, whatever its type.
	one := func(name string) float64 {
		mf, ok := families[name]
		if !ok || len(mf.GetMetric()) == 0 {
			return math.NaN()
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue()
		}
		return math.NaN()
	}
	success := families["metastudio_task_scrape_success"].GetMetric()
	if len(success) == 0 {
		// Every /metrics and /probe answer of the soak has tasks: none is a broken
		// exporter or a renamed family, not a scrape of 0 tasks.
		return e, errors.New("no metastudio_task_scrape_success series")
	}
	for _, m := range success {
		e.tasks++
		if m.GetGauge().GetValue() == 0 {
			e.failed++
		}
	}
	if mf, ok := families["metastudio_task_end_timestamp_seconds"]; ok {
		e.finished = len(mf.GetMetric())
	}
	if mf, ok := families["metastudio_task_data_age_seconds"]; ok && len(mf.GetMetric()) > 0 {
		var ages []float64
		for _, m := range mf.GetMetric() {
			ages = append(ages, m.GetGauge().GetValue())
		}
		e.meanAge, e.maxAge = mean(ages), slices.Max(ages)
	}
	if mf, ok := families["metastudio_api_requests_total"]; ok {
		e.apiCalls, e.byCode = 0, map[string]float64{}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			e.apiCalls += v
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					e.byCode[l.GetValue()] += v
				}
			}
		}
	}
	e.goroutines = one("go_goroutines")
	e.rss = one("process_resident_memory_bytes")
	e.rateLimit = one("metastudio_api_rate_limit_per_second")
	e.throttled = one("metastudio_api_throttled_total")
	e.probeOK = one("metastudio_probe_success")
	e.duration = one("metastudio_scrape_duration_seconds")
	if math.IsNaN(e.duration) {
		e.duration = one("metastudio_probe_duration_seconds")
	}
	return e, nil
}

// procStatus reads the named "Key:  value [kB]" fields of a /proc/<pid>/status text, in
// bytes for kB fields.
func procStatus(text string, keys ...string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(keys, key) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("%s: no value", key)
		}
		var v float64
		if _, err := fmt.Sscan(f[0], &v); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if len(f) == 2 && f[1] == "kB" {
			v *= 1024
		}
		out[key] = v
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("no %s line", k)
		}
	}
	return out, nil
}

// faultMix is the share (0..1) of the simulator's answers of each injected fault.
type faultMix struct {
	errors, throttle, slow, malformed float64 // --error-rate, --throttle-rate, --slow-rate, --malformed-rate
}

func (f faultMix) total() float64 { return f.errors + f.throttle + f.slow + f.malformed }

func (f faultMix) String() string {
	return fmt.Sprintf("error=%g,throttle=%g,slow=%g,malformed=%g", f.errors, f.throttle, f.slow, f.malformed)
}

// parseFaults reads "error=0.02,throttle=0.01,slow=0.01,malformed=0.01" (SOAK_FAULTS); a kind
// left out is 0.
func parseFaults(s string) (faultMix, error) {
	var f faultMix
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		var x float64
		if _, err := fmt.Sscan(v, &x); !ok || err != nil || !(x >= 0 && x <= 1) {
			return f, fmt.Errorf("%q: want kind=share with a share in 0..1", part)
		}
		switch k {
		case "error":
			f.errors = x
		case "throttle":
			f.throttle = x
		case "slow":
			f.slow = x
		case "malformed":
			f.malformed = x
		default:
			return f, fmt.Errorf("%q: the kinds are error, throttle, slow and malformed", part)
		}
	}
	if f.total() > 1 {
		return f, fmt.Errorf("the shares add up to %g, over 1", f.total())
	}
	return f, nil
}
