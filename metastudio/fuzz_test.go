package metastudio

// Fuzz targets of the API response decoder. `go test` runs the seeds (the f.Add calls and
// testdata/fuzz/<FuzzName>/); `make fuzz` explores from them. See docs/reliability.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

// fuzzBodies are the seeds shared by both targets: what the API documents and sends, the
// two error shapes, and the shapes that trip lenient decoders.
var fuzzBodies = []string{
	`{"task_id":"t1","task_name":"导入 \"问答\"","resource":"qa_pair","begin_time":1744276967708,` +
		`"end_time":"1744276999000","task_type":0,"task_status":"2","operator":null,"total_count":"42",` +
		`"success_count":40,"failure_count":2}`,
	`{"offset":0,"limit":100,"count":2,"data":[{"task_id":"a","begin_time":"1744276967708","total_count":3},` +
		`{"task_id":"b","end_time":1744276999000,"failure_count":"1"}]}`,
	`{"error_code":"MSS.00000003","error_msg":"Task not found","request_id":"0a1b2c"}`,
	`{"code":"APIGW.0301","message":"Incorrect IAM authentication information"}`,
	`{"error_code":"APIG.0308","error_msg":"The request is throttled."}`,
	`{"error_code":"APIGW.0301","error_msg":"The token expired"}`,
	`{"total_count":-1,"success_count":"NaN","failure_count":"Inf","begin_time":1e400,"end_time":"-0"}`,
	`{"total_count":"0x1p4","success_count":" 7 ","failure_count":"1_000","begin_time":0,"end_time":true}`,
	`{"task_id":{"nested":1},"task_name":["a"],"count":[],"data":null}`,
	// What ShowTask's one-pass reader must read as encoding/json does: a later duplicate
	// wins, even null or an object; keys folded to a field; escapes; deep nesting.
	`{"task_id":"a","task_id":null,"end_time":5,"end_time":{"x":[1]},"total_count":"1","total_count":2}`,
	`{"TASK_ID":"upper","Task_Name":"mixed","taſk_type":"long s","\u0074ask_status":"escaped key"}`,
	`{"operator":"a\u00e9\n","user_id":"\ud800","resource":"` + "\x01" + `"}`,
	`{"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"task_id":"deep"}`,
	` {"task_id":"t","failure_count":-0.5e-3} x`,
	`{"data":[{},null,{"task_id":1.5e3}],"count":"many"}`,
	`{"task_name":"\ud800 lone surrogate","operator":"\u0000nul"}`,
	`{"x":{"a\"b":["\\",{"\u00e9":"\/"}]},"task_name":"FAQ \"spring\" #5","task_id":"\t\b\f\r"}`,
	`{"task_name":"\ud83d\ude00 pair \uDBFF\uDFFF","operator":"\x41","user_id":"\u12G4"}`,
	`{"task_name":"cut \`,
	`{"task_name":"cut \u12`,
	"{\"task_name\":\"escaped \\\" and \xff\"}",
	"{\"task_name\":\"\xff\xfe invalid utf-8\"}",
	"\ufeff{\"task_id\":\"bom\"}",
	`  {"task_id":"x"}  `,
	`{"task_id":"dup","task_id":"dup2"}`,
	`{"data":{"task_id":"not a list"}}`,
	`[{"task_id":"array"}]`,
	`null`,
	`"string"`,
	`<html><body>502 Bad Gateway</body></html>`,
	``,
	`{`,
	`{"error_code":"` + strings.Repeat("E", 100) + `","error_msg":"` + strings.Repeat("é", 200) + `"}`,
}

// FuzzDecode feeds one body to everything that reads an answer: the ShowTask and
// SearchTask decoders, the error-body reader and Value on its own. Nothing may panic;
// decoded numbers are finite and non-negative; decoded text is valid UTF-8.
func FuzzDecode(f *testing.F) {
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var task Task
		if err := decodeObject(body, &task); err == nil {
			checkTask(t, &task)
		}
		// ShowTask's one-pass reader agrees with encoding/json on every body: the same
		// fields, or an error when encoding/json refuses it.
		var fast Task
		if errFast, errJSON := decodeTask(body, &fast), decodeObject(body, &Task{}); (errFast == nil) != (errJSON == nil) {
			t.Fatalf("decodeTask error %v, encoding/json error %v", errFast, errJSON)
		} else if errJSON == nil && fast != task {
			t.Fatalf("decodeTask read %+v\nencoding/json read %+v", fast, task)
		}
		var page TaskPage
		if err := decodeObject(body, &page); err == nil {
			for _, v := range []Value{page.Offset, page.Limit, page.Count} {
				checkValue(t, "page", v, true)
			}
			for i := range page.Data {
				checkTask(t, &page.Data[i])
			}
		}

		code, msg, reqID, ok := errorFields(body)
		if ok != (code != "") {
			t.Fatalf("errorFields: ok=%v with code %q", ok, code)
		}
		for _, s := range []struct {
			name, text string
			max        int
		}{{"code", code, 64}, {"message", msg, 256}, {"request id", reqID, 128}} {
			if !utf8.ValidString(s.text) {
				t.Errorf("errorFields: %s %q is not valid UTF-8", s.name, s.text)
			}
			if len(s.text) > s.max+len("…") {
				t.Errorf("errorFields: %s is %d bytes, want at most %d", s.name, len(s.text), s.max+len("…"))
			}
		}
		for _, status := range []int{0, 200, 401, 429, 500} {
			e := &APIError{Operation: OpShowTask, StatusCode: status}
			e.fillFromBody(body)
			checkAPIError(t, e)
		}

		// Value.UnmarshalJSON is only ever handed valid JSON by encoding/json, but it
		// must not panic on anything, and Number must hold whatever Text it kept.
		var v Value
		if err := v.UnmarshalJSON(body); err != nil {
			t.Errorf("Value.UnmarshalJSON returned %v; it never fails", err)
		}
		checkValue(t, "raw", v, false)
	})
}

// checkTask checks every field of a decoded task, and the predicates built on them.
func checkTask(t *testing.T, task *Task) {
	t.Helper()
	rv := reflect.ValueOf(task).Elem()
	for i := 0; i < rv.NumField(); i++ {
		checkValue(t, rv.Type().Field(i).Name, rv.Field(i).Interface().(Value), true)
	}
	if task.Finished() && task.InProgress() {
		t.Errorf("task is both finished and in progress: %+v", task)
	}
}

// checkValue checks Number and Seconds; decoded says the Value came through encoding/json,
// so its Text must be valid UTF-8.
func checkValue(t *testing.T, field string, v Value, decoded bool) {
	t.Helper()
	if !v.Set && v.Text != "" {
		t.Errorf("%s: unset value keeps text %q", field, v.Text)
	}
	if decoded && !utf8.ValidString(v.Text) {
		t.Errorf("%s: text %q is not valid UTF-8 after JSON decoding", field, v.Text)
	}
	n, ok := v.Number()
	switch {
	case ok && (math.IsNaN(n) || math.IsInf(n, 0) || n < 0):
		t.Errorf("%s: Number() of %q = %v, ok", field, v.Text, n)
	case !ok && n != 0:
		t.Errorf("%s: Number() of %q = %v, not ok but not 0", field, v.Text, n)
	case ok && !v.Set:
		t.Errorf("%s: Number() ok on an unset value", field)
	}
	s, ok := v.Seconds()
	switch {
	case ok && (math.IsNaN(s) || math.IsInf(s, 0) || s <= 0):
		t.Errorf("%s: Seconds() of %q = %v, ok", field, v.Text, s)
	case !ok && s != 0:
		t.Errorf("%s: Seconds() of %q = %v, not ok but not 0", field, v.Text, s)
	}
}

// checkAPIError calls every method of e; Reason must be a non-empty word.
func checkAPIError(t *testing.T, e *APIError) {
	t.Helper()
	msg := e.Error()
	if !strings.HasPrefix(msg, e.Operation) {
		t.Errorf("Error() %q does not start with the operation %q", msg, e.Operation)
	}
	if !utf8.ValidString(msg) {
		t.Errorf("Error() %q is not valid UTF-8", msg)
	}
	if e.Reason() == "" {
		t.Errorf("Reason() is empty for %#v", e)
	}
	_, _, _, _, _ = e.AuthFailed(), e.TokenRejected(), e.Verifies(), e.CredentialsUnavailable(), e.Throttled()
	if q, ok := e.Quota(); ok && !e.Throttled() {
		t.Errorf("a quota %+v from an answer that is not throttled", q)
	}
	_ = e.Unwrap()
}

// fuzzAnswer is what the one test server of a FuzzClient run sends next, and what it saw.
type fuzzAnswer struct {
	mu       sync.Mutex
	status   int
	body     []byte
	verified error // the signature check of the last request
	path     string
}

func (a *fuzzAnswer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	status, body := a.status, a.body
	a.path = r.URL.Path
	authz, err := auth.ParseAuthorization(r.Header.Get("Authorization"))
	if err == nil {
		err = auth.Verify(r, nil, authz, fuzzKeys.SecretKey)
	}
	a.verified = err
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body) // refused after a 204 or 304: the client then sees no body
}

var fuzzKeys = auth.Keys{AccessKey: "FUZZAK", SecretKey: "fuzz-secret-key"}

// FuzzClient sends ShowTask or SearchTask through the real client, signer and HTTP stack
// to one local server that answers the fuzzed status and body. The outcome must be a task
// that satisfies the decoder's invariants, or an *APIError whose methods work; a 2xx
// answer must give exactly what the decoder gives; the signature always verifies.
func FuzzClient(f *testing.F) {
	for i, b := range fuzzBodies {
		f.Add(200, []byte(b), "t1", i%2 == 1)
	}
	for _, status := range []int{103, 201, 204, 301, 304, 400, 401, 404, 429, 500, 502, 503, 999} {
		f.Add(status, []byte(fuzzBodies[2]), "task-1", false)
	}
	f.Add(200, []byte(fuzzBodies[0]), "a/b?c=d&e#f %zz ü", false)
	f.Add(200, []byte(fuzzBodies[1]), "qa_pair,intent", true)
	f.Add(-1, []byte{}, "", true)

	answer := &fuzzAnswer{}
	srv := httptest.NewServer(answer)
	f.Cleanup(srv.Close)
	c, err := NewClient(Options{
		Endpoint: srv.URL, ProjectID: "fuzz-project", MaxConns: 1,
		Auth: auth.NewSigner(fuzzKeys, time.Now),
	})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, status int, body []byte, id string, search bool) {
		// Any status the server can send: 100-999, except 101 which switches protocols.
		status = 100 + int(uint(status)%900)
		if status == http.StatusSwitchingProtocols {
			status = http.StatusOK
		}
		final := status
		if final < 200 {
			final = http.StatusOK // a 1xx is informational: the handler's Write sends a 200
		}
		answer.mu.Lock()
		answer.status, answer.body, answer.verified = status, body, errors.New("no request arrived")
		answer.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var tasks []Task
		var err error
		if search {
			var page *TaskPage
			page, err = c.SearchTask(ctx, SearchParams{Resources: []string{id, "qa_pair"}, BusinessID: id, BeginTime: 1, Limit: 100})
			if (page == nil) == (err == nil) {
				t.Fatalf("SearchTask returned page %v and error %v", page, err)
			}
			if page != nil {
				tasks = page.Data
				for _, v := range []Value{page.Offset, page.Limit, page.Count} {
					checkValue(t, "page", v, true)
				}
			}
		} else {
			var task *Task
			task, err = c.ShowTask(ctx, id)
			if (task == nil) == (err == nil) {
				t.Fatalf("ShowTask returned task %v and error %v", task, err)
			}
			if task != nil {
				tasks = []Task{*task}
			}
		}
		for i := range tasks {
			checkTask(t, &tasks[i])
		}

		answer.mu.Lock()
		verified, path := answer.verified, answer.path
		answer.mu.Unlock()
		if verified != nil {
			t.Errorf("the server could not verify the signature of %s: %v", path, verified)
		}
		if !search && fuzzPlainID(id) && path != "/v2/fuzz-project/ies/task/"+id {
			t.Errorf("ShowTask(%q) reached the server as %q", id, path)
		}

		if err == nil {
			if final < 200 || final > 299 {
				t.Fatalf("HTTP %d gave no error", final)
			}
			checkAgainstJSON(t, body, search, tasks)
			return
		}
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("error %v (%T) is not an *APIError", err, err)
		}
		checkAPIError(t, apiErr)
		if apiErr.StatusCode != final {
			t.Errorf("APIError.StatusCode = %d, the server sent %d", apiErr.StatusCode, final)
		}
		if final >= 200 && final <= 299 && apiErr.Code == "" && apiErr.Reason() != "decode" {
			t.Errorf("a %d without an error code failed with reason %q (%v)", final, apiErr.Reason(), err)
		}
		if code, _, _, ok := errorFields(body); ok && final != http.StatusNoContent && final != http.StatusNotModified && apiErr.Code != code {
			t.Errorf("APIError.Code = %q, the body says %q", apiErr.Code, code)
		}
	})
}

// fuzzPlainID reports whether id is made of the characters of a task id (A-Z a-z 0-9 - _),
// the only ids the exporter asks for: they must reach the server unchanged.
func fuzzPlainID(id string) bool {
	for _, c := range []byte(id) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkAgainstJSON holds what the client decoded from a 2xx body against encoding/json's
// generic reading of it, written here independently of the client's decoder: the body is
// a JSON object, there are as many tasks as it (or its data list) holds, and each task's
// task_id and total_count keep the text of a JSON string or number.
func checkAgainstJSON(t *testing.T, body []byte, search bool, tasks []Task) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		t.Fatalf("the client accepted a body that is not a JSON object: %q", body)
	}
	objects := []map[string]json.RawMessage{top}
	if search {
		objects = nil
		if raw, ok := top["data"]; ok {
			var list []json.RawMessage
			if json.Unmarshal(raw, &list) == nil {
				for _, item := range list {
					var o map[string]json.RawMessage
					if json.Unmarshal(item, &o) != nil {
						return // not a list of objects: the lenient decoder's business
					}
					objects = append(objects, o)
				}
			}
		}
	}
	if len(objects) != len(tasks) {
		t.Fatalf("the body holds %d tasks, the client decoded %d", len(objects), len(tasks))
	}
	for i, o := range objects {
		for field, got := range map[string]string{"task_id": tasks[i].TaskID.Text, "total_count": tasks[i].TotalCount.Text} {
			var str string
			var num json.Number
			dec := json.NewDecoder(bytes.NewReader(o[field]))
			dec.UseNumber()
			switch {
			case json.Unmarshal(o[field], &str) == nil:
				if got != str {
					t.Errorf("task %d %s: client %q, JSON string %q", i, field, got, str)
				}
			case dec.Decode(&num) == nil && num != "":
				if got != num.String() {
					t.Errorf("task %d %s: client %q, JSON number %s", i, field, got, num)
				}
			}
		}
	}
}
