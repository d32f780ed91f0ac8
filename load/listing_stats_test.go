package load

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The setup of the listing cases (BenchmarkLoadListing; doc.go gives the reasons): running
// tasks that only discovery knows, kept fresh by SearchTask pages.
const (
	listGatewayRate = 30 // the simulator's --rate-limit and --rate-burst
	listLatency     = 50 * time.Millisecond
	listPaging      = "rows"    // the simulator's --search-paging: pages of up to 100 rows
	listSpread      = time.Hour // the running tasks began one after another over the last hour
	listScrapers    = 4
	listInterval    = 2 * time.Second
	listMinRefresh  = 1900 * time.Millisecond // scrape.min_refresh_interval, just under the interval
	listRunFor      = 60 * time.Second
	listWarmUp      = 20 * time.Second // the measured window is [listWarmUp, listRunFor)
	listSnapEvery   = 5 * time.Second
	listTimeout     = 10 * time.Second // the scrape timeout header
)

// listCase is one size of the listing case, with its targets.
type listCase struct {
	tasks   int     // seeded, all running, all discovered
	maxRPS  float64 // scrape.max_requests_per_second; 0 leaves the default (10)
	wantAge float64 // seconds: every scrape's largest data_age, at most
	// wantSeen, if positive, is the largest share of the gateway's allowance that the calls
	// reaching it (answered or throttled) may take.
	wantSeen float64
}

// listCases are the two sizes, measured one after the other in one run.
var listCases = []listCase{
	{tasks: 400, wantAge: 6, wantSeen: 0.25},
	{tasks: 4000, maxRPS: 30, wantAge: 10},
}

func (c listCase) name() string { return fmt.Sprintf("tasks=%d", c.tasks) }

// rps is the rate the exporter runs at, for the report.
func (c listCase) rps() float64 {
	if c.maxRPS > 0 {
		return c.maxRPS
	}
	return 10 // config.DefaultMaxRequestsPerSecond
}

// simArgs are the simulator's flags besides its address: c.tasks tasks, all running,
// begun over the last listSpread, behind the throttling gateway, paging by rows.
func (c listCase) simArgs() []string {
	return simArgs(c.tasks, listLatency, listGatewayRate,
		fmt.Sprintf("--running=%d", c.tasks),
		"--spread="+listSpread.String(),
		fmt.Sprintf("--rate-burst=%d", listGatewayRate),
		"--search-paging="+listPaging,
	)
}

// config is the exporter's configuration: no configured task, discovery on, the scrape
// settings of the case, every other key at its default.
func (c listCase) config(simAddr, skFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "region: cn-north-4\nproject_id: %s\nendpoint: http://%s\n", projectID, simAddr)
	fmt.Fprintf(&b, "credentials:\n  access_key: %s\n  secret_key_file: %s\n", accessKey, skFile)
	fmt.Fprintf(&b, "scrape:\n  min_refresh_interval: %s\n", listMinRefresh)
	if c.maxRPS > 0 {
		fmt.Fprintf(&b, "  max_requests_per_second: %g\n", c.maxRPS)
	}
	b.WriteString("discovery:\n  enabled: true\n")
	return b.String()
}

// showTaskPerMinute is what keeping every task fresh with one ShowTask call each would
// cost, per task and minute: a scrape comes every interval/scrapers, and a task is called
// again at the first scrape that finds its values at least minRefresh old.
func showTaskPerMinute(minRefresh, interval time.Duration, scrapers int) float64 {
	step := interval / time.Duration(scrapers)
	every := (minRefresh + step - 1) / step * step
	return time.Minute.Seconds() / every.Seconds()
}

// listFigures is what the measured window of a listing case gave.
type listFigures struct {
	scrapes     int     // sent in the window
	failed      int     // without a parseable 200
	late        int     // answered past listTimeout
	incomplete  int     // parsed, but fewer than all tasks with scrape_success 1
	overAge     int     // parsed, with a data_age over the case's wantAge
	fewest      int     // the fewest tasks with scrape_success 1 in a parsed scrape (-1: none parsed)
	worstAge    float64 // the largest data_age of any parsed scrape (NaN: none)
	finished    int     // the most finished tasks any parsed scrape showed (setup check: 0)
	p50, p99    float64 // scrape latency, seconds
	calls       calls   // the gateway's, over the window
	tasks       int
	wantAge     float64
	wantSeen    float64
	showTaskMin float64 // showTaskPerMinute of the setup
}

// measureListing computes the figures of the scrapes sent in [from, to) and of the
// gateway's counts between the snapshots start and end.
func measureListing(c listCase, records []scrape, from, to time.Duration, start, end snapshot) listFigures {
	f := listFigures{fewest: -1, worstAge: math.NaN(), tasks: c.tasks, wantAge: c.wantAge, wantSeen: c.wantSeen,
		showTaskMin: showTaskPerMinute(listMinRefresh, listInterval, listScrapers)}
	window := sentIn(records, from, to)
	f.scrapes = len(window)
	f.late, f.p50, f.p99, _ = latencies(window)
	for _, r := range window {
		if !r.parsed() {
			f.failed++
			continue
		}
		if f.fewest < 0 || r.expo.ok < f.fewest {
			f.fewest = r.expo.ok
		}
		if r.expo.ok != c.tasks || r.expo.tasks != c.tasks {
			f.incomplete++
		}
		if math.IsNaN(r.expo.maxAge) || r.expo.maxAge > c.wantAge {
			f.overAge++
		}
		if !math.IsNaN(r.expo.maxAge) && (math.IsNaN(f.worstAge) || r.expo.maxAge > f.worstAge) {
			f.worstAge = r.expo.maxAge
		}
		f.finished = max(f.finished, r.expo.finished)
	}
	f.calls = between(start, end)
	return f
}

// seenShare is the share of the gateway's allowance (listGatewayRate × span) that the calls
// reaching it took, answered or throttled.
func (f listFigures) seenShare() float64 {
	c := f.calls
	return ratio(float64(c.answered+c.throttled), listGatewayRate*c.span.Seconds())
}

// perTaskPerMinute is the answered calls per task and minute.
func (f listFigures) perTaskPerMinute() float64 {
	return ratio(float64(f.calls.answered), float64(f.tasks)*f.calls.span.Minutes())
}

// targets judges the figures. A NaN never meets a target.
func (f listFigures) targets() []target {
	ts := []target{{
		want: fmt.Sprintf("after %s, every scrape shows all %d with data_age <= %g s", listWarmUp, f.tasks, f.wantAge),
		got: fmt.Sprintf("worst data_age %.1f s; fewest tasks with scrape_success 1: %d; of %d scrapes %d incomplete, %d over, "+
			"%d failed, %d late", f.worstAge, f.fewest, f.scrapes, f.incomplete, f.overAge, f.failed, f.late),
		met: f.scrapes > 0 && f.incomplete == 0 && f.overAge == 0 && f.failed == 0 && f.late == 0,
	}}
	if f.wantSeen > 0 {
		c := f.calls
		ts = append(ts, target{
			want: fmt.Sprintf("from %s on, the API sees <= %.0f %% of the gateway's allowance", listWarmUp, 100*f.wantSeen),
			got: fmt.Sprintf("%.1f %% (%d answered + %d throttled in %.1f s at %d/s)", 100*f.seenShare(), c.answered,
				c.throttled, c.span.Seconds(), listGatewayRate),
			met: f.seenShare() <= f.wantSeen,
		})
	}
	return ts
}

// ageRows prints every scrape of the window as "sent at: largest data_age / tasks with
// scrape_success 1", perLine to a line.
func ageRows(records []scrape, from, to time.Duration, perLine int) []string {
	var rows []string
	var line []string
	for _, r := range sentIn(records, from, to) {
		cell := fmt.Sprintf("%5.1fs: ", r.at.Seconds())
		switch {
		case !r.parsed():
			cell += "failed"
		case r.late():
			cell += fmt.Sprintf("%4.1fs/%d late", r.expo.maxAge, r.expo.ok)
		default:
			cell += fmt.Sprintf("%4.1fs/%d", r.expo.maxAge, r.expo.ok)
		}
		if line = append(line, cell); len(line) == perLine {
			rows, line = append(rows, strings.Join(line, "  ")), nil
		}
	}
	if len(line) > 0 {
		rows = append(rows, strings.Join(line, "  "))
	}
	return rows
}

// listTimeline is, per step between snapshots, the gateway's answered SearchTask and
// ShowTask calls and throttled calls per second, and the largest data_age of the scrapes
// that ended in the step.
func listTimeline(records []scrape, snaps []snapshot) []string {
	var rows []string
	for i := 1; i < len(snaps); i++ {
		from, to := snaps[i-1].at, snaps[i].at
		c := between(snaps[i-1], snaps[i])
		worst, n := math.NaN(), 0
		for _, r := range records {
			if end := r.at + r.latency; end < from || end >= to || !r.parsed() {
				continue
			}
			n++
			if math.IsNaN(worst) || r.expo.maxAge > worst {
				worst = r.expo.maxAge
			}
		}
		s := c.span.Seconds()
		rows = append(rows, fmt.Sprintf("%3.0f-%-3.0fs  gateway: %5.2f SearchTask/s, %5.2f ShowTask/s, %5.2f throttled/s;  "+
			"%2d scrapes ended, largest data_age %5.1f s", from.Seconds(), to.Seconds(), float64(c.answered-c.showAnswered)/s,
			float64(c.showAnswered)/s, float64(c.throttled)/s, n, worst))
	}
	return rows
}

// showTaskRanks returns, for the ShowTask calls answered between two snapshots, the rank of
// each task called (0 the newest: seeded task i is the i-th newest under --spread), sorted,
// and the calls.
func showTaskRanks(a, b snapshot) (ranks []int, calls int64) {
	for id, st := range b.stats.Tasks {
		n := st.Answered - a.stats.Tasks[id].Answered
		if n <= 0 {
			continue
		}
		calls += n
		if v, err := strconv.ParseUint(id, 16, 63); err == nil && v > 0 {
			ranks = append(ranks, int(v-1))
		}
	}
	slices.Sort(ranks)
	return ranks, calls
}

// rankSummary describes the ranks of the tasks called: how many, and their spread.
func rankSummary(ranks []int) string {
	if len(ranks) == 0 {
		return "none"
	}
	q := func(p float64) int { return ranks[int(p*float64(len(ranks)-1))] }
	return fmt.Sprintf("%d tasks, ranks (0 the newest) min %d, median %d, max %d", len(ranks), ranks[0], q(0.5), ranks[len(ranks)-1])
}
