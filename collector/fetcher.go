package collector

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// API is the part of the MetaStudio client the exporter needs; tests pass a fake.
type API interface {
	ShowTask(ctx context.Context, id string) (*metastudio.Task, error)
	SearchTask(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error)
}

// entry is the last known state of a task.
type entry struct {
	task    *metastudio.Task
	fetched time.Time // when ShowTask answered, or SearchTask listed it
	listed  bool      // the values came from discovery's listing
}

// Fetcher makes every MetaStudio call of the process, through one guard (the AK lock),
// one rate limit and one singleflight (concurrent scrapes that need the same task share
// one call), and remembers what each call learned. It outlives reloads.
type Fetcher struct {
	api     API
	guard   *Guard
	limiter *Limiter
	now     func() time.Time
	flight  singleflight.Group

	mu      sync.Mutex
	entries map[string]entry
}

// NewFetcher returns a Fetcher that calls api.
func NewFetcher(api API, guard *Guard, limiter *Limiter, now func() time.Time) *Fetcher {
	return &Fetcher{api: api, guard: guard, limiter: limiter, now: now, entries: map[string]entry{}}
}

// SetAPI replaces the client (a reload that changed the endpoint or credentials). The
// last known values survive.
func (f *Fetcher) SetAPI(api API) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.api = api
}

// API returns the client in use.
func (f *Fetcher) API() API { return f.client() }

func (f *Fetcher) client() API {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.api
}

// last returns the last known values of a task.
func (f *Fetcher) last(id string) (entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[id]
	return e, ok
}

// store remembers a task's values.
func (f *Fetcher) store(id string, e entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries[id] = e
}

// forget drops the values of tasks that keep says are no longer watched.
func (f *Fetcher) forget(keep func(id string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.entries {
		if !keep(id) {
			delete(f.entries, id)
		}
	}
}

// outcome is what an attempt to fetch a task gave.
type outcome struct {
	task   *metastudio.Task
	err    error
	called bool // a ShowTask call was made (its error, if any, is the task's)
}

// showTask fetches one task, sharing the call with concurrent scrapes that need it too.
// The caller has waited for the rate limit: a scrape takes its budget in the order of
// its tasks.
func (f *Fetcher) showTask(ctx context.Context, id string) outcome {
	v, _, _ := f.flight.Do(id, func() (any, error) {
		o := outcome{}
		done, err := f.clear(ctx, false)
		if err != nil {
			o.err = err
			return o, nil
		}
		o.called = true
		o.task, o.err = f.client().ShowTask(ctx, id)
		f.settle(done, o.err)
		if o.err == nil {
			f.store(id, entry{task: o.task, fetched: f.now()})
		}
		return o, nil
	})
	return v.(outcome)
}

// searchTask lists one page of tasks, cleared by the same guard and rate limit.
func (f *Fetcher) searchTask(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error) {
	done, err := f.clear(ctx, true)
	if err != nil {
		return nil, err
	}
	page, err := f.client().SearchTask(ctx, p)
	f.settle(done, err)
	return page, err
}

// wait waits for the rate limit: one call may go out.
func (f *Fetcher) wait(ctx context.Context) error {
	if err := f.limiter.Wait(ctx); err != nil {
		return &metastudio.APIError{Operation: metastudio.OpShowTask, Err: err}
	}
	return nil
}

// clear waits until the guard (and the rate limit, if limit) let one call go out.
func (f *Fetcher) clear(ctx context.Context, limit bool) (func(error), error) {
	if err := ctx.Err(); err != nil {
		return nil, &metastudio.APIError{Operation: metastudio.OpShowTask, Err: err}
	}
	done, err := f.guard.Acquire(ctx)
	if err != nil {
		return nil, &metastudio.APIError{Operation: metastudio.OpShowTask, Err: err}
	}
	if !limit {
		return done, nil
	}
	if err := f.wait(ctx); err != nil {
		done(err) // nothing was sent: the guard learns nothing
		return nil, err
	}
	return done, nil
}

// settle tells the guard and the rate limit how a call went.
func (f *Fetcher) settle(done func(error), err error) {
	done(err)
	var apiErr *metastudio.APIError
	if errors.As(err, &apiErr) && apiErr.Throttled() {
		f.limiter.Throttled()
	}
}
