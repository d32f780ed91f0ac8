package fakeapi

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
)

func TestDefaultAnswers(t *testing.T) {
	var api API
	ctx := context.Background()
	run, err := api.ShowTask(ctx, "run1")
	if err != nil || run.TaskID.Text != "run1" || run.Finished() || !run.InProgress() || run.SuccessCount.Text != "4" {
		t.Errorf("run1: %+v, %v; want a task in progress with its id", run, err)
	}
	done, err := api.ShowTask(ctx, "done1")
	if err != nil || done.TaskID.Text != "done1" || !done.Finished() || done.SuccessCount.Text != "9" {
		t.Errorf("done1: %+v, %v; want a finished task", done, err)
	}
	p := metastudio.SearchParams{Resources: []string{"qa_pair"}, BeginTime: 1}
	if page, err := api.SearchTask(ctx, p); err != nil || page == nil || len(page.Data) != 0 {
		t.Errorf("SearchTask: %+v, %v; want an empty page", page, err)
	}
	if got := api.Searches(); len(got) != 1 || got[0].BeginTime != 1 || got[0].Resources[0] != "qa_pair" {
		t.Errorf("searches %+v, want the one made", got)
	}
}

func TestAnswersByID(t *testing.T) {
	refused := &metastudio.APIError{Operation: "ShowTask", StatusCode: 401, Code: "APIGW.0301"}
	throttled := &metastudio.APIError{Operation: "ShowTask", StatusCode: 429, Code: "APIGW.0308"}
	fixed := &metastudio.Task{TotalCount: metastudio.Value{Text: "7", Set: true}}
	var numbers []int
	api := &API{
		Errs: map[string]error{"refused": refused, "fixed": refused, "healed": nil},
		Fail: func(n int, id string) error {
			numbers = append(numbers, n) // the calls are made one after another
			if id == "throttled" {
				return throttled
			}
			return nil
		},
		Tasks:  map[string]*metastudio.Task{"fixed": fixed, "table": fixed},
		Bodies: map[string]string{"body": `{"total_count":"42","end_time":5}`, "bad": `{`, "table": `{"total_count":1}`},
	}
	ctx := context.Background()
	for _, tc := range []struct {
		id, total string
		err       error
	}{
		{"refused", "", refused},
		{"fixed", "", refused}, // Errs comes first
		{"healed", "10", nil},
		{"throttled", "", throttled},
		{"table", "7", nil}, // Tasks comes before Bodies
		{"body", "42", nil},
	} {
		got, err := api.ShowTask(ctx, tc.id)
		if err != tc.err || (err == nil && got.TotalCount.Text != tc.total) {
			t.Errorf("%s: %+v, %v; want total %q, error %v", tc.id, got, err, tc.total, tc.err)
		}
	}
	if _, err := api.ShowTask(ctx, "bad"); err == nil {
		t.Error("a body that does not decode must fail the call")
	}
	if n := api.Failed(); n != 4 {
		t.Errorf("Failed %d, want 4 (refused, fixed, throttled, bad)", n)
	}
	if want := []int{3, 4, 5, 6, 7}; !slices.Equal(numbers, want) {
		t.Errorf("Fail was asked for calls %v, want %v (not for those Errs fails)", numbers, want)
	}
	a, _ := api.ShowTask(ctx, "table")
	b, _ := api.ShowTask(ctx, "table")
	if a == fixed || a == b {
		t.Error("Tasks must give a copy per call, as the client gives a new task")
	}
	a.TotalCount.Text = "changed"
	if fixed.TotalCount.Text != "7" {
		t.Error("changing an answer changed the programmed task")
	}
}

func TestLatencyEndsWithTheCallsDeadline(t *testing.T) {
	api := &API{Latency: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := api.ShowTask(ctx, "slow")
	var apiErr *metastudio.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, context.DeadlineExceeded) || apiErr.Operation != metastudio.OpShowTask {
		t.Fatalf("a call past its deadline: %v, want the client's error around context.DeadlineExceeded", err)
	}
	if c := api.Calls(); len(c) != 1 || c[0].ID != "slow" || c[0].Left <= 0 || c[0].Left > 20*time.Millisecond {
		t.Errorf("calls %+v, want one with at most 20 ms left", c)
	}
	if api.Failed() != 0 || api.InFlight() != 0 {
		t.Errorf("failed %d, in flight %d; a deadline is not an answer, and the call is over", api.Failed(), api.InFlight())
	}

	api = &API{Latency: time.Millisecond}
	if _, err := api.ShowTask(context.Background(), "a"); err != nil {
		t.Errorf("a short latency: %v", err)
	}
}

func TestGateHoldsTheChosenCalls(t *testing.T) {
	api := &API{
		Gate:   make(chan struct{}),
		Hold:   func(n int, id string) bool { return id != "free" },
		Called: make(chan string),
	}
	errs := make(chan error, 4)
	for _, id := range []string{"h1", "h2", "h3"} {
		go func() {
			_, err := api.ShowTask(context.Background(), id)
			errs <- err
		}()
	}
	var called []string
	for range 3 {
		called = append(called, <-api.Called)
	}
	slices.Sort(called)
	if !slices.Equal(called, []string{"h1", "h2", "h3"}) {
		t.Errorf("Called reported %v", called)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := api.ShowTask(ctx, "free") // fails at its deadline if held
		errs <- err
	}()
	if id := <-api.Called; id != "free" {
		t.Errorf("Called reported %q, want free", id)
	}
	if err := <-errs; err != nil {
		t.Fatalf("the call that Hold does not choose: %v", err)
	}
	if n := api.InFlight(); n != 3 {
		t.Fatalf("%d calls in flight, want the 3 held", n)
	}
	api.Gate <- struct{}{} // one value releases one call
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if n := api.InFlight(); n != 2 {
		t.Errorf("%d calls in flight after one was released, want 2", n)
	}
	close(api.Gate) // closing releases the rest
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if api.InFlight() != 0 || api.MaxInFlight() != 4 || api.Total() != 4 {
		t.Errorf("in flight %d, at most %d, total %d; want 0, 4 and 4", api.InFlight(), api.MaxInFlight(), api.Total())
	}
}

func TestHeldCallEndsWithItsDeadline(t *testing.T) {
	api := &API{Gate: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := api.ShowTask(ctx, "held")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a held call past its deadline: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a held call outlived its deadline")
	}
}

func TestCountsAndReset(t *testing.T) {
	api := &API{Gate: make(chan struct{}), Called: make(chan string, 8)}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := "a"
			if i%2 == 1 {
				id = "b"
			}
			if _, err := api.ShowTask(context.Background(), id); err != nil {
				t.Error(err)
			}
		})
	}
	for range 8 { // each call is counted before it reports its id
		<-api.Called
	}
	if n := api.InFlight(); n != 8 {
		t.Fatalf("%d calls in flight, want the 8 held", n)
	}
	close(api.Gate)
	wg.Wait()
	if got := api.PerID(); got["a"] != 4 || got["b"] != 4 || len(got) != 2 {
		t.Errorf("per id %v, want a and b 4 times each", got)
	}
	if api.Total() != 8 || api.MaxInFlight() != 8 || len(api.Order()) != 8 {
		t.Errorf("total %d, at most %d in flight, order %v", api.Total(), api.MaxInFlight(), api.Order())
	}
	_, _ = api.SearchTask(context.Background(), metastudio.SearchParams{})
	api.Reset()
	if api.Total() != 0 || len(api.PerID()) != 0 || len(api.Searches()) != 0 || api.MaxInFlight() != 0 {
		t.Errorf("after Reset: total %d, per id %v, searches %d, at most %d in flight", api.Total(), api.PerID(), len(api.Searches()), api.MaxInFlight())
	}
	var n int
	api.Fail = func(k int, _ string) error { n = k; return nil }
	_, _ = api.ShowTask(context.Background(), "c")
	_, _ = api.ShowTask(context.Background(), "a")
	if got := api.Order(); !slices.Equal(got, []string{"c", "a"}) || n != 2 {
		t.Errorf("after Reset: order %v, last call number %d; want [c a] and 2", got, n)
	}
}

func TestSearchThroughTheModel(t *testing.T) {
	want := errors.New("the listing failed")
	api := &API{Search: func(_ context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error) {
		if p.Offset > 0 {
			return nil, want
		}
		return &metastudio.TaskPage{Data: []metastudio.Task{*Task("run1", false)}}, nil
	}}
	if page, err := api.SearchTask(context.Background(), metastudio.SearchParams{}); err != nil || len(page.Data) != 1 {
		t.Errorf("first page: %+v, %v", page, err)
	}
	if _, err := api.SearchTask(context.Background(), metastudio.SearchParams{Offset: 1}); err != want {
		t.Errorf("second page: %v, want the model's error", err)
	}
	if got := api.Searches(); len(got) != 2 || got[1].Offset != 1 {
		t.Errorf("searches %+v", got)
	}
}
