// Package fakeapi is the tests' one fake of the MetaStudio task API (ShowTask and
// SearchTask): each test programs what it answers by id, which calls fail, how long they
// take and which wait for the test, and reads back how it was called. Tests put it behind
// the adapter their package puts the real client behind (collector.NewAPI, or the
// refresher tests' own), so the code under test cannot tell the two apart.
//
// It is a package of its own beside testkit because it imports metastudio, which imports
// auth, whose tests import testkit.
package fakeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

// API is a programmable MetaStudio task API, safe for concurrent calls. The zero value
// answers every ShowTask at once with Task(id, finished when the id starts with "done")
// and every SearchTask with an empty page.
//
// The fields say how it answers. Set them before the first call; a test may change them
// later only while no call is in flight (between two scrapes that waited for their
// calls). What it counts is read with its methods at any time.
type API struct {
	// Errs fails ShowTask by id (a nil error fails nothing).
	Errs map[string]error
	// Fail, if set, fails the ShowTask calls for which it returns an error, given the
	// call's number (1 for the first since the last Reset) and id. Errs comes first.
	Fail func(n int, id string) error
	// Tasks answers ShowTask by id with a copy of the task per call, as the client
	// gives a new task per call.
	Tasks map[string]*metastudio.Task
	// Bodies answers ShowTask by id with a JSON body, decoded at each call; a body that
	// does not decode fails the call.
	Bodies map[string]string

	// Latency delays every ShowTask answer.
	Latency time.Duration
	// Gate, if set, holds ShowTask calls (after their latency) until each receives from
	// it: send one value to release one call, close it to release all.
	Gate chan struct{}
	// Hold chooses the calls that Gate holds, by number and id; nil holds every call.
	Hold func(n int, id string) bool
	// Called, if set, receives each ShowTask call's id as the call begins; the call
	// waits until it is received, so give it room if the test does not read every id.
	Called chan string

	// Search answers SearchTask; nil answers an empty page. A listing model such as a
	// paging server's method plugs in here.
	Search func(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error)

	mu          sync.Mutex
	calls       []Call
	perID       map[string]int
	inFlight    int
	maxInFlight int
	failed      int
	searches    []metastudio.SearchParams
}

// Call is one ShowTask call as it began.
type Call struct {
	// ID is the task id asked for.
	ID string
	// Left is the time its ctx had left before its deadline; 0 without a deadline.
	Left time.Duration
}

// ShowTask answers as the fields say. A call whose ctx ends while it is delayed or held
// fails as the client's would: an *metastudio.APIError wrapping the ctx's error.
func (a *API) ShowTask(ctx context.Context, id string) (*metastudio.Task, error) {
	n := a.begin(ctx, id)
	defer a.end()
	if a.Called != nil {
		a.Called <- id
	}
	if err := a.wait(ctx, n, id); err != nil {
		return nil, &metastudio.APIError{Operation: metastudio.OpShowTask, Err: err}
	}
	t, err := a.answer(n, id)
	if err != nil {
		a.mu.Lock()
		a.failed++
		a.mu.Unlock()
	}
	return t, err
}

// SearchTask records p and answers through Search.
func (a *API) SearchTask(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error) {
	a.mu.Lock()
	a.searches = append(a.searches, p)
	a.mu.Unlock()
	if a.Search == nil {
		return &metastudio.TaskPage{}, nil
	}
	return a.Search(ctx, p)
}

// begin counts a call and returns its number.
func (a *API) begin(ctx context.Context, id string) int {
	var left time.Duration
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perID == nil {
		a.perID = map[string]int{}
	}
	a.calls = append(a.calls, Call{ID: id, Left: left})
	a.perID[id]++
	a.inFlight++
	a.maxInFlight = max(a.maxInFlight, a.inFlight)
	return len(a.calls)
}

func (a *API) end() {
	a.mu.Lock()
	a.inFlight--
	a.mu.Unlock()
}

// wait delays and holds call n as Latency, Gate and Hold say, or until ctx ends.
func (a *API) wait(ctx context.Context, n int, id string) error {
	if a.Latency > 0 {
		t := time.NewTimer(a.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if a.Gate != nil && (a.Hold == nil || a.Hold(n, id)) {
		select {
		case <-a.Gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// answer is call n's answer: an error, a task of Tasks or Bodies, or the default task.
func (a *API) answer(n int, id string) (*metastudio.Task, error) {
	if err := a.Errs[id]; err != nil {
		return nil, err
	}
	if a.Fail != nil {
		if err := a.Fail(n, id); err != nil {
			return nil, err
		}
	}
	if t, ok := a.Tasks[id]; ok {
		c := *t
		return &c, nil
	}
	if body, ok := a.Bodies[id]; ok {
		var t metastudio.Task
		if err := json.Unmarshal([]byte(body), &t); err != nil {
			return nil, fmt.Errorf("the body of task %s: %w", id, err)
		}
		return &t, nil
	}
	return Task(id, strings.HasPrefix(id, "done")), nil
}

// Total is the number of ShowTask calls begun since the last Reset.
func (a *API) Total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

// PerID is the number of ShowTask calls begun for each id since the last Reset.
func (a *API) PerID() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.perID)
}

// Calls are the ShowTask calls begun since the last Reset, in the order they began.
func (a *API) Calls() []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Call(nil), a.calls...)
}

// Order is the ids of Calls.
func (a *API) Order() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, len(a.calls))
	for i, c := range a.calls {
		ids[i] = c.ID
	}
	return ids
}

// InFlight is the number of ShowTask calls begun and not yet answered.
func (a *API) InFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inFlight
}

// MaxInFlight is the most ShowTask calls that were in flight at once since the last
// Reset.
func (a *API) MaxInFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.maxInFlight
}

// Failed is the number of ShowTask calls since the last Reset that Errs, Fail or a bad
// body failed (not those whose ctx ended).
func (a *API) Failed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}

// Searches are the parameters of the SearchTask calls since the last Reset, in order.
func (a *API) Searches() []metastudio.SearchParams {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]metastudio.SearchParams(nil), a.searches...)
}

// Reset forgets the calls counted so far, so that a test counts only what comes after
// its set-up; calls in flight stay in flight, and call numbers start again at 1.
func (a *API) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls, a.perID, a.searches, a.failed = nil, nil, nil, 0
	a.maxInFlight = a.inFlight
}

// Task returns a task with 10 items that runs (4 succeeded, 1 failed so far), or one that
// finished (9 and 1); both began at 1744276967708.
func Task(id string, finished bool) *metastudio.Task {
	body := fmt.Sprintf(`{"task_id":%q,"total_count":10,"success_count":4,"failure_count":1,"begin_time":1744276967708}`, id)
	if finished {
		body = fmt.Sprintf(`{"task_id":%q,"total_count":10,"success_count":9,"failure_count":1,"begin_time":1744276967708,"end_time":1744277967708}`, id)
	}
	var t metastudio.Task
	if err := json.Unmarshal([]byte(body), &t); err != nil {
		panic(err)
	}
	return &t
}
