package refresh

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// taskAPI is what a MetaStudio client offers for tasks (the real client and the tests'
// fake, fakeapi.API).
type taskAPI interface {
	ShowTask(ctx context.Context, id string) (*metastudio.Task, error)
	SearchTask(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error)
}

// tasks makes a taskAPI an API whose values are the decoded tasks.
type tasks struct{ api taskAPI }

type taskValue struct{ *metastudio.Task }

func (v taskValue) Finished() bool { return v.Task.Finished() }

func (a tasks) Fetch(ctx context.Context, k Key) (Value, error) {
	t, err := a.api.ShowTask(ctx, k.ID)
	if err != nil {
		return nil, err
	}
	return taskValue{t}, nil
}

func (a tasks) Search(ctx context.Context, _ string, params any) (any, error) {
	return a.api.SearchTask(ctx, params.(metastudio.SearchParams))
}

// startRefresher runs a Refresher for api with its own guard and rate (perSecond, 0 for
// no limit) until the test ends.
func startRefresher(t testing.TB, api taskAPI, now func() time.Time, perSecond float64, concurrency int, timeout time.Duration) *Refresher {
	t.Helper()
	r := startProjects(t, now, concurrency, timeout)
	guard := NewGuard(time.Minute, nil, now, log.NewNopLogger())
	r.SetProject("", tasks{api}, guard, NewRate(perSecond, min(1, max(perSecond, 1)), concurrency, now))
	return r
}

// startProjects runs a Refresher with no project until the test ends; the test adds them.
func startProjects(t testing.TB, now func() time.Time, concurrency int, timeout time.Duration) *Refresher {
	t.Helper()
	r := NewRefresher(now, log.NewNopLogger())
	r.Configure(concurrency, timeout)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	t.Cleanup(func() {
		cancel()
		r.Wait()
	})
	return r
}

// keys returns the task keys of ids.
func keys(ids ...string) []Key {
	out := make([]Key, len(ids))
	for i, id := range ids {
		out[i] = Key{Kind: "task", ID: id}
	}
	return out
}

// failWhile is a fakeapi.API's Fail that fails every call with err while on is set.
func failWhile(on *atomic.Bool, err error) func(n int, id string) error {
	return func(int, string) error {
		if on.Load() {
			return err
		}
		return nil
	}
}

// manyKeys returns n task keys.
func manyKeys(n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{Kind: "task", ID: fmt.Sprintf("t%03d", i)}
	}
	return keys
}

// scrape asks r for keys the way a scrape of the collector does (a finished task is kept
// for 10 minutes).
func scrape(ctx context.Context, r *Refresher, keys []Key) []Result {
	return r.Get(ctx, keys, Policy{FinishedTTL: 10 * time.Minute, Since: r.Mark(), Start: r.now()})
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) { t.Helper(); testkit.WaitFor(t, what, cond) }

// guardOf is the guard of r's project "".
func guardOf(r *Refresher) *Guard {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lanes[""].guard
}

// rateOf is the rate of r's project "".
func rateOf(r *Refresher) *Rate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lanes[""].rate
}

// silentAPI answers every fetch with no value and no error.
type silentAPI struct{}

func (silentAPI) Fetch(context.Context, Key) (Value, error)        { return nil, nil }
func (silentAPI) Search(context.Context, string, any) (any, error) { return nil, nil }
