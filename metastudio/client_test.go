package metastudio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) ObserveCall(c auth.Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c.Operation+" "+c.Code)
}

var testKeys = auth.Keys{AccessKey: "AK", SecretKey: "SK"}

func newTestClient(t *testing.T, h http.HandlerFunc) (*Client, *recorder) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rec := &recorder{}
	c, err := NewClient(Options{
		Endpoint: srv.URL, ProjectID: "p1", MaxConns: 3, Observer: rec,
		Auth: auth.NewSigner(testKeys, time.Now),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func answer(status int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func TestShowTaskSignsAndDecodes(t *testing.T) {
	var gotPath string
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.Path
		a, err := auth.ParseAuthorization(r.Header.Get("Authorization"))
		if err != nil || a.AccessKey != "AK" || auth.Verify(r, nil, a, "SK") != nil {
			w.WriteHeader(401)
			return
		}
		for _, h := range []string{"host", "x-project-id", "x-sdk-date"} {
			if !strings.Contains(strings.Join(a.SignedHeaders, ";"), h) {
				w.WriteHeader(401)
				return
			}
		}
		fmt.Fprint(w, `{"task_id":"t1","task_name":"导入 \"问答\"","resource":"qa_pair","begin_time":1744276967708,
			"end_time":"1744276999000","task_type":0,"task_status":"2","operator":null,"total_count":"42",
			"success_count":40,"failure_count":2}`)
	})
	task, err := c.ShowTask(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/v2/p1/ies/task/t1" {
		t.Errorf("path %q", gotPath)
	}
	want := Task{
		TaskID: Value{"t1", true}, TaskName: Value{`导入 "问答"`, true}, Resource: Value{"qa_pair", true},
		BeginTime: Value{"1744276967708", true}, EndTime: Value{"1744276999000", true},
		TaskType: Value{"0", true}, TaskStatus: Value{"2", true}, TotalCount: Value{"42", true},
		SuccessCount: Value{"40", true}, FailureCount: Value{"2", true},
	}
	if !reflect.DeepEqual(*task, want) {
		t.Errorf("task\n%+v\nwant\n%+v", *task, want)
	}
	if !task.Finished() || task.InProgress() {
		t.Error("a task with end_time is finished")
	}
	if !reflect.DeepEqual(rec.calls, []string{"ShowTask 200"}) {
		t.Errorf("observed %q", rec.calls)
	}
}

func TestValue(t *testing.T) {
	cases := []struct {
		json     string
		set      bool
		text     string
		num      float64
		numOK    bool
		secs     float64
		secsOK   bool
		finished bool
	}{
		{json: `1744276967708`, set: true, text: "1744276967708", num: 1744276967708, numOK: true, secs: 1744276967.708, secsOK: true},
		{json: `"1744276967708"`, set: true, text: "1744276967708", num: 1744276967708, numOK: true, secs: 1744276967.708, secsOK: true},
		{json: `"42"`, set: true, text: "42", num: 42, numOK: true, secs: 0.042, secsOK: true},
		{json: `0`, set: true, text: "0", num: 0, numOK: true},
		{json: `""`, set: true, text: ""},
		{json: `null`},
		{json: `-1`, set: true, text: "-1"},
		{json: `"NaN"`, set: true, text: "NaN"},
		{json: `"Infinity"`, set: true, text: "Infinity"},
		{json: `1e400`, set: true, text: "1e400"},
		{json: `"abc"`, set: true, text: "abc"},
		{json: `true`, set: true, text: "true"},
		{json: `{"a":1}`},
		{json: `[1]`},
		{json: `2.5`, set: true, text: "2.5", num: 2.5, numOK: true, secs: 0.0025, secsOK: true},
		{json: `" 7 "`, set: true, text: " 7 ", num: 7, numOK: true, secs: 0.007, secsOK: true}, // spaces around a number in a string
		{json: `"\t42\n"`, set: true, text: "\t42\n", num: 42, numOK: true, secs: 0.042, secsOK: true},
		{json: `" 42 "`, set: true, text: " 42 ", num: 42, numOK: true, secs: 0.042, secsOK: true},
		{json: `"导入问答"`, set: true, text: "导入问答"},
		{json: `"a\"b\u00e9\n"`, set: true, text: "a\"bé\n"},
		{json: "\"bad \xff utf-8\"", set: true, text: "bad \ufffd utf-8"},
	}
	for _, tc := range cases {
		var v Value
		if err := json.Unmarshal([]byte(tc.json), &v); err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		if v.Set != tc.set || v.Text != tc.text {
			t.Errorf("%s: got %+v", tc.json, v)
		}
		if n, ok := v.Number(); ok != tc.numOK || n != tc.num {
			t.Errorf("%s: Number() = %v, %v", tc.json, n, ok)
		}
		if s, ok := v.Seconds(); ok != tc.secsOK || s != tc.secs {
			t.Errorf("%s: Seconds() = %v, %v", tc.json, s, ok)
		}
	}
	// Called directly (not through the decoder), odd bytes are not Set and do not panic.
	for _, raw := range []string{`"`, `"a`, "\"\x01\""} {
		var v Value
		if err := v.UnmarshalJSON([]byte(raw)); err != nil || v.Set {
			t.Errorf("UnmarshalJSON(%q) = %+v, %v", raw, v, err)
		}
	}
	var task Task
	if err := json.Unmarshal([]byte(`{"total_count":{"x":1},"begin_time":"1","unknown":[1,2]}`), &task); err != nil {
		t.Fatalf("odd shapes must not fail decoding: %v", err)
	}
	if task.TotalCount.Set || !task.InProgress() || task.Finished() {
		t.Errorf("odd shapes: %+v", task)
	}
}

func TestErrors(t *testing.T) {
	big := `{"task_id":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	cases := []struct {
		name                  string
		handler               http.HandlerFunc
		status                int
		code, msg, reqID, why string
		auth, throttled       bool
		verifies              bool // the service answered past the gateway's authentication
	}{
		{name: "MetaStudio 400", handler: answer(400, "application/json",
			`{"error_code":"MSS.000000003","error_msg":"Invalid parameter","request_id":"body-id"}`, "X-Request-Id", "hdr-id"),
			status: 400, code: "MSS.000000003", msg: "Invalid parameter", reqID: "body-id", why: "MSS.000000003", verifies: true},
		{name: "gateway 404, id from header", handler: answer(404, "application/json",
			`{"error_code":"APIGW.0101","error_msg":"The API does not exist"}`, "X-Request-Id", "hdr-id"),
			status: 404, code: "APIGW.0101", msg: "The API does not exist", reqID: "hdr-id", why: "APIGW.0101"},
		{name: "throttled, old spelling", handler: answer(429, "application/json", `{"error_code":"APIG.0308","error_msg":"throttled"}`),
			status: 429, code: "APIG.0308", msg: "throttled", why: "APIG.0308", throttled: true},
		{name: "auth", handler: answer(401, "application/json", `{"error_code":"APIGW.0301","error_msg":"verify aksk signature fail"}`),
			status: 401, code: "APIGW.0301", msg: "verify aksk signature fail", why: "APIGW.0301", auth: true},
		// Huawei's documented answer for an expired or revoked token says nothing of expiry.
		{name: "revoked token", handler: answer(401, "application/json", `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: decrypt token fail"}`),
			status: 401, code: "APIGW.0301", msg: "Incorrect IAM authentication information: decrypt token fail", why: "APIGW.0301", auth: true},
		{name: "401 without a body", handler: answer(401, "text/plain", ``), status: 401, why: "http_401", auth: true},
		{name: "MSS auth failure on 200", handler: answer(200, "application/json", `{"error_code":"MSS.000000004","error_msg":"auth failed"}`),
			status: 200, code: "MSS.000000004", msg: "auth failed", why: "MSS.000000004", auth: true},
		{name: "code/message fallback", handler: answer(403, "application/json", `{"code":"MSS.000000004","message":"auth failed"}`),
			status: 403, code: "MSS.000000004", msg: "auth failed", why: "MSS.000000004", auth: true},
		{name: "HTML 502", handler: answer(502, "text/html", `<html><body>502 Bad Gateway</body></html>`),
			status: 502, why: "http_502"},
		{name: "empty 503", handler: answer(503, "text/plain", ``), status: 503, why: "http_503"},
		{name: "200 with error body", handler: answer(200, "application/json", `{"error_code":"MSS.000000002","error_msg":"internal"}`),
			status: 200, code: "MSS.000000002", msg: "internal", why: "MSS.000000002", verifies: true},
		{name: "MSS 500", handler: answer(500, "application/json", `{"error_code":"MSS.000000002","error_msg":"internal"}`),
			status: 500, code: "MSS.000000002", msg: "internal", why: "MSS.000000002", verifies: true},
		{name: "200 with numeric code", handler: answer(200, "application/json", `{"code":500}`), status: 200, code: "500", why: "500"},
		{name: "200 array", handler: answer(200, "application/json", `[{"task_id":"t1"}]`), status: 200, why: "decode"},
		{name: "200 string", handler: answer(200, "application/json", `"ok"`), status: 200, why: "decode"},
		{name: "200 empty", handler: answer(200, "application/json", ``), status: 200, why: "decode"},
		{name: "200 malformed", handler: answer(200, "application/json", `{"task_id":"t1",`), status: 200, why: "decode"},
		{name: "200 over 1 MiB", handler: answer(200, "application/json", big), status: 200, why: "body_too_large"},
		{name: "redirect not followed", handler: answer(302, "text/plain", "", "Location", "http://127.0.0.1:1/elsewhere"),
			status: 302, why: "http_302"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, rec := newTestClient(t, tc.handler)
			_, err := c.ShowTask(context.Background(), "t1")
			var e *APIError
			if !errors.As(err, &e) {
				t.Fatalf("want *APIError, got %T %v", err, err)
			}
			if e.StatusCode != tc.status || e.Code != tc.code || e.Message != tc.msg || e.RequestID != tc.reqID || e.Reason() != tc.why {
				t.Errorf("got status %d code %q msg %q request id %q reason %q", e.StatusCode, e.Code, e.Message, e.RequestID, e.Reason())
			}
			if e.AuthFailed() != tc.auth || e.Throttled() != tc.throttled || e.Verifies() != tc.verifies || e.CredentialsUnavailable() {
				t.Errorf("AuthFailed %v Throttled %v Verifies %v CredentialsUnavailable %v", e.AuthFailed(), e.Throttled(), e.Verifies(), e.CredentialsUnavailable())
			}
			if len(rec.calls) != 1 || !strings.HasPrefix(rec.calls[0], "ShowTask ") {
				t.Errorf("observed %q", rec.calls)
			}
		})
	}
}

func TestNoRedirectIsFollowed(t *testing.T) {
	hits := 0
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	defer target.Close()
	c, _ := newTestClient(t, answer(307, "text/plain", "", "Location", target.URL+"/v2/p1/ies/task/t1"))
	if _, err := c.ShowTask(context.Background(), "t1"); err == nil {
		t.Fatal("a redirect must fail the call")
	}
	if hits != 0 {
		t.Errorf("the redirect was followed %d times: the signature went elsewhere", hits)
	}
}

func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.ShowTask(ctx, "t1")
	var e *APIError
	if !errors.As(err, &e) || e.Reason() != "timeout" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
	}
	if len(rec.calls) != 1 || rec.calls[0] != "ShowTask error" {
		t.Errorf("observed %q", rec.calls)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := NewClient(Options{Endpoint: url, ProjectID: "p1", Auth: auth.NewSigner(testKeys, time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ShowTask(context.Background(), "t1")
	var e *APIError
	if !errors.As(err, &e) || e.StatusCode != 0 || e.Reason() != "transport" {
		t.Fatalf("want a transport error, got %v", err)
	}
}

func TestSearchTaskQuery(t *testing.T) {
	var got string
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path + "?" + r.URL.RawQuery
		fmt.Fprint(w, `{"offset":0,"limit":"100","count":2,"data":[{"task_id":"a","total_count":"3"},{"task_id":"b"}]}`)
	})
	page, err := c.SearchTask(context.Background(), SearchParams{
		Resources: []string{"qa_pair", "intent"}, BusinessID: "b 1", BeginTime: 1744276967708, Offset: 100, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Sent as signed: keys and each key's values sorted, a space as %20 (never "+").
	want := "/v2/p1/ies/task?begin_time=1744276967708&business_id=b%201&limit=100&offset=100&resource=intent&resource=qa_pair"
	if got != want {
		t.Errorf("request\n%s\nwant\n%s", got, want)
	}
	if n, _ := page.Count.Number(); n != 2 || len(page.Data) != 2 || page.Data[0].TotalCount.Text != "3" {
		t.Errorf("page %+v", page)
	}
}

func TestTransport(t *testing.T) {
	tr := NewTransport(7)
	if tr.MaxIdleConnsPerHost != 7 || tr.MaxIdleConns != 7 {
		t.Errorf("keep-alive pool %d/%d, want 7", tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
	}
	if tr.Proxy == nil || reflect.ValueOf(tr.Proxy).Pointer() != reflect.ValueOf(http.ProxyFromEnvironment).Pointer() {
		t.Error("the transport must keep http.ProxyFromEnvironment")
	}
	if tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS verification is off")
	}
}

func BenchmarkDecodeTask(b *testing.B) {
	body := []byte(`{"resource":"qa_pair","task_name":"导入问答 2026-11","begin_time":1744276967708,"end_time":"1744277967708",
		"task_type":0,"operator":"ops","total_count":"5000","success_count":4990,"failure_count":10,"task_status":2,
		"task_id":"fd1c56acbb2c4b1aa24ba37df99f3129","user_id":"0a1b2c3d"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var t Task
		if err := decodeTask(body, &t); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOnePassReadsCommonAnswers: the answers the API sends, escapes in values included,
// are read in one pass (falling back would cost 4x the CPU) and as encoding/json reads
// them; keys that encoding/json would unescape or fold are left to it.
func TestOnePassReadsCommonAnswers(t *testing.T) {
	for body, onePass := range map[string]bool{
		`{"task_name":"FAQ \"spring\" export #26","begin_time":1795931209229,"end_time":null,"task_status":"1"}`: true,
		`{"task_name":"\u5bfc\u5165 \ud83d\ude00","operator":"a\\b\/c","task_id":"t1","x":{"k\"":["\n"]}}`:       true,
		`{"task_name":"plain","total_count":"42","extra":[1,{"a":null}]}`:                                        true,
		`{"task_n\u0061me":"escaped key"}`:                 false,
		`{"Task_Name":"folded key"}`:                       false,
		`{"task_name":"control ` + "\x01" + ` character"}`: false,
	} {
		var fast, slow Task
		if got := fastTask([]byte(body), &fast); got != onePass {
			t.Errorf("%s: read in one pass %v, want %v", body, got, onePass)
			continue
		}
		if onePass {
			if err := decodeObject([]byte(body), &slow); err != nil || fast != slow {
				t.Errorf("%s: one pass read %+v, encoding/json %+v (%v)", body, fast, slow, err)
			}
		}
	}
}
