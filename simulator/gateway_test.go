package simulator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const wantThrottleMsg = "The throttling threshold has been reached: policy user over ratelimit,limit:30,time:1 second"

func TestGatewayThrottles(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, Options{Tasks: 3, RateLimit: 30})
	ids := s.TaskIDs()

	// 50 requests at one instant: the full bucket (burst 30 by default) lets 30 through.
	var codes []int
	for i := range 50 {
		a := serve(s, signed(clock, showPath(ids[i%3])))
		codes = append(codes, a.status)
		if i >= 30 {
			a.wantError(t, http.StatusTooManyRequests, CodeGatewayThrottled, wantThrottleMsg)
			if m := a.json(t); len(m) != 3 || m["error_msg"] != wantThrottleMsg {
				t.Errorf("429 body = %s, want exactly error_code, error_msg %q and request_id", a.body, wantThrottleMsg)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("429 Content-Type = %q, want application/json", ct)
			}
		}
	}
	for i, c := range codes {
		if want := map[bool]int{true: http.StatusOK, false: http.StatusTooManyRequests}[i < 30]; c != want {
			t.Fatalf("request %d answered %d, want %d (all: %v)", i, c, want, codes)
		}
	}

	// 100 ms later 3 tokens are back (30/s); a SearchTask takes one too.
	clock.Advance(100 * time.Millisecond)
	if a := serve(s, signed(clock, "/v2/"+testProject+"/ies/task")); a.status != http.StatusOK {
		t.Fatalf("SearchTask after 100 ms: %d %s", a.status, a.body)
	}
	for i, want := range []int{200, 200, 429} {
		if a := serve(s, signed(clock, showPath(ids[0]))); a.status != want {
			t.Fatalf("ShowTask %d after 100 ms: %d, want %d", i, a.status, want)
		}
	}

	// The gateway comes before authentication: an unsigned request over the limit is a 429,
	// not a 401, and does not count toward the AK lock.
	r := httptest.NewRequest(http.MethodGet, showPath(ids[0]), nil)
	if a := serve(s, r); a.status != http.StatusTooManyRequests {
		t.Fatalf("unsigned request over the limit: %d, want 429", a.status)
	}
	// IAM and unknown paths are not throttled.
	if a := serve(s, signed(clock, "/v2/"+testProject+"/other")); a.status != http.StatusNotFound {
		t.Errorf("an unknown path over the limit: %d, want 404", a.status)
	}

	st, ok := s.GatewayStats()
	if !ok {
		t.Fatal("GatewayStats: not ok with RateLimit set")
	}
	// Answered: 30 + 1 SearchTask + 2. Throttled: 20 + 1 + 1 (the unsigned one).
	if st.Answered != 33 || st.Throttled != 22 || st.RateLimit != 30 || st.RateBurst != 30 {
		t.Errorf("stats = answered %d, throttled %d, limit %v, burst %d; want 33, 22, 30, 30",
			st.Answered, st.Throttled, st.RateLimit, st.RateBurst)
	}
	if got := st.Operations[OpSearchTask]; got.Answered != 1 || got.Throttled != 0 {
		t.Errorf("SearchTask stats = %+v, want 1 answered", got)
	}
	if got := st.Operations[OpShowTask]; got.Answered != 32 || got.Throttled != 22 {
		t.Errorf("ShowTask stats = %+v, want 32 answered, 22 throttled", got)
	}
	// Task 0: answered at requests 0, 3, ..., 27 (10) and twice at +100 ms: all but its
	// first answer came less than 1 s after the previous one.
	t0 := st.Tasks[ids[0]]
	if t0.Answered != 12 || t0.Repeats != 11 || !t0.FirstAnswered.Equal(testStart) ||
		!t0.LastAnswered.Equal(testStart.Add(100*time.Millisecond)) {
		t.Errorf("task 0 stats = %+v", t0)
	}
	if st.Repeats != 11+9+9 {
		t.Errorf("repeats = %d, want 29 (11 + 9 + 9)", st.Repeats)
	}
}

func TestGatewayRepeatsAndBurst(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, Options{Tasks: 2, RateLimit: 2.5, RateBurst: 1})
	id := s.TaskIDs()[1]
	want := func(status int) {
		t.Helper()
		if a := serve(s, signed(clock, showPath(id))); a.status != status {
			t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
		}
	}
	want(200)
	want(429) // burst 1: the bucket is empty
	clock.Advance(399 * time.Millisecond)
	want(429) // 0.9975 of a token
	clock.Advance(time.Millisecond)
	want(200) // 400 ms after the first answer: a repeat
	clock.Advance(RepeatWindow)
	want(200) // exactly RepeatWindow later: not a repeat
	clock.Advance(10 * time.Second)
	want(200)
	want(429) // the bucket never holds more than the burst

	st, _ := s.GatewayStats()
	if tk := st.Tasks[id]; tk.Answered != 4 || tk.Throttled != 3 || tk.Repeats != 1 || st.Repeats != 1 {
		t.Errorf("task stats %+v, total repeats %d; want 4 answered, 3 throttled, 1 repeat", tk, st.Repeats)
	}
	a := serve(s, httptest.NewRequest(http.MethodGet, showPath(id), nil))
	a.wantError(t, http.StatusTooManyRequests, CodeGatewayThrottled, "limit:2.5,time:1 second")
}

func TestGatewayDoesNotCountAbandonedRequests(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, Options{Tasks: 1, RateLimit: 10})
	id := s.TaskIDs()[0]
	s.SetFault(id, FaultSlow(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{})
	go func() {
		defer close(served)
		serve(s, signed(clock, showPath(id)).WithContext(ctx))
	}()
	// Leave once the gateway has admitted the request (its token is gone): the answer is
	// then held by the hour-long fault.
	for {
		s.gate.mu.Lock()
		admitted := s.gate.tokens < 10
		s.gate.mu.Unlock()
		if admitted {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-served
	st, _ := s.GatewayStats()
	if st.Answered != 0 || st.Operations[OpShowTask].Answered != 0 {
		t.Errorf("a request whose client left counted as answered: %+v", st)
	}
}

func TestGatewayOff(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, Options{Tasks: 1})
	for range 100 {
		if a := serve(s, signed(clock, showPath(s.TaskIDs()[0]))); a.status != http.StatusOK {
			t.Fatalf("without RateLimit: %d", a.status)
		}
	}
	if _, ok := s.GatewayStats(); ok {
		t.Error("GatewayStats ok without RateLimit")
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, StatsPath, nil)
	r.RemoteAddr = "127.0.0.1:5555"
	s.StatsHandler().ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Errorf("stats without the gateway: %d, want 404", w.Code)
	}
}

func TestStatsHandler(t *testing.T) {
	t.Parallel()
	s, clock := newSim(t, Options{Tasks: 1, RateLimit: 1})
	id := s.TaskIDs()[0]
	serve(s, signed(clock, showPath(id)))
	serve(s, signed(clock, showPath(id)))

	for _, c := range []struct {
		name, method, remote string
		want                 int
	}{
		{"loopback v4", http.MethodGet, "127.0.0.1:40000", http.StatusOK},
		{"loopback v6", http.MethodGet, "[::1]:40000", http.StatusOK},
		{"remote", http.MethodGet, "192.0.2.1:40000", http.StatusForbidden},
		{"garbage address", http.MethodGet, "nonsense", http.StatusForbidden},
		{"POST", http.MethodPost, "127.0.0.1:40000", http.StatusMethodNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(c.method, StatsPath, nil)
			r.RemoteAddr = c.remote
			s.StatsHandler().ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
			}
			if c.want != http.StatusOK {
				return
			}
			var got struct {
				Answered, Throttled int64
				Tasks               map[string]struct {
					Answered, Throttled int64
					LastAnswered        time.Time `json:"last_answered"`
				}
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			tk := got.Tasks[id]
			if got.Answered != 1 || got.Throttled != 1 || tk.Answered != 1 || tk.Throttled != 1 || !tk.LastAnswered.Equal(testStart) {
				t.Errorf("stats body %s", w.Body)
			}
			if !strings.Contains(w.Body.String(), `"rate_limit":1,"rate_burst":1`) {
				t.Errorf("stats body %s lacks the limit and burst", w.Body)
			}
		})
	}
}
