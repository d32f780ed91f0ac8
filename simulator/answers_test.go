package simulator

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// The real cloud's answers: the faults by name, the quotas, X-Project-Id and overlaps.

func TestNamedFaults(t *testing.T) {
	cases := []struct {
		name, ct string
		status   int
		code     string
		msg      string // the whole error_msg
	}{
		{"token-invalid", contentMSS, 400, "MSS.00010008", "Invalid token in the header"},
		{"token-project", contentMSS, 400, "MSS.00010009", "urlTenantId is not equal tokenTenantId"},
		{"auth-forbidden", contentMSS, 403, "MSS.000000004", "Authentication failed."},
		{"quota-second", contentJSON, 429, "APIGW.0308",
			"The throttling threshold has been reached: policy user over ratelimit,limit:10,time:1 second"},
		{"quota-minute", contentJSON, 429, "APIGW.0308",
			"The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 minute"},
		{"quota-used-up", contentJSON, 405, "APIGW.0501", "The app quota has been used up."},
		{"invalid-param", contentMSS, 400, "MSS.000000003", "Invalid parameter: task_id is invalid."},
		{"not-found", contentJSON, 404, "APIGW.0101", msgNotFound},
		{"throttled", contentJSON, 429, "APIGW.0308", msgThrottled},
		{"internal", contentMSS, 500, "MSS.000000002", "Internal error."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := NamedFault(c.name)
			if err != nil {
				t.Fatal(err)
			}
			s, clock := newSim(t, Options{Tasks: 1, Faults: []Fault{f}})
			for _, path := range []string{showPath(s.TaskIDs()[0]), showPath("nosuchtask"), searchPath} {
				a := serve(s, signed(clock, path))
				a.wantError(t, c.status, c.code, c.msg)
				if m := a.json(t); m["error_msg"] != c.msg || len(m) != 3 {
					t.Errorf("%s: body %s, want exactly error_code, error_msg %q and request_id", path, a.body, c.msg)
				}
				if got := a.header.Get("Content-Type"); got != c.ct {
					t.Errorf("%s: Content-Type %q, want %q", path, got, c.ct)
				}
				if ra := a.header.Get("Retry-After"); ra != "" {
					t.Errorf("%s: Retry-After %q; the gateway sends none", path, ra)
				}
			}
			// The fault comes after authentication.
			serve(s, httptest.NewRequest(http.MethodGet, "http://x"+showPath(s.TaskIDs()[0]), nil)).
				wantError(t, 401, "APIGW.0301", "")
		})
	}
	t.Run("malformed", func(t *testing.T) {
		f, err := NamedFault("malformed")
		if err != nil {
			t.Fatal(err)
		}
		s, clock := newSim(t, Options{Tasks: 1, Faults: []Fault{f}})
		if a := serve(s, signed(clock, searchPath)); a.status != 200 || strings.HasSuffix(string(a.body), "}") {
			t.Errorf("%d %s, want 200 with truncated JSON", a.status, a.body)
		}
	})
	t.Run("every name has a case", func(t *testing.T) {
		for _, name := range FaultNames() {
			found := name == "malformed"
			for _, c := range cases {
				found = found || c.name == name
			}
			if !found {
				t.Errorf("fault %s is not tested", name)
			}
		}
	})
	t.Run("unknown name", func(t *testing.T) {
		_, err := NamedFault("quota-hour")
		if err == nil || !strings.Contains(err.Error(), `"quota-hour"`) || !strings.Contains(err.Error(), "quota-used-up") {
			t.Errorf("error %v, want one naming the fault and the known ones", err)
		}
	})
}

func TestFaultsTakeTurns(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Faults: []Fault{FaultTokenInvalid(), FaultQuotaUsedUp()}})
	id := s.TaskIDs()[0]
	s.SetFault(id, FaultInternal()) // SetFault comes first for its id
	for i, want := range []string{"MSS.00010008", "APIGW.0501", "MSS.000000002", "MSS.00010008", "APIGW.0501"} {
		path := showPath("other")
		if i == 2 {
			path = showPath(id)
		}
		if got := serve(s, signed(clock, path)).json(t)["error_code"]; got != want {
			t.Errorf("request %d: %v, want %s", i, got, want)
		}
	}
}

func TestUnknownTaskAnswers400(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1})
	for _, id := range []string{"nosuchtask", TaskID(1)} {
		a := serve(s, signed(clock, showPath(id)))
		a.wantError(t, 400, "MSS.000000003", "Invalid parameter: task "+id+" does not exist.")
		if ct := a.header.Get("Content-Type"); ct != contentMSS {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

// tokenGet is a GET of path with an X-Auth-Token (and no X-Project-Id).
func tokenGet(path, token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+path, nil)
	r.Header.Set(auth.HeaderAuthToken, token)
	return r
}

// noProject is a GET of path signed with the test keys at the clock's time, without
// X-Project-Id.
func noProject(clock *testkit.Clock, path string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+path, nil)
	r.Header.Set("Content-Type", "application/json")
	auth.Sign(r, nil, auth.Keys{AccessKey: testAK, SecretKey: testSK}, clock.Now())
	return r
}

func TestProjectHeaderRequired(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Tokens: []string{"good-token"}})
	id := s.TaskIDs()[0]
	const missing = "Incorrect IAM authentication information: Unauthorized, the X-Project-Id header is missing"
	cases := []struct {
		name   string
		r      func() *http.Request
		status int
		msg    string
	}{
		{"ShowTask signed without it", func() *http.Request { return noProject(clock, showPath(id)) }, 401, missing},
		{"SearchTask signed without it", func() *http.Request { return noProject(clock, searchPath) }, 401, missing},
		{"ShowTask signed with it", func() *http.Request { return signed(clock, showPath(id)) }, 200, ""},
		{"ShowTask with a token", func() *http.Request { return tokenGet(showPath(id), "good-token") }, 200, ""},
		{"IAM projects signed without it", func() *http.Request { return noProject(clock, "/v3/projects?name=cn-north-4") }, 200, ""},
		{"unknown path signed without it", func() *http.Request { return noProject(clock, "/v2/"+testProject+"/other") }, 404, "The API does not exist"},
		{"wrong signature without it", func() *http.Request {
			r := noProject(clock, showPath(id))
			r.Header.Set(auth.HeaderSdkDate, clock.Now().Add(time.Second).Format(auth.DateFormat))
			return r
		}, 401, "verify aksk signature fail"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := serve(s, c.r())
			if c.status == 200 {
				if a.status != 200 {
					t.Fatalf("%d %s", a.status, a.body)
				}
				return
			}
			code := "APIGW.0301"
			if c.status == 404 {
				code = "APIGW.0101"
			}
			a.wantError(t, c.status, code, c.msg)
			if c.msg == missing && a.json(t)["error_msg"] != missing {
				t.Errorf("error_msg %v, want %q", a.json(t)["error_msg"], missing)
			}
		})
	}
	t.Run("not an AK lock failure", func(t *testing.T) {
		for range 2 * lockAfter {
			serve(s, noProject(clock, showPath(id))).wantError(t, 401, "APIGW.0301", "X-Project-Id")
		}
		if a := serve(s, signed(clock, showPath(id))); a.status != 200 {
			t.Errorf("after %d calls without X-Project-Id: %d %s", 2*lockAfter, a.status, a.body)
		}
	})
}

func TestQuotaPerMinute(t *testing.T) {
	const otherAK, otherSK = "OTHERAKOTHERAKOTHER1", "other-sk"
	s, clock := newSim(t, Options{Tasks: 1, QuotaPerMinute: 3, Tokens: []string{"tok"},
		Credentials: map[string]string{testAK: testSK, otherAK: otherSK}})
	show := showPath(s.TaskIDs()[0])
	const refusal = "The throttling threshold has been reached: policy user over ratelimit,limit:3,time:1 minute"
	other := func() *http.Request {
		return signedAt(show, auth.Keys{AccessKey: otherAK, SecretKey: otherSK}, clock.Now())
	}
	steps := []struct {
		name    string
		advance time.Duration
		r       func() *http.Request
		status  int
	}{
		{"1st", 0, func() *http.Request { return signed(clock, show) }, 200},
		{"2nd, SearchTask", 0, func() *http.Request { return signed(clock, searchPath) }, 200},
		{"unauthenticated, not charged", 0, func() *http.Request { return noProject(clock, show) }, 401},
		{"3rd", 0, func() *http.Request { return signed(clock, show) }, 200},
		{"4th", 0, func() *http.Request { return signed(clock, show) }, 429},
		{"another AK", 0, other, 200},
		{"a token", 0, func() *http.Request { return tokenGet(show, "tok") }, 200},
		{"4th, 12.999 s later, same minute", 12999 * time.Millisecond, func() *http.Request { return signed(clock, searchPath) }, 429},
		{"next minute", time.Millisecond, func() *http.Request { return signed(clock, show) }, 200},
		{"2nd of the next minute", 0, func() *http.Request { return signed(clock, show) }, 200},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		a := serve(s, st.r())
		if a.status != st.status {
			t.Fatalf("%s: %d %s, want %d", st.name, a.status, a.body, st.status)
		}
		if st.status == 429 {
			a.wantError(t, 429, "APIGW.0308", refusal)
			if m := a.json(t); m["error_msg"] != refusal {
				t.Errorf("%s: error_msg %v, want %q", st.name, m["error_msg"], refusal)
			}
			if ra := a.header.Get("Retry-After"); ra != "" {
				t.Errorf("%s: Retry-After %q", st.name, ra)
			}
		}
	}
	st, ok := s.GatewayStats()
	if !ok {
		t.Fatal("no stats with QuotaPerMinute")
	}
	if st.QuotaPerMinute != 3 || st.MinuteRefused != 2 || st.QuotaCalls != 7 || st.RateLimit != 0 || st.Throttled != 0 {
		t.Errorf("stats %+v, want quota 3, 2 refused, 7 charged, no bucket", st)
	}
}

func TestQuotaUsedUp(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Quota: 2, Tokens: []string{"tok"}})
	show := showPath(s.TaskIDs()[0])
	for i, want := range []int{200, 200, 405, 405} {
		r := signed(clock, show)
		if i%2 == 1 {
			r = tokenGet(searchPath, "tok") // every credential shares the quota
		}
		a := serve(s, r)
		if a.status != want {
			t.Fatalf("call %d: %d %s, want %d", i, a.status, a.body, want)
		}
		if want == 405 {
			a.wantError(t, 405, "APIGW.0501", "The app quota has been used up.")
		}
		clock.Advance(time.Hour) // the quota does not come back
	}
	// Unauthenticated calls are refused before the quota.
	serve(s, httptest.NewRequest(http.MethodGet, "http://x"+show, nil)).wantError(t, 401, "APIGW.0301", "")
	st, _ := s.GatewayStats()
	if st.Quota != 2 || st.QuotaCalls != 2 || st.UsedUpRefused != 2 || st.Answered != 5 {
		t.Errorf("stats %+v, want quota 2, 2 charged, 2 refused, 5 answered", st)
	}
}

func TestGatewayCountsOverlaps(t *testing.T) {
	a, b := TaskID(0), TaskID(1)
	cases := []struct {
		name   string
		second func(clock *testkit.Clock) *http.Request
		want   int64
	}{
		{"same id, same AK", func(c *testkit.Clock) *http.Request { return signed(c, showPath(a)) }, 1},
		{"another id, same AK", func(c *testkit.Clock) *http.Request { return signed(c, showPath(b)) }, 0},
		{"same id, a token", func(c *testkit.Clock) *http.Request { return tokenGet(showPath(a), "tok") }, 0},
		{"SearchTask, same AK", func(c *testkit.Clock) *http.Request { return signed(c, searchPath) }, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, clock := newSim(t, Options{Tasks: 2, RateLimit: 1000, Tokens: []string{"tok"}})
			// The first call is held while its body is read: once the pipe's first write
			// returns, the simulator is answering it.
			body, hold := io.Pipe()
			first := signed(clock, showPath(a))
			first.Body = body
			done := make(chan struct{})
			go func() {
				defer close(done)
				serve(s, first)
			}()
			if _, err := hold.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			serve(s, c.second(clock))
			hold.Close()
			<-done
			serve(s, signed(clock, showPath(a))) // after the first ended: no overlap

			st, _ := s.GatewayStats()
			if st.Overlaps != c.want || st.Tasks[a].Overlaps != c.want || st.Tasks[b].Overlaps != 0 {
				t.Errorf("overlaps %d (task a %d, task b %d), want %d", st.Overlaps, st.Tasks[a].Overlaps, st.Tasks[b].Overlaps, c.want)
			}
		})
	}
}
