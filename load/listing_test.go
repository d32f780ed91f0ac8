//go:build linux

package load

import (
	"testing"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// BenchmarkLoadListing runs the listing cases once each, one after the other (b.N is
// ignored: run it with -benchtime 1x): running tasks that only discovery knows, under the
// simulator's gateway at 30/s and paging by rows, 4 scrapers every 2 s with
// scrape.min_refresh_interval 1900ms.
func BenchmarkLoadListing(b *testing.B) {
	for _, c := range listCases {
		b.Run(c.name(), func(b *testing.B) { benchListing(b, c) })
	}
}

func benchListing(b *testing.B, c listCase) {
	rep := newCaseReport(b, "load listing "+c.name())
	out := rep.out
	stack := testkit.StartStack(b, "..", b.TempDir(), c.simArgs(), c.config)
	rep.setup("%d running tasks begun over the last %s, found by discovery only; simulator latency %s, gateway %d/s (burst %d), "+
		"SearchTask paging by %s; exporter max_requests_per_second %g, min_refresh_interval %s, other keys at their defaults; "+
		"%d scrapers, /metrics every %s for %s with a %s timeout header; measured after %s", c.tasks, listSpread, listLatency,
		listGatewayRate, listGatewayRate, listPaging, c.rps(), listMinRefresh, listScrapers, listInterval, listRunFor,
		listTimeout, listWarmUp)

	b.ResetTimer()
	records, snaps := run(b, "http://"+stack.ExporterAddr, "http://"+stack.SimAddr+simulator.StatsPath,
		schedule{scrapers: listScrapers, interval: listInterval, runFor: listRunFor, snapEvery: listSnapEvery, timeout: listTimeout})
	b.StopTimer()
	expStop, simStop := stack.Exporter.Stop(), stack.Sim.Stop()

	start, end := snaps[int(listWarmUp/listSnapEvery)], snaps[len(snaps)-1]
	f := measureListing(c, records, listWarmUp, listRunFor, start, end)
	calls := f.calls
	out("scrapes in the window: %d (%d without a parseable 200, %d late); latency p50 %.2f s, p99 %.2f s; all scrapes: %d",
		f.scrapes, f.failed, f.late, f.p50, f.p99, len(records))
	out("every scrape of the window, sent at: largest data_age / tasks with scrape_success 1")
	for _, row := range ageRows(records, listWarmUp, listRunFor, 6) {
		out("  %s", row)
	}
	out("gateway in the window (%.1f s): %d SearchTask and %d ShowTask answered, %d throttled: %.1f %% of its allowance",
		calls.span.Seconds(), calls.answered-calls.showAnswered, calls.showAnswered, calls.throttled, 100*f.seenShare())
	out("API calls per task per minute: %.3f answered; one ShowTask per task at each refresh would be %.0f "+
		"(%.0f calls/s for %d tasks, where the gateway allows %d/s, %.2f per task per minute)", f.perTaskPerMinute(),
		f.showTaskMin, f.showTaskMin*float64(c.tasks)/60, c.tasks, listGatewayRate, float64(listGatewayRate*60)/float64(c.tasks))
	ranks, showCalls := showTaskRanks(start, end)
	out("ShowTask in the window: %d calls to %s", showCalls, rankSummary(ranks))
	whole := between(snaps[0], end)
	out("gateway over the whole run (%.1f s): %d SearchTask and %d ShowTask answered, %d throttled", whole.span.Seconds(),
		whole.answered-whole.showAnswered, whole.showAnswered, whole.throttled)
	out("timeline (the gateway's counts per %s, and the scrapes that ended in each step):", listSnapEvery)
	for _, row := range listTimeline(records, snaps) {
		out("  %s", row)
	}
	out("exporter stop: %s; simulator stop: %s", expStop, simStop)
	out("targets:")
	missed := printTargets(out, f.targets())

	b.ReportMetric(0, "ns/op") // one run of a fixed duration: ns/op means nothing
	b.ReportMetric(f.worstAge, "max_data_age_s")
	b.ReportMetric(float64(f.incomplete), "incomplete_scrapes")
	b.ReportMetric(100*f.seenShare(), "allowance_seen_%")
	b.ReportMetric(f.perTaskPerMinute(), "calls/task/min")
	b.ReportMetric(float64(calls.showAnswered), "ShowTask")

	// The setup itself must hold, whatever LOAD_REPORT_ONLY says.
	if f.finished > 0 {
		b.Errorf("a scrape showed %d finished tasks: the setup wants none", f.finished)
	}
	rep.finish(expStop, stack.Exporter, missed, "of the listing targets")
}
