package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

const (
	testAK      = "TESTAKTESTAKTESTAK01"
	testSK      = "test-secret-key"
	testProject = "0123456789abcdef0123456789abcdef"
)

var testStart = time.Date(2025, 4, 10, 9, 22, 47, 0, time.UTC)

// newSim builds a simulator with one AK/SK, on a fake clock at testStart.
func newSim(t *testing.T, o Options) (*Server, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(testStart)
	if o.Credentials == nil {
		o.Credentials = map[string]string{testAK: testSK}
	}
	if o.ProjectID == "" {
		o.ProjectID = testProject
	}
	o.Now = clock.Now
	return New(o), clock
}

// answer is a recorded response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, a.body)
	}
	return m
}

// wantError checks an error answer: status, error_code, that error_msg contains msg, and
// that request_id is the X-Request-Id header.
func (a answer) wantError(t *testing.T, status int, code, msg string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d; body %s", a.status, status, a.body)
	}
	m := a.json(t)
	if m["error_code"] != code {
		t.Errorf("error_code = %v, want %s", m["error_code"], code)
	}
	if s, _ := m["error_msg"].(string); !strings.Contains(s, msg) {
		t.Errorf("error_msg = %q, want it to contain %q", s, msg)
	}
	id := a.header.Get("X-Request-Id")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("X-Request-Id = %q, want 32 hex digits", id)
	}
	if m["request_id"] != id {
		t.Errorf("request_id = %v, X-Request-Id = %q: they differ", m["request_id"], id)
	}
}

func serve(s *Server, r *http.Request) answer {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return answer{status: w.Code, header: w.Result().Header, body: w.Body.Bytes()}
}

// signedAt builds a GET signed with keys at the given instant, as the exporter does.
func signedAt(path string, keys auth.Keys, at time.Time) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+path, nil)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(auth.HeaderProjectID, testProject)
	auth.Sign(r, nil, keys, at)
	return r
}

// signed builds a GET of path signed with the test keys at the clock's time.
func signed(c *testkit.Clock, path string) *http.Request {
	return signedAt(path, auth.Keys{AccessKey: testAK, SecretKey: testSK}, c.Now())
}

func showPath(id string) string { return "/v2/" + testProject + "/ies/task/" + id }

const searchPath = "/v2/" + testProject + "/ies/task"

func TestPublishedVectorPassesAuthentication(t *testing.T) {
	vectorNow := time.Date(2019, 11, 15, 3, 36, 55, 0, time.UTC)
	s := New(Options{
		Credentials: map[string]string{"QTWAOYTTINDUT2QVKYUC": "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"},
		ProjectID:   testProject,
		Now:         func() time.Time { return vectorNow },
	})
	request := func(signature string) *http.Request {
		r := httptest.NewRequest(http.MethodGet,
			"http://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0", nil)
		r.Host = "service.region.example.com"
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Sdk-Date", "20191115T033655Z")
		r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "+
			"SignedHeaders=content-type;host;x-sdk-date, Signature="+signature)
		return r
	}
	// Authentication passes; the path is not a MetaStudio API.
	serve(s, request("7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe")).
		wantError(t, http.StatusNotFound, "APIGW.0101", "The API does not exist")
	// One changed digit fails it.
	serve(s, request("7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebf")).
		wantError(t, http.StatusUnauthorized, "APIGW.0301", "verify aksk signature fail")
}

func TestShowTaskFieldStyles(t *testing.T) {
	required := []string{"resource", "task_name", "task_type", "operator", "total_count",
		"success_count", "failure_count", "task_status", "task_id", "user_id"}
	numeric := []string{"begin_time", "end_time", "task_type", "total_count", "success_count",
		"failure_count", "task_status"}
	for _, style := range []string{StyleNumber, StyleString, StyleMixed} {
		t.Run(style, func(t *testing.T) {
			s, clock := newSim(t, Options{Tasks: 12, Seed: 7, FieldStyle: style})
			sawNull, sawAbsentEnd, sawEnd := false, false, false
			for i, id := range s.TaskIDs() {
				a := serve(s, signed(clock, showPath(id)))
				if a.status != http.StatusOK {
					t.Fatalf("%s: status %d: %s", id, a.status, a.body)
				}
				if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type = %q", ct)
				}
				m := a.json(t)
				for _, k := range required {
					if _, ok := m[k]; !ok {
						t.Errorf("%s: %s missing", id, k)
					}
				}
				if m["task_id"] != id {
					t.Errorf("task_id = %v, want %s", m["task_id"], id)
				}
				wantString := style == StyleString || (style == StyleMixed && i%2 == 1)
				for _, k := range numeric {
					v, present := m[k]
					switch {
					case !present:
						if k != "begin_time" && k != "end_time" {
							t.Errorf("%s: %s absent", id, k)
						}
						if k == "end_time" {
							sawAbsentEnd = true
						}
					case v == nil:
						sawNull = true
					case wantString:
						str, ok := v.(string)
						if !ok {
							t.Errorf("%s: %s = %#v, want a JSON string", id, k, v)
						} else if _, err := strconv.ParseInt(str, 10, 64); err != nil {
							t.Errorf("%s: %s = %q, want digits", id, k, str)
						}
					default:
						if _, ok := v.(json.Number); !ok {
							t.Errorf("%s: %s = %#v, want a JSON number", id, k, v)
						}
					}
					if k == "end_time" && v != nil {
						sawEnd = true
					}
				}
				for _, k := range []string{"resource", "task_name", "operator", "user_id", "task_id"} {
					if _, ok := m[k].(string); !ok {
						t.Errorf("%s: %s = %#v, want a string", id, k, m[k])
					}
				}
			}
			if !sawNull || !sawAbsentEnd || !sawEnd {
				t.Errorf("want unset times both null and absent and some end_time set: null %v, absent %v, set %v",
					sawNull, sawAbsentEnd, sawEnd)
			}
		})
	}
}

func TestSeededTasksAreDeterministic(t *testing.T) {
	body := func(seed int64, id string) string {
		s, clock := newSim(t, Options{Tasks: 6, Seed: seed})
		return string(serve(s, signed(clock, showPath(id))).body)
	}
	s, _ := newSim(t, Options{Tasks: 3})
	want := []string{"00000000000000000000000000000001", "00000000000000000000000000000002",
		"00000000000000000000000000000003"}
	if got := s.TaskIDs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("TaskIDs = %v, want %v", got, want)
	}
	differ := false
	for i := range 6 {
		a, b := body(42, TaskID(i)), body(42, TaskID(i))
		if a != b {
			t.Errorf("same seed, different tasks:\n%s\n%s", a, b)
		}
		if body(43, TaskID(i)) != a {
			differ = true
		}
	}
	if !differ {
		t.Error("seeds 42 and 43 gave the same tasks")
	}
	var cjk bool
	s, clock := newSim(t, Options{Tasks: 12, Seed: 1})
	for _, id := range s.TaskIDs() {
		name, _ := serve(s, signed(clock, showPath(id))).json(t)["task_name"].(string)
		if regexp.MustCompile(`\p{Han}`).MatchString(name) {
			cjk = true
		}
	}
	if !cjk {
		t.Error("no task name in CJK")
	}
}

func TestAuthenticationFailures(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Tokens: []string{"good-token"}})
	id := s.TaskIDs()[0]
	keys := auth.Keys{AccessKey: testAK, SecretKey: testSK}
	check := func(name string, r *http.Request, status int, code, msg string) {
		t.Run(name, func(t *testing.T) {
			a := serve(s, r)
			if status == http.StatusOK {
				if a.status != http.StatusOK {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				return
			}
			a.wantError(t, status, code, msg)
		})
	}
	now := clock.Now()
	check("good signature", signed(clock, showPath(id)), 200, "", "")

	wrong := signedAt(showPath(id), auth.Keys{AccessKey: testAK, SecretKey: "wrong"}, now)
	check("wrong signature", wrong, 401, "APIGW.0301", "Incorrect IAM authentication information: verify aksk signature fail")

	tampered := signed(clock, showPath(id))
	tampered.Header.Set(auth.HeaderProjectID, "ffffffffffffffffffffffffffffffff")
	check("signed header changed", tampered, 401, "APIGW.0301", "verify aksk signature fail")

	check("unknown AK", signedAt(showPath(id), auth.Keys{AccessKey: "NOSUCHAK", SecretKey: testSK}, now),
		401, "APIGW.0301", "ak not exist")

	check("skew 14 min behind", signedAt(showPath(id), keys, now.Add(-14*time.Minute)), 200, "", "")
	check("skew 16 min behind", signedAt(showPath(id), keys, now.Add(-16*time.Minute)), 401, "APIGW.0301", "15 minutes")
	check("skew 16 min ahead", signedAt(showPath(id), keys, now.Add(16*time.Minute)), 401, "APIGW.0301", "15 minutes")

	noDate := signed(clock, showPath(id))
	noDate.Header.Del(auth.HeaderSdkDate)
	check("no X-Sdk-Date", noDate, 401, "APIGW.0301", "X-Sdk-Date")
	badDate := signed(clock, showPath(id))
	badDate.Header.Set(auth.HeaderSdkDate, "2025-04-10T09:22:47Z")
	check("bad X-Sdk-Date", badDate, 401, "APIGW.0301", "X-Sdk-Date")

	unsignedDate := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+showPath(id), nil)
	unsignedDate.Header.Set(auth.HeaderSdkDate, now.Format(auth.DateFormat))
	unsignedDate.Header.Set("Authorization", "SDK-HMAC-SHA256 Access="+testAK+", SignedHeaders=host, Signature="+
		auth.Signature(testSK, auth.StringToSign(auth.CanonicalRequest(unsignedDate, []string{"host"},
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), now.Format(auth.DateFormat))))
	check("x-sdk-date not signed", unsignedDate, 401, "APIGW.0301", "x-sdk-date")

	garbled := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+showPath(id), nil)
	garbled.Header.Set("Authorization", "SDK-HMAC-SHA256 garbage")
	check("garbled Authorization", garbled, 401, "APIGW.0301", "verify aksk signature fail")

	bearer := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+showPath(id), nil)
	bearer.Header.Set("Authorization", "Bearer abc")
	check("other scheme", bearer, 401, "APIGW.0301", "Incorrect IAM authentication information")

	check("nothing", httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+showPath(id), nil),
		401, "APIGW.0301", "Incorrect IAM authentication information")

	tok := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+showPath(id), nil)
	tok.Header.Set(auth.HeaderAuthToken, "good-token")
	check("token", tok, 200, "", "")
	badTok := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+showPath(id), nil)
	badTok.Header.Set(auth.HeaderAuthToken, "bad-token")
	check("bad token", badTok, 401, "APIGW.0301", "decrypt token fail")

	// Authentication comes before routing: an unauthenticated unknown path is a 401.
	check("unknown path unauthenticated",
		httptest.NewRequest(http.MethodGet, "http://metastudio.example.com/nowhere", nil),
		401, "APIGW.0301", "")
}

func TestSecurityTokenRequired(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, SecurityTokens: map[string]string{testAK: "sts-token"}})
	id := s.TaskIDs()[0]
	path := showPath(id)
	with := signedAt(path, auth.Keys{AccessKey: testAK, SecretKey: testSK, SecurityToken: "sts-token"}, clock.Now())
	if a := serve(s, with); a.status != http.StatusOK {
		t.Fatalf("with the token: %d %s", a.status, a.body)
	}
	serve(s, signed(clock, path)).wantError(t, 401, "APIGW.0301", "X-Security-Token")
	wrong := signedAt(path, auth.Keys{AccessKey: testAK, SecretKey: testSK, SecurityToken: "other"}, clock.Now())
	serve(s, wrong).wantError(t, 401, "APIGW.0301", "X-Security-Token")
	unsigned := signed(clock, path)
	unsigned.Header.Set(auth.HeaderSecurityToken, "sts-token") // added after signing
	serve(s, unsigned).wantError(t, 401, "APIGW.0301", "x-security-token is not signed")
}

func TestAKLock(t *testing.T) {
	const otherAK, otherSK = "OTHERAKOTHERAKOTHER1", "other-sk"
	s, clock := newSim(t, Options{Tasks: 1, Credentials: map[string]string{testAK: testSK, otherAK: otherSK}})
	path := showPath(s.TaskIDs()[0])
	bad := func() answer {
		return serve(s, signedAt(path, auth.Keys{AccessKey: testAK, SecretKey: "wrong"}, clock.Now()))
	}
	good := func() answer { return serve(s, signed(clock, path)) }

	// Five failures are tolerated, and a success resets the count.
	for i := range 5 {
		bad().wantError(t, 401, "APIGW.0301", "verify aksk signature fail")
		_ = i
	}
	if a := good(); a.status != 200 {
		t.Fatalf("after 5 failures: %d %s", a.status, a.body)
	}
	for range 5 {
		bad().wantError(t, 401, "APIGW.0301", "verify aksk signature fail")
	}
	if a := good(); a.status != 200 {
		t.Fatalf("success did not reset the count: %d %s", a.status, a.body)
	}

	// The 6th consecutive failure locks the AK.
	for range 6 {
		bad().wantError(t, 401, "APIGW.0301", "verify aksk signature fail")
	}
	const locked = "AK access failed to reach the limit,forbidden."
	good().wantError(t, 401, "APIGW.0301", locked)
	bad().wantError(t, 401, "APIGW.0301", locked)
	if a := serve(s, signedAt(path, auth.Keys{AccessKey: otherAK, SecretKey: otherSK}, clock.Now())); a.status != 200 {
		t.Errorf("another AK is locked too: %d %s", a.status, a.body)
	}
	clock.Advance(4*time.Minute + 59*time.Second)
	good().wantError(t, 401, "APIGW.0301", locked)
	clock.Advance(time.Second)
	if a := good(); a.status != 200 {
		t.Fatalf("still locked after 5 minutes: %d %s", a.status, a.body)
	}
	// After the lock, the count starts again from zero.
	for range 5 {
		bad().wantError(t, 401, "APIGW.0301", "verify aksk signature fail")
	}
	clock.Advance(time.Second)
	if a := good(); a.status != 200 {
		t.Fatalf("locked again too early: %d %s", a.status, a.body)
	}
}

func TestRouting(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 2})
	// An unknown task is MetaStudio's 400 invalid parameter: ShowTask documents only 200
	// and 400.
	unknown := serve(s, signed(clock, showPath("ffffffffffffffffffffffffffffffff")))
	unknown.wantError(t, 400, "MSS.000000003", "Invalid parameter: task ffffffffffffffffffffffffffffffff does not exist.")
	if m := unknown.json(t); len(m) != 3 {
		t.Errorf("unknown task: body %s, want exactly error_code, error_msg and request_id", unknown.body)
	}
	serve(s, signed(clock, "/v2/"+strings.Repeat("9", 32)+"/ies/task/"+s.TaskIDs()[0])).
		wantError(t, 404, "APIGW.0101", "The API does not exist or has not been published in the environment")
	serve(s, signed(clock, "/v2/"+testProject+"/ies/tasks")).wantError(t, 404, "APIGW.0101", "")
	serve(s, signed(clock, "/v2/"+testProject+"/ies/task/a/b")).wantError(t, 404, "APIGW.0101", "")
	serve(s, signed(clock, "/")).wantError(t, 404, "APIGW.0101", "")

	post := httptest.NewRequest(http.MethodPost, "http://metastudio.example.com"+searchPath, strings.NewReader(`{}`))
	post.Header.Set("Content-Type", "application/json")
	auth.Sign(post, []byte(`{}`), auth.Keys{AccessKey: testAK, SecretKey: testSK}, clock.Now())
	serve(s, post).wantError(t, 404, "APIGW.0101", "")

	a := serve(s, signed(clock, showPath(s.TaskIDs()[1])))
	if a.status != 200 {
		t.Fatalf("ShowTask: %d %s", a.status, a.body)
	}
	if got, want := a.header.Get("Date"), testStart.Format(http.TimeFormat); got != want {
		t.Errorf("Date = %q, want %q (from the fake clock)", got, want)
	}
	if a := serve(s, signed(clock, searchPath+"/")); a.status != 200 {
		t.Errorf("SearchTask with a trailing slash: %d", a.status)
	}
	if got := s.Requests(OpShowTask); got != 3 { // unknown id, other project, task 1
		t.Errorf("Requests(ShowTask) = %d, want 3", got)
	}
	if got := s.Requests(OpSearchTask); got != 1 {
		t.Errorf("Requests(SearchTask) = %d, want 1", got)
	}
	if got := s.Requests(OpOther); got != 4 {
		t.Errorf("Requests(Other) = %d, want 4", got)
	}
	serve(s, httptest.NewRequest(http.MethodGet, "http://x"+showPath("x"), nil)) // fails auth, still counted
	if got := s.Requests(OpShowTask); got != 4 {
		t.Errorf("Requests(ShowTask) after an unauthenticated one = %d, want 4", got)
	}
}

// page fetches one SearchTask page.
func page(t *testing.T, s *Server, clock *testkit.Clock, query url.Values) (map[string]any, []map[string]any) {
	t.Helper()
	a := serve(s, signed(clock, searchPath+"?"+query.Encode()))
	if a.status != 200 {
		t.Fatalf("SearchTask %s: %d %s", query.Encode(), a.status, a.body)
	}
	m := a.json(t)
	raw, ok := m["data"].([]any)
	if !ok {
		t.Fatalf("data = %#v, want an array", m["data"])
	}
	var data []map[string]any
	for _, d := range raw {
		data = append(data, d.(map[string]any))
	}
	return m, data
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		return n
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", x, err)
		}
		return n
	}
	t.Fatalf("%#v is not a number", v)
	return 0
}

func TestSearchTaskFilters(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 30, Seed: 5, FieldStyle: StyleString, SearchPaging: PagingRows})
	byResource := map[string][]string{}
	begins := map[string]int64{}
	for _, id := range s.TaskIDs() {
		m := serve(s, signed(clock, showPath(id))).json(t)
		byResource[m["resource"].(string)] = append(byResource[m["resource"].(string)], id)
		if b, ok := m["begin_time"].(string); ok {
			begins[id] = num(t, b)
		}
	}
	if len(byResource) < 2 {
		t.Fatalf("30 tasks use only %d resources", len(byResource))
	}
	var r1, r2 string
	for r := range byResource {
		if r1 == "" {
			r1 = r
		} else if r2 == "" {
			r2 = r
		}
	}
	m, data := page(t, s, clock, url.Values{"resource": {r1, r2}, "limit": {"100"}, "business_id": {"bot-1"}})
	want := len(byResource[r1]) + len(byResource[r2])
	if int(num(t, m["count"])) != want || len(data) != want {
		t.Errorf("resource=%s&resource=%s: count %v, %d tasks, want %d", r1, r2, m["count"], len(data), want)
	}
	for _, d := range data {
		if d["resource"] != r1 && d["resource"] != r2 {
			t.Errorf("resource filter let %v through", d["resource"])
		}
	}

	// begin_time range: the task that began earliest is out of [min+1, now].
	var earliest int64 = 1 << 62
	for _, b := range begins {
		earliest = min(earliest, b)
	}
	from, to := earliest+1, clock.Now().UnixMilli()
	m, data = page(t, s, clock, url.Values{"begin_time": {strconv.FormatInt(from, 10)},
		"end_time": {strconv.FormatInt(to, 10)}, "limit": {"100"}})
	wantN := 0
	for _, b := range begins {
		if b >= from && b <= to {
			wantN++
		}
	}
	if wantN == 0 || wantN == len(s.TaskIDs()) {
		t.Fatalf("the range test is degenerate: %d of %d", wantN, len(s.TaskIDs()))
	}
	if int(num(t, m["count"])) != wantN || len(data) != wantN {
		t.Errorf("begin_time range: count %v, %d tasks, want %d", m["count"], len(data), wantN)
	}
	for _, d := range data {
		if b := num(t, d["begin_time"]); b < from || b > to {
			t.Errorf("begin_time %d outside [%d, %d]", b, from, to)
		}
	}
}

func TestSetTask(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 3})
	fixed := map[string]any{
		"task_id":       "fixed-1",
		"resource":      "qa_pair",
		"begin_time":    "1744276967708",
		"end_time":      nil,
		"total_count":   42,
		"success_count": "40",
		"task_status":   1.5,
	}
	s.SetTask("fixed-1", fixed)
	fixed["resource"] = "changed after SetTask" // SetTask keeps its own copy
	a := serve(s, signed(clock, showPath("fixed-1")))
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"task_id": `"fixed-1"`, "resource": `"qa_pair"`, "begin_time": `"1744276967708"`,
		"end_time": `null`, "total_count": `42`, "success_count": `"40"`, "task_status": `1.5`,
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields, want %d: %s", len(got), len(want), a.body)
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
	// Newest first: the replaced task has no begin time (not begun) and comes first, then
	// fixed-1 (begun 708 ms after the start), then the seeded tasks by begin time (task 2
	// began minutes before the start, task 0 hours before).
	s.SetTask(s.TaskIDs()[1], map[string]any{"task_id": "replaced", "resource": "intent"})
	_, data := page(t, s, clock, url.Values{})
	var ids []any
	for _, d := range data {
		ids = append(ids, d["task_id"])
	}
	if w := fmt.Sprint([]any{"replaced", "fixed-1", s.TaskIDs()[2], s.TaskIDs()[0]}); fmt.Sprint(ids) != w {
		t.Errorf("SearchTask order %v, want %v", ids, w)
	}
	_, data = page(t, s, clock, url.Values{"resource": {"qa_pair"}, "begin_time": {"1744276967708"},
		"end_time": {"1744276967708"}})
	if len(data) != 1 || data[0]["task_id"] != "fixed-1" {
		t.Errorf("filters on a fixed task: %v", data)
	}
	// A value JSON cannot encode is a 500, not a panic.
	s.SetTask("bad", map[string]any{"x": make(chan int)})
	serve(s, signed(clock, showPath("bad"))).wantError(t, 500, "MSS.000000002", "")
}

func TestReadyMadeFaults(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1})
	id := s.TaskIDs()[0]
	jsonFaults := []struct {
		name   string
		f      Fault
		status int
		code   string
		msg    string
	}{
		{"invalid param", FaultInvalidParam(), 400, "MSS.000000003", "Invalid parameter"},
		{"not found", FaultNotFound(), 404, "APIGW.0101", "The API does not exist or has not been published in the environment"},
		{"throttled", FaultThrottled(), 429, "APIGW.0308", "The throttling threshold has been reached"},
		{"internal", FaultInternal(), 500, "MSS.000000002", "Internal error"},
	}
	for _, c := range jsonFaults {
		t.Run(c.name, func(t *testing.T) {
			s.SetFault(id, c.f)
			a := serve(s, signed(clock, showPath(id)))
			a.wantError(t, c.status, c.code, c.msg)
			if !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type = %q", a.header.Get("Content-Type"))
			}
			// The fault needs authentication first.
			serve(s, httptest.NewRequest(http.MethodGet, "http://x"+showPath(id), nil)).
				wantError(t, 401, "APIGW.0301", "")
		})
	}
	t.Run("html", func(t *testing.T) {
		s.SetFault(id, FaultHTML(502))
		a := serve(s, signed(clock, showPath(id)))
		if a.status != 502 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") ||
			!bytes.Contains(a.body, []byte("502 Bad Gateway")) {
			t.Errorf("%d %q %s", a.status, a.header.Get("Content-Type"), a.body)
		}
		if json.Valid(a.body) {
			t.Error("the HTML page is valid JSON")
		}
		if a.header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id")
		}
	})
	t.Run("malformed", func(t *testing.T) {
		s.SetFault(id, FaultMalformed())
		a := serve(s, signed(clock, showPath(id)))
		if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") || json.Valid(a.body) {
			t.Errorf("%d %q valid=%v %s", a.status, a.header.Get("Content-Type"), json.Valid(a.body), a.body)
		}
	})
	t.Run("custom without content type", func(t *testing.T) {
		s.SetFault(id, Fault{Status: 503, Body: "busy", Header: map[string]string{"Retry-After": "1"}})
		a := serve(s, signed(clock, showPath(id)))
		if a.status != 503 || string(a.body) != "busy" || a.header.Get("Retry-After") != "1" {
			t.Errorf("%d %v %s", a.status, a.header, a.body)
		}
		if ct, ok := a.header["Content-Type"]; ok && len(ct) > 0 {
			t.Errorf("Content-Type %q sent", ct)
		}
	})
	t.Run("slow", func(t *testing.T) {
		s.SetFault(id, FaultSlow(30*time.Millisecond))
		begin := time.Now()
		a := serve(s, signed(clock, showPath(id)))
		if took := time.Since(begin); took < 30*time.Millisecond {
			t.Errorf("slow answer took only %v", took)
		}
		if a.status != 200 || a.json(t)["task_id"] != id {
			t.Errorf("slow answer is not the task: %d %s", a.status, a.body)
		}
	})
	t.Run("slow, client gone", func(t *testing.T) {
		s.SetFault(id, FaultSlow(time.Hour))
		serveGone(t, s, signed(clock, showPath(id)), "the slow fault")
	})
	t.Run("unknown id", func(t *testing.T) {
		s.SetFault("nosuchtask", FaultThrottled())
		serve(s, signed(clock, showPath("nosuchtask"))).wantError(t, 429, "APIGW.0308", "")
		s.ClearFault("nosuchtask")
		serve(s, signed(clock, showPath("nosuchtask"))).wantError(t, 400, "MSS.000000003", "does not exist")
	})
}

func TestRandomFaults(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		check func(t *testing.T, a answer)
	}{
		{"error", Options{ErrorRate: 1}, func(t *testing.T, a answer) { a.wantError(t, 500, "MSS.000000002", "") }},
		{"throttle", Options{ThrottleRate: 1}, func(t *testing.T, a answer) { a.wantError(t, 429, "APIGW.0308", "") }},
		{"malformed", Options{MalformedRate: 1}, func(t *testing.T, a answer) {
			if a.status != 200 || json.Valid(a.body) {
				t.Errorf("%d %s", a.status, a.body)
			}
		}},
		{"slow", Options{SlowRate: 1, SlowDelay: 20 * time.Millisecond}, func(t *testing.T, a answer) {
			if a.status != 200 || !json.Valid(a.body) {
				t.Errorf("%d %s", a.status, a.body)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Tasks = 1
			s, clock := newSim(t, c.opts)
			c.check(t, serve(s, signed(clock, showPath(s.TaskIDs()[0]))))
			c.check(t, serve(s, signed(clock, searchPath)))
		})
	}
	t.Run("rate", func(t *testing.T) {
		s, clock := newSim(t, Options{Tasks: 1, ErrorRate: 0.3, Seed: 9})
		errs := 0
		for range 400 {
			if serve(s, signed(clock, showPath(s.TaskIDs()[0]))).status == 500 {
				errs++
			}
		}
		if errs < 80 || errs > 160 {
			t.Errorf("ErrorRate 0.3: %d errors in 400", errs)
		}
	})
}

// serveGone serves r to a client that leaves as soon as it is sent: what (a delay of an
// hour) must give way at once, and no body be written.
func serveGone(t *testing.T, s *Server, r *http.Request, what string) {
	t.Helper()
	ctx, cancel := context.WithCancel(r.Context())
	done := make(chan answer)
	go func() { done <- serve(s, r.WithContext(ctx)) }()
	cancel()
	select {
	case a := <-done:
		if len(a.body) != 0 {
			t.Errorf("answered a gone client: %s", a.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal(what + " ignored the request context")
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Latency: time.Hour})
	serveGone(t, s, signed(clock, showPath(s.TaskIDs()[0])), "Latency")
	s, clock = newSim(t, Options{Tasks: 1, Latency: 20 * time.Millisecond})
	begin := time.Now()
	if a := serve(s, signed(clock, showPath(s.TaskIDs()[0]))); a.status != 200 {
		t.Errorf("%d", a.status)
	}
	if took := time.Since(begin); took < 20*time.Millisecond {
		t.Errorf("Latency 20ms, answer after %v", took)
	}
}

// snapshot is the numeric state of every seeded task at the clock's time.
type snapshot struct {
	begin, end                                      map[string]bool
	status, total, success, failure, endMs, beginMs map[string]int64
}

// stage orders the seeded statuses along a task's life: waiting, running, finished.
func stage(status int64) int {
	switch status {
	case StatusWaiting:
		return 0
	case StatusRunning:
		return 1
	case StatusFinished:
		return 2
	}
	return -1
}

func takeSnapshot(t *testing.T, s *Server, clock *testkit.Clock) snapshot {
	t.Helper()
	sn := snapshot{map[string]bool{}, map[string]bool{}, map[string]int64{}, map[string]int64{},
		map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}}
	for _, id := range s.TaskIDs() {
		m := serve(s, signed(clock, showPath(id))).json(t)
		sn.begin[id] = m["begin_time"] != nil
		sn.end[id] = m["end_time"] != nil
		if sn.end[id] {
			sn.endMs[id] = num(t, m["end_time"])
		}
		if sn.begin[id] {
			sn.beginMs[id] = num(t, m["begin_time"])
		}
		sn.status[id] = num(t, m["task_status"])
		sn.total[id] = num(t, m["total_count"])
		sn.success[id] = num(t, m["success_count"])
		sn.failure[id] = num(t, m["failure_count"])
		// The status follows the times: 0 (the documented example) once finished; the
		// simulator's own 1 while running and 2 while waiting.
		want := int64(StatusWaiting)
		switch {
		case sn.end[id]:
			want = StatusFinished
		case sn.begin[id]:
			want = StatusRunning
		}
		if sn.status[id] != want {
			t.Errorf("%s: task_status %d, want %d (begun %v, ended %v)", id, sn.status[id], want, sn.begin[id], sn.end[id])
		}
		if sn.success[id]+sn.failure[id] > sn.total[id] {
			t.Errorf("%s: success %d + failure %d > total %d", id, sn.success[id], sn.failure[id], sn.total[id])
		}
	}
	return sn
}

func TestProgressOverTime(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 24, Seed: 11, FieldStyle: StyleMixed})
	first := takeSnapshot(t, s, clock)
	count := func(sn snapshot, pred func(id string) bool) int {
		n := 0
		for _, id := range s.TaskIDs() {
			if pred(id) {
				n++
			}
		}
		return n
	}
	if n := count(first, func(id string) bool { return first.end[id] && first.endMs[id] <= testStart.UnixMilli() }); n == 0 {
		t.Error("no task finished at the start")
	}
	if n := count(first, func(id string) bool { return first.begin[id] && !first.end[id] }); n == 0 {
		t.Error("no task in progress at the start")
	}
	if n := count(first, func(id string) bool { return !first.begin[id] && first.status[id] == StatusWaiting }); n == 0 {
		t.Error("no task waiting at the start")
	}
	if n := count(first, func(id string) bool { return first.begin[id] && !first.end[id] && first.failure[id] > 0 }); n == 0 {
		t.Error("no running task with failures at the start")
	}

	prev := first
	rose := false
	for _, step := range []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour} {
		clock.Advance(step)
		cur := takeSnapshot(t, s, clock)
		for _, id := range s.TaskIDs() {
			if cur.success[id] < prev.success[id] || cur.failure[id] < prev.failure[id] {
				t.Errorf("%s: counts went down: %d/%d -> %d/%d", id,
					prev.success[id], prev.failure[id], cur.success[id], cur.failure[id])
			}
			if stage(cur.status[id]) < stage(prev.status[id]) {
				t.Errorf("%s: status went back from %d to %d", id, prev.status[id], cur.status[id])
			}
			if cur.success[id]+cur.failure[id] > prev.success[id]+prev.failure[id] {
				rose = true
			}
			if prev.end[id] && (!cur.end[id] || cur.endMs[id] != prev.endMs[id]) {
				t.Errorf("%s: end_time changed after the task finished", id)
			}
		}
		prev = cur
	}
	if !rose {
		t.Error("no counts rose over time")
	}
	// A day and more later, every task is finished: task_status 0, as in the API's one
	// documented example, and an end_time; some processed every item, some stopped
	// part-way.
	failedSome := false
	complete, stopped := 0, 0
	for _, id := range s.TaskIDs() {
		if !prev.end[id] || !prev.begin[id] || prev.status[id] != 0 {
			t.Errorf("%s: not finished after a day (status %d)", id, prev.status[id])
		}
		if prev.success[id]+prev.failure[id] == prev.total[id] {
			complete++
		} else {
			stopped++
		}
		if prev.failure[id] > 0 {
			failedSome = true
		}
	}
	if !failedSome {
		t.Error("no task has failed items")
	}
	if complete == 0 || stopped == 0 {
		t.Errorf("finished tasks: %d processed everything, %d stopped part-way; want some of each", complete, stopped)
	}
	for _, id := range s.TaskIDs() {
		if d := time.Duration(first.beginMs[id]-testStart.UnixMilli()) * time.Millisecond; first.begin[id] && (d < -72*time.Hour || d > 0) {
			t.Errorf("%s: begin_time %v away from the start", id, d)
		}
	}
}

// TestOverHTTP runs the exporter's way of signing through a real connection, concurrently,
// with faults on (run with -race).
func TestOverHTTP(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 12, ErrorRate: 0.1, ThrottleRate: 0.1, MalformedRate: 0.1,
		SlowRate: 0.1, SlowDelay: 5 * time.Millisecond, FieldStyle: StyleMixed})
	srv := httptest.NewServer(s)
	defer srv.Close()
	var wg sync.WaitGroup
	statuses := make(chan int, 200)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				path := showPath(s.TaskIDs()[(w+i)%12])
				if i%5 == 0 {
					path = searchPath + "?resource=qa_pair&resource=intent&limit=3"
				}
				if i%7 == 0 {
					s.SetFault(s.TaskIDs()[i%12], FaultThrottled())
				}
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				req.Header.Set(auth.HeaderProjectID, testProject)
				auth.Sign(req, nil, auth.Keys{AccessKey: testAK, SecretKey: testSK}, clock.Now())
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Date") == "" {
					t.Errorf("missing X-Request-Id or Date: %v", resp.Header)
				}
				statuses <- resp.StatusCode
				clock.Advance(time.Second)
			}
		}()
	}
	wg.Wait()
	close(statuses)
	seen := map[int]int{}
	for st := range statuses {
		seen[st]++
	}
	if seen[200] == 0 || seen[401] != 0 {
		t.Errorf("statuses %v: want some 200 and no 401", seen)
	}
	if got := s.Requests(OpShowTask) + s.Requests(OpSearchTask); got != 200 {
		t.Errorf("Requests = %d, want 200", got)
	}
}

func TestSlowFaultStopsWhenClientGoesAway(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, SlowRate: 1, SlowDelay: time.Hour})
	srv := httptest.NewServer(s)
	client := srv.Client()
	client.Timeout = 50 * time.Millisecond
	req, _ := http.NewRequest(http.MethodGet, srv.URL+showPath(s.TaskIDs()[0]), nil)
	req.Header.Set(auth.HeaderProjectID, testProject)
	auth.Sign(req, nil, auth.Keys{AccessKey: testAK, SecretKey: testSK}, clock.Now())
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a slow answer came back: %d", resp.StatusCode)
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }() // Close waits for the handler
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler kept waiting after the client went away")
	}
}

func TestOddInputs(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 2, Tokens: []string{"t"}})
	big := httptest.NewRequest(http.MethodGet, "http://x"+searchPath, bytes.NewReader(make([]byte, 2<<20)))
	big.Header.Set(auth.HeaderAuthToken, "t")
	serve(s, big).wantError(t, 413, "APIGW.0201", "")

	for _, h := range []string{"SDK-HMAC-SHA256 ", "SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature=",
		"SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date;host, Signature=00",
		"SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=host;x-sdk-date, Signature=zz",
		"SDK-HMAC-SHA256 ,,,,===", strings.Repeat("A", 10000)} {
		r := httptest.NewRequest(http.MethodGet, "http://x"+searchPath, nil)
		r.Header.Set("Authorization", h)
		r.Header.Set(auth.HeaderSdkDate, clock.Now().Format(auth.DateFormat))
		serve(s, r).wantError(t, 401, "APIGW.0301", "")
	}
	for _, p := range []string{"/v2//ies/task", "/v2/" + testProject + "/ies/task/a%2Fb",
		"/v2/" + testProject + "/ies/task/%E4%BD%A0", "//", "/v2/" + testProject + "/ies/task?limit=99999999999999999999"} {
		if strings.Contains(p, "limit=") {
			continue // the default paging reads no limit; TestSearchTaskBadParameters covers it
		}
		a := serve(s, signed(clock, p))
		if a.status == 200 || a.status == 401 || a.status >= 500 {
			t.Errorf("%s: %d %s", p, a.status, a.body)
		}
	}
}
