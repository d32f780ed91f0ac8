package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

const (
	testDomain   = "acme-domain"
	testUser     = "exporter-bot"
	testPassword = "Pa55w0rd-that-must-never-leak"
)

var testUserOpt = []IAMUser{{Domain: testDomain, User: testUser, Password: testPassword}}

// tokenBody is a password-token request; scope is the JSON of auth.scope.project.
func tokenBody(domain, user, password, scope string) string {
	u, _ := json.Marshal(map[string]any{"name": user, "password": password, "domain": map[string]string{"name": domain}})
	return `{"auth":{"identity":{"methods":["password"],"password":{"user":` + string(u) +
		`}},"scope":{"project":` + scope + `}}}`
}

func postToken(s *Server, query, body string) answer {
	r := httptest.NewRequest(http.MethodPost, "http://iam.example.com/v3/auth/tokens"+query, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json;charset=utf8")
	return serve(s, r)
}

// issueToken gets a password token scoped to testProject, or fails the test.
func issueToken(t *testing.T, s *Server) string {
	t.Helper()
	a := postToken(s, "?nocatalog=true", tokenBody(testDomain, testUser, testPassword, `{"id":"`+testProject+`"}`))
	if a.status != http.StatusCreated {
		t.Fatalf("password token: %d %s", a.status, a.body)
	}
	return a.header.Get("X-Subject-Token")
}

func withToken(path, token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://metastudio.example.com"+path, nil)
	r.Header.Set(auth.HeaderAuthToken, token)
	return r
}

// iamError checks an IAM error answer and returns its body.
func (a answer) iamError(t *testing.T, status int, code string) string {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d; body %s", a.status, status, a.body)
	}
	var body struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Title   string `json:"title"`
		} `json:"error"`
		ErrorCode string `json:"error_code"`
		ErrorMsg  string `json:"error_msg"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("IAM error body: %v: %s", err, a.body)
	}
	if body.Error.Code != status || body.Error.Title != http.StatusText(status) || body.ErrorCode != code ||
		body.ErrorMsg == "" || body.Error.Message != body.ErrorMsg {
		t.Errorf("IAM error body %s, want code %d, title %q, error_code %s", a.body, status, http.StatusText(status), code)
	}
	if a.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	return string(a.body)
}

func TestIAMPasswordToken(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, IAMUsers: testUserOpt})
	id := s.TaskIDs()[0]

	for _, c := range []struct {
		name, query, scope string
		catalog            bool
	}{
		{"by id", "?nocatalog=true", `{"id":"` + testProject + `"}`, false},
		{"by region", "", `{"name":"cn-north-4"}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := postToken(s, c.query, tokenBody(testDomain, testUser, testPassword, c.scope))
			if a.status != http.StatusCreated {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if tok := a.header.Get("X-Subject-Token"); len(tok) < 64 {
				t.Errorf("X-Subject-Token %q is shorter than 64 characters", tok)
			}
			if a.header.Get("X-Request-Id") == "" || a.header.Get("Date") == "" {
				t.Errorf("missing X-Request-Id or Date: %v", a.header)
			}
			var body struct {
				Token struct {
					ExpiresAt string   `json:"expires_at"`
					IssuedAt  string   `json:"issued_at"`
					Methods   []string `json:"methods"`
					Project   struct {
						ID     string `json:"id"`
						Name   string `json:"name"`
						Domain struct{ Name string }
					} `json:"project"`
					User struct {
						Name   string `json:"name"`
						Domain struct{ Name string }
					} `json:"user"`
					Catalog []any `json:"catalog"`
				} `json:"token"`
			}
			if err := json.Unmarshal(a.body, &body); err != nil {
				t.Fatalf("%v: %s", err, a.body)
			}
			tk := body.Token
			exp, err := time.Parse("2006-01-02T15:04:05.000000Z", tk.ExpiresAt)
			if err != nil || !exp.Equal(testStart.Add(24*time.Hour)) {
				t.Errorf("expires_at %q (%v), want %v", tk.ExpiresAt, err, testStart.Add(24*time.Hour))
			}
			if iss, err := time.Parse(time.RFC3339Nano, tk.IssuedAt); err != nil || !iss.Equal(testStart) {
				t.Errorf("issued_at %q (%v)", tk.IssuedAt, err)
			}
			if tk.Project.ID != testProject || tk.Project.Name != "cn-north-4" || tk.Project.Domain.Name != testDomain {
				t.Errorf("project %+v", tk.Project)
			}
			if tk.User.Name != testUser || tk.User.Domain.Name != testDomain || fmt.Sprint(tk.Methods) != "[password]" {
				t.Errorf("user %+v, methods %v", tk.User, tk.Methods)
			}
			if (len(tk.Catalog) > 0) != c.catalog {
				t.Errorf("catalog %v, want one: %v", tk.Catalog, c.catalog)
			}
			if strings.Contains(string(a.body), testPassword) {
				t.Error("the answer shows the password")
			}
		})
	}
	if got := s.IssuedTokens(); got != 2 {
		t.Errorf("IssuedTokens = %d, want 2", got)
	}

	// The token works on ShowTask until TokenTTL has passed, by Now.
	tok := issueToken(t, s)
	if a := serve(s, withToken(showPath(id), tok)); a.status != 200 {
		t.Fatalf("ShowTask with the issued token: %d %s", a.status, a.body)
	}
	clock.Advance(24*time.Hour - time.Second)
	if a := serve(s, withToken(showPath(id), tok)); a.status != 200 {
		t.Fatalf("a second before expiry: %d %s", a.status, a.body)
	}
	clock.Advance(time.Second)
	// Huawei's gateway answers an expired token as any token it cannot use.
	serve(s, withToken(showPath(id), tok)).wantError(t, 401, "APIGW.0301",
		"Incorrect IAM authentication information: decrypt token fail")
	serve(s, withToken(showPath(id), tok+"x")).wantError(t, 401, "APIGW.0301", "decrypt token fail")
	if got := s.Requests(OpIAMToken); got != 3 {
		t.Errorf("Requests(IAMToken) = %d, want 3", got)
	}
}

func TestIAMTokenTTLAndExpireTokens(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, IAMUsers: testUserOpt, TokenTTL: time.Hour, Tokens: []string{"static"}})
	id := s.TaskIDs()[0]
	a := postToken(s, "", tokenBody(testDomain, testUser, testPassword, `{"name":"cn-north-4"}`))
	var body struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
		}
	}
	_ = json.Unmarshal(a.body, &body)
	if want := testStart.Add(time.Hour).Format("2006-01-02T15:04:05.000000Z"); body.Token.ExpiresAt != want {
		t.Errorf("TokenTTL 1h: expires_at %q, want %q", body.Token.ExpiresAt, want)
	}
	t1, t2 := a.header.Get("X-Subject-Token"), issueToken(t, s)
	if t1 == t2 {
		t.Fatal("two tokens are the same")
	}
	clock.Advance(time.Minute)
	for _, tok := range []string{t1, t2, "static"} {
		if a := serve(s, withToken(showPath(id), tok)); a.status != 200 {
			t.Fatalf("before ExpireTokens: %d %s", a.status, a.body)
		}
	}
	s.ExpireTokens()
	for _, tok := range []string{t1, t2} {
		serve(s, withToken(showPath(id), tok)).wantError(t, 401, "APIGW.0301", "Incorrect IAM authentication information: decrypt token fail")
	}
	if a := serve(s, withToken(showPath(id), "static")); a.status != 200 {
		t.Errorf("ExpireTokens expired Options.Tokens: %d %s", a.status, a.body)
	}
	t3 := issueToken(t, s)
	if a := serve(s, withToken(showPath(id), t3)); a.status != 200 {
		t.Errorf("a token issued after ExpireTokens: %d %s", a.status, a.body)
	}
	if got := s.IssuedTokens(); got != 3 {
		t.Errorf("IssuedTokens = %d, want 3", got)
	}
}

func TestRevokeTokens(t *testing.T) {
	s, _ := newSim(t, Options{Tasks: 1, IAMUsers: testUserOpt, Tokens: []string{"static"}})
	id := s.TaskIDs()[0]
	t1 := issueToken(t, s)
	if a := serve(s, withToken(showPath(id), t1)); a.status != 200 {
		t.Fatalf("before RevokeTokens: %d %s", a.status, a.body)
	}
	s.RevokeTokens() // no time passes: the token is refused although it has not expired
	serve(s, withToken(showPath(id), t1)).wantError(t, 401, "APIGW.0301", "Incorrect IAM authentication information: decrypt token fail")
	for _, tok := range []string{"static", issueToken(t, s)} {
		if a := serve(s, withToken(showPath(id), tok)); a.status != 200 {
			t.Errorf("a static token or one issued after RevokeTokens: %d %s", a.status, a.body)
		}
	}
}

func TestIAMTokenErrors(t *testing.T) {
	s, _ := newSim(t, Options{
		Tasks:    1,
		IAMUsers: testUserOpt,
		Projects: map[string][]string{"cn-north-4": {testProject}, "cn-east-3": {}},
	})
	scope := `{"id":"` + testProject + `"}`
	for _, c := range []struct{ name, body string }{
		{"wrong password", tokenBody(testDomain, testUser, testPassword+"x", scope)},
		{"wrong user", tokenBody(testDomain, "someone", testPassword, scope)},
		{"wrong domain", tokenBody("other-domain", testUser, testPassword, scope)},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := postToken(s, "", c.body).iamError(t, 401, "IAM.0004")
			if !strings.Contains(body, "The username or password is wrong.") {
				t.Errorf("body %s", body)
			}
			if strings.Contains(body, testPassword) || strings.Contains(body, "Pa55w0rd") {
				t.Errorf("the body echoes the password: %s", body)
			}
		})
	}
	for _, c := range []struct{ name, body string }{
		{"not JSON", `{"auth":`},
		{"JSON array", `[]`},
		{"empty", ``},
		{"no identity", `{"auth":{"scope":{"project":` + scope + `}}}`},
		{"token method", strings.Replace(tokenBody(testDomain, testUser, testPassword, scope), `"password"]`, `"token"]`, 1)},
		{"no domain", strings.Replace(tokenBody(testDomain, testUser, testPassword, scope), `"name":"`+testDomain+`"`, `"id":"x"`, 1)},
		{"no scope", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"` + testUser +
			`","password":"` + testPassword + `","domain":{"name":"` + testDomain + `"}}}}}}`},
		{"unknown project id", tokenBody(testDomain, testUser, testPassword, `{"id":"ffffffffffffffffffffffffffffffff"}`)},
		{"unknown region", tokenBody(testDomain, testUser, testPassword, `{"name":"xx-nowhere-1"}`)},
		{"region without projects", tokenBody(testDomain, testUser, testPassword, `{"name":"cn-east-3"}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := postToken(s, "", c.body).iamError(t, 400, "IAM.0007")
			if strings.Contains(body, testPassword) {
				t.Errorf("the body echoes the password: %s", body)
			}
		})
	}
	if got := s.IssuedTokens(); got != 0 {
		t.Errorf("IssuedTokens = %d after failures only", got)
	}
	// Only POST is the IAM token API; other methods go through the gateway.
	serve(s, httptest.NewRequest(http.MethodGet, "http://iam.example.com/v3/auth/tokens", nil)).
		wantError(t, 401, "APIGW.0301", "")
	if got, other := s.Requests(OpIAMToken), s.Requests(OpOther); got != 13 || other != 1 {
		t.Errorf("Requests(IAMToken) = %d, want 13; Requests(Other) = %d, want 1", got, other)
	}
	// No IAM user at all: every password is wrong.
	s2, _ := newSim(t, Options{})
	postToken(s2, "", tokenBody(testDomain, testUser, testPassword, scope)).iamError(t, 401, "IAM.0004")
}

// projectsOf lists the project ids of a /v3/projects answer.
func projectsOf(t *testing.T, a answer) []string {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("/v3/projects: %d %s", a.status, a.body)
	}
	var raw struct {
		Projects []map[string]any `json:"projects"`
		Links    map[string]any   `json:"links"`
	}
	if err := json.Unmarshal(a.body, &raw); err != nil || raw.Projects == nil || raw.Links == nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	var ids []string
	for _, p := range raw.Projects {
		if p["enabled"] != true || p["domain_id"] == "" || p["name"] == "" {
			t.Errorf("project %v", p)
		}
		ids = append(ids, fmt.Sprint(p["name"], "=", p["id"]))
	}
	return ids
}

func TestIAMProjects(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Tokens: []string{"tok"}, Projects: map[string][]string{
		"cn-north-4":     {"p1"},
		"cn-east-3":      {"p2", "p3"},
		"ap-southeast-3": {},
	}})
	list := func(query string) []string {
		return projectsOf(t, serve(s, signed(clock, "/v3/projects"+query)))
	}
	for query, want := range map[string]string{
		"?name=cn-north-4":     "[cn-north-4=p1]",
		"?name=cn-east-3":      "[cn-east-3=p2 cn-east-3=p3]",
		"?name=ap-southeast-3": "[]",
		"?name=xx-nowhere-1":   "[]",
		"":                     "[cn-east-3=p2 cn-east-3=p3 cn-north-4=p1]",
	} {
		if got := fmt.Sprint(list(query)); got != want {
			t.Errorf("/v3/projects%s: %s, want %s", query, got, want)
		}
	}
	if raw := serve(s, signed(clock, "/v3/projects?name=ap-southeast-3")).body; !strings.Contains(string(raw), `"projects":[]`) {
		t.Errorf("no projects is not \"projects\":[]: %s", raw)
	}
	if got := s.Requests(OpIAMProjects); got != 6 {
		t.Errorf("Requests(IAMProjects) = %d, want 6", got)
	}

	unsigned := httptest.NewRequest(http.MethodGet, "http://iam.example.com/v3/projects?name=cn-north-4", nil)
	serve(s, unsigned).wantError(t, 401, "APIGW.0301", "Incorrect IAM authentication information")
	serve(s, withToken("/v3/projects?name=cn-north-4", "tok")).wantError(t, 401, "APIGW.0301", "")
	tampered := signed(clock, "/v3/projects?name=cn-north-4")
	tampered.URL.RawQuery = "name=cn-east-3"
	serve(s, tampered).wantError(t, 401, "APIGW.0301", "verify aksk signature fail")
	serve(s, signedAt("/v3/projects?name=cn-north-4", auth.Keys{AccessKey: testAK, SecretKey: testSK},
		clock.Now().Add(-16*time.Minute))).wantError(t, 401, "APIGW.0301", "15 minutes")
	serve(s, signedAt("/v3/projects", auth.Keys{AccessKey: "NOSUCHAK", SecretKey: testSK}, clock.Now())).
		wantError(t, 401, "APIGW.0301", "ak not exist")

	// Signature failures on /v3/projects count toward the same AK lock as MetaStudio's.
	for range 4 {
		serve(s, signedAt("/v3/projects", auth.Keys{AccessKey: testAK, SecretKey: "wrong"}, clock.Now())).
			wantError(t, 401, "APIGW.0301", "verify aksk signature fail")
	}
	serve(s, signed(clock, showPath(s.TaskIDs()[0]))).
		wantError(t, 401, "APIGW.0301", "AK access failed to reach the limit,forbidden.")
	serve(s, signed(clock, "/v3/projects")).wantError(t, 401, "APIGW.0301", "AK access failed to reach the limit")

	// Only GET is the projects API.
	post := httptest.NewRequest(http.MethodPost, "http://iam.example.com/v3/projects", nil)
	post.Header.Set(auth.HeaderAuthToken, "tok")
	serve(s, post).wantError(t, 404, "APIGW.0101", "")
}

func TestIAMDefaultProjects(t *testing.T) {
	s, clock := newSim(t, Options{IAMUsers: testUserOpt})
	if got := fmt.Sprint(projectsOf(t, serve(s, signed(clock, "/v3/projects?name=cn-north-4")))); got != "[cn-north-4="+testProject+"]" {
		t.Errorf("default projects: %s", got)
	}
	s, clock = newSim(t, Options{IAMUsers: testUserOpt, Region: "ap-southeast-3"})
	if got := fmt.Sprint(projectsOf(t, serve(s, signed(clock, "/v3/projects")))); got != "[ap-southeast-3="+testProject+"]" {
		t.Errorf("Region ap-southeast-3: %s", got)
	}
	a := postToken(s, "", tokenBody(testDomain, testUser, testPassword, `{"name":"ap-southeast-3"}`))
	if a.status != 201 || !strings.Contains(string(a.body), `"id":"`+testProject+`","name":"ap-southeast-3"`) {
		t.Errorf("token by region ap-southeast-3: %d %s", a.status, a.body)
	}
}

func TestSetSkew(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1})
	path := showPath(s.TaskIDs()[0])
	keys := auth.Keys{AccessKey: testAK, SecretKey: testSK}
	for _, skew := range []time.Duration{20 * time.Minute, -20 * time.Minute} {
		s.SetSkew(skew)
		if s.Skew() != skew {
			t.Errorf("Skew() = %v, want %v", s.Skew(), skew)
		}
		a := serve(s, signedAt(path, keys, clock.Now().Add(skew)))
		if a.status != 200 {
			t.Fatalf("skew %v, signed at the server's time: %d %s", skew, a.status, a.body)
		}
		if got, want := a.header.Get("Date"), testStart.Add(skew).Format(http.TimeFormat); got != want {
			t.Errorf("skew %v: Date %q, want %q", skew, got, want)
		}
		// Signed by the (correct) local clock: 20 minutes off the server's.
		serve(s, signedAt(path, keys, clock.Now())).wantError(t, 401, "APIGW.0301", "15 minutes")
		if a := serve(s, signedAt(path, keys, clock.Now().Add(skew/2))); a.status != 200 { // 10 minutes off
			t.Errorf("skew %v, 10 minutes off: %d", skew, a.status)
		}
		// Metadata and IAM answers carry the skewed Date too.
		if got := postToken(s, "", "{}").header.Get("Date"); got != testStart.Add(skew).Format(http.TimeFormat) {
			t.Errorf("IAM Date %q", got)
		}
	}
	s.SetSkew(0)
	if a := serve(s, signed(clock, path)); a.status != 200 || a.header.Get("Date") != testStart.Format(http.TimeFormat) {
		t.Errorf("skew 0: %d %q", a.status, a.header.Get("Date"))
	}
}

// TestIAMOverHTTP gets tokens and lists projects concurrently through a real connection
// (run with -race).
func TestIAMOverHTTP(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 2, IAMUsers: testUserOpt, Metadata: &MetadataOptions{SessionTokens: true}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	client := srv.Client()
	do := func(req *http.Request) (*http.Response, string) {
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return nil, ""
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				switch (w + i) % 3 {
				case 0:
					req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v3/auth/tokens?nocatalog=true",
						strings.NewReader(tokenBody(testDomain, testUser, testPassword, `{"name":"cn-north-4"}`)))
					resp, body := do(req)
					if resp == nil || resp.StatusCode != 201 {
						t.Errorf("token: %v %s", resp, body)
						return
					}
					req, _ = http.NewRequest(http.MethodGet, srv.URL+showPath(s.TaskIDs()[i%2]), nil)
					req.Header.Set(auth.HeaderAuthToken, resp.Header.Get("X-Subject-Token"))
					if resp, body := do(req); resp == nil || resp.StatusCode != 200 {
						t.Errorf("ShowTask with a token: %v %s", resp, body)
					}
				case 1:
					req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v3/projects?name=cn-north-4", nil)
					auth.Sign(req, nil, auth.Keys{AccessKey: testAK, SecretKey: testSK}, clock.Now())
					if resp, body := do(req); resp == nil || resp.StatusCode != 200 {
						t.Errorf("projects: %v %s", resp, body)
					}
				case 2:
					keys := fetchCredential(t, s, srv.URL, client)
					req, _ := http.NewRequest(http.MethodGet, srv.URL+showPath(s.TaskIDs()[i%2]), nil)
					req.Header.Set(auth.HeaderProjectID, testProject)
					auth.Sign(req, nil, keys, clock.Now())
					if resp, body := do(req); resp == nil || resp.StatusCode != 200 {
						t.Errorf("ShowTask with temporary keys: %v %s", resp, body)
					}
				}
				clock.Advance(time.Second)
			}
		}()
	}
	wg.Wait()
	if s.IssuedTokens() != 20 || s.IssuedCredentials() != 20 {
		t.Errorf("IssuedTokens %d, IssuedCredentials %d, want 20 each", s.IssuedTokens(), s.IssuedCredentials())
	}
}
