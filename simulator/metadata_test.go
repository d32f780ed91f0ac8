package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

const metaBase = "http://169.254.169.254"

// metaPut asks for a session token; ttl "" sends no TTL header.
func metaPut(s *Server, ttl string) answer {
	r := httptest.NewRequest(http.MethodPut, metaBase+"/meta-data/latest/api/token", nil)
	if ttl != "" {
		r.Header.Set("X-Metadata-Token-Ttl-Seconds", ttl)
	}
	return serve(s, r)
}

// metaGet asks for credentials; token "" sends no X-Metadata-Token.
func metaGet(s *Server, token string) answer {
	r := httptest.NewRequest(http.MethodGet, metaBase+"/openstack/latest/securitykey", nil)
	if token != "" {
		r.Header.Set("X-Metadata-Token", token)
	}
	return serve(s, r)
}

type credential struct {
	Access        string `json:"access"`
	Secret        string `json:"secret"`
	SecurityToken string `json:"securitytoken"`
	ExpiresAt     string `json:"expires_at"`
}

func (c credential) keys() auth.Keys {
	return auth.Keys{AccessKey: c.Access, SecretKey: c.Secret, SecurityToken: c.SecurityToken}
}

// credentialOf decodes a successful securitykey answer.
func credentialOf(t *testing.T, a answer) credential {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("securitykey: %d %s", a.status, a.body)
	}
	var body struct{ Credential credential }
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	c := body.Credential
	if !regexp.MustCompile(`^[A-Z0-9]{20}$`).MatchString(c.Access) || len(c.Secret) < 30 || len(c.SecurityToken) < 200 {
		t.Errorf("credential %+v", c)
	}
	return c
}

// fetchCredential gets a session token and credentials through a real connection.
func fetchCredential(t *testing.T, s *Server, base string, client *http.Client) auth.Keys {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/meta-data/latest/api/token", nil)
	req.Header.Set("X-Metadata-Token-Ttl-Seconds", "21600")
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return auth.Keys{}
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, base+"/openstack/latest/securitykey", nil)
	req.Header.Set("X-Metadata-Token", string(tok))
	resp, err = client.Do(req)
	if err != nil {
		t.Error(err)
		return auth.Keys{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return credentialOf(t, answer{status: resp.StatusCode, header: resp.Header, body: b}).keys()
}

// signedWith builds a signed ShowTask-style GET with the given keys at the clock's time.
func signedWith(c *testkit.Clock, path string, keys auth.Keys) *http.Request {
	return signedAt(path, keys, c.Now())
}

func TestMetadataHappyPath(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Metadata: &MetadataOptions{SessionTokens: true}})
	id := s.TaskIDs()[0]

	put := metaPut(s, "21600")
	session := string(put.body)
	if put.status != 200 || !strings.HasPrefix(put.header.Get("Content-Type"), "text/plain") || len(session) < 32 {
		t.Fatalf("PUT token: %d %q %q", put.status, put.header.Get("Content-Type"), session)
	}
	if put.header.Get("X-Request-Id") == "" || put.header.Get("Date") == "" {
		t.Errorf("missing X-Request-Id or Date: %v", put.header)
	}
	a := metaGet(s, session)
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	c := credentialOf(t, a)
	exp, err := time.Parse("2006-01-02T15:04:05.000000Z", c.ExpiresAt)
	if err != nil || !exp.Equal(testStart.Add(2*time.Hour)) {
		t.Errorf("expires_at %q (%v), want the default 2h from now", c.ExpiresAt, err)
	}
	c2 := credentialOf(t, metaGet(s, session))
	if c2.Access == c.Access || c2.Secret == c.Secret || c2.SecurityToken == c.SecurityToken {
		t.Error("a second call did not issue fresh credentials")
	}

	// The temporary keys sign ShowTask and /v3/projects, with the security token signed.
	if a := serve(s, signedWith(clock, showPath(id), c.keys())); a.status != 200 {
		t.Fatalf("ShowTask with temporary keys: %d %s", a.status, a.body)
	}
	if got := projectsOf(t, serve(s, signedWith(clock, "/v3/projects?name=cn-north-4", c2.keys()))); len(got) != 1 {
		t.Errorf("/v3/projects with temporary keys: %v", got)
	}
	noToken := c.keys()
	noToken.SecurityToken = ""
	serve(s, signedWith(clock, showPath(id), noToken)).wantError(t, 401, "APIGW.0301", "X-Security-Token")
	unsigned := signedWith(clock, showPath(id), noToken)
	unsigned.Header.Set(auth.HeaderSecurityToken, c.SecurityToken)
	serve(s, unsigned).wantError(t, 401, "APIGW.0301", "x-security-token is not signed")
	swapped := c.keys()
	swapped.SecurityToken = c2.SecurityToken
	serve(s, signedWith(clock, showPath(id), swapped)).wantError(t, 401, "APIGW.0301", "X-Security-Token")

	// They expire at expires_at, by Now.
	clock.Advance(2*time.Hour - time.Second)
	if a := serve(s, signedWith(clock, showPath(id), c.keys())); a.status != 200 {
		t.Fatalf("a second before expiry: %d %s", a.status, a.body)
	}
	clock.Advance(time.Second)
	// IAM no longer knows an expired temporary AK.
	serve(s, signedWith(clock, showPath(id), c.keys())).wantError(t, 401, "APIGW.0301",
		"Incorrect IAM authentication information: Get secretKey failed,ak:"+c.Access+",err:ak not exist")
	serve(s, signedWith(clock, "/v3/projects", c2.keys())).wantError(t, 401, "APIGW.0301", "err:ak not exist")

	// The session token still has hours left: new credentials work.
	c3 := credentialOf(t, metaGet(s, session))
	if a := serve(s, signedWith(clock, showPath(id), c3.keys())); a.status != 200 {
		t.Errorf("fresh credentials: %d %s", a.status, a.body)
	}
	s.ExpireCredentials()
	serve(s, signedWith(clock, showPath(id), c3.keys())).wantError(t, 401, "APIGW.0301", "err:ak not exist")

	if got := s.IssuedCredentials(); got != 3 {
		t.Errorf("IssuedCredentials = %d, want 3", got)
	}
	if m, k := s.Requests(OpMetadataToken), s.Requests(OpMetadataSecurityKey); m != 1 || k != 3 {
		t.Errorf("Requests(MetadataToken) = %d, want 1; Requests(MetadataSecurityKey) = %d, want 3", m, k)
	}
}

func TestMetadataSessionTokens(t *testing.T) {
	s, clock := newSim(t, Options{Metadata: &MetadataOptions{SessionTokens: true, CredentialTTL: 30 * time.Minute}})
	wantUnauthorized := func(a answer) {
		t.Helper()
		if a.status != 401 || strings.TrimSpace(string(a.body)) != "Unauthorized" ||
			!strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
			t.Errorf("want 401 Unauthorized, got %d %q %s", a.status, a.header.Get("Content-Type"), a.body)
		}
	}
	wantUnauthorized(metaGet(s, ""))
	wantUnauthorized(metaGet(s, "not-a-session-token"))

	short := string(metaPut(s, "60").body)
	c := credentialOf(t, metaGet(s, short))
	if want := testStart.Add(30 * time.Minute).Format("2006-01-02T15:04:05.000000Z"); c.ExpiresAt != want {
		t.Errorf("CredentialTTL 30m: expires_at %s, want %s", c.ExpiresAt, want)
	}
	clock.Advance(59 * time.Second)
	credentialOf(t, metaGet(s, short))
	clock.Advance(time.Second)
	wantUnauthorized(metaGet(s, short))

	for _, ttl := range []string{"", "0", "-5", "21601", "abc", "1.5"} {
		a := metaPut(s, ttl)
		if a.status != 400 || json.Valid(a.body) {
			t.Errorf("TTL %q: %d %s, want a plain-text 400", ttl, a.status, a.body)
		}
	}
	for _, ttl := range []string{"1", "21600"} {
		if a := metaPut(s, ttl); a.status != 200 {
			t.Errorf("TTL %s: %d %s", ttl, a.status, a.body)
		}
	}
	get := serve(s, httptest.NewRequest(http.MethodGet, metaBase+"/meta-data/latest/api/token", nil))
	if get.status != 405 || get.header.Get("Allow") != http.MethodPut {
		t.Errorf("GET on the token path: %d Allow %q", get.status, get.header.Get("Allow"))
	}
	post := serve(s, httptest.NewRequest(http.MethodPost, metaBase+"/openstack/latest/securitykey", nil))
	if post.status != 405 || post.header.Get("Allow") != http.MethodGet {
		t.Errorf("POST securitykey: %d Allow %q", post.status, post.header.Get("Allow"))
	}
	// 5 answered PUTs + 6 bad TTLs; the GET and the POST are Other.
	if got := s.Requests(OpMetadataToken); got != 9 {
		t.Errorf("Requests(MetadataToken) = %d, want 9", got)
	}
	if got := s.Requests(OpOther); got != 2 {
		t.Errorf("Requests(Other) = %d, want 2", got)
	}
}

func TestMetadataWithoutSessionTokens(t *testing.T) {
	for _, c := range []struct {
		name      string
		opts      MetadataOptions
		putStatus int
	}{
		{"old service", MetadataOptions{}, 404},
		{"PUT 405", MetadataOptions{PutStatus: 405}, 405},
		{"PUT 503", MetadataOptions{PutStatus: 503}, 503},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			s, clock := newSim(t, Options{Tasks: 1, Metadata: &opts})
			if a := metaPut(s, "21600"); a.status != c.putStatus || len(a.body) == 0 {
				t.Errorf("PUT: %d %s, want %d", a.status, a.body, c.putStatus)
			}
			cred := credentialOf(t, metaGet(s, ""))
			if a := serve(s, signedWith(clock, showPath(s.TaskIDs()[0]), cred.keys())); a.status != 200 {
				t.Errorf("ShowTask: %d %s", a.status, a.body)
			}
		})
	}
	// PutStatus with SessionTokens: clients cannot get the token securitykey requires.
	s, _ := newSim(t, Options{Metadata: &MetadataOptions{SessionTokens: true, PutStatus: 503}})
	if a := metaPut(s, "21600"); a.status != 503 {
		t.Errorf("PUT: %d", a.status)
	}
	if a := metaGet(s, ""); a.status != 401 {
		t.Errorf("securitykey without a session token: %d %s", a.status, a.body)
	}
}

func TestMetadataFailures(t *testing.T) {
	s, _ := newSim(t, Options{Metadata: &MetadataOptions{SessionTokens: true, NoAgency: true}})
	session := string(metaPut(s, "300").body)
	a := metaGet(s, session)
	if a.status != 401 || !strings.Contains(string(a.body), "Please configure Cloud Service Agency first") {
		t.Errorf("NoAgency: %d %s", a.status, a.body)
	}
	if a := metaGet(s, ""); a.status != 401 || strings.Contains(string(a.body), "Agency") {
		t.Errorf("NoAgency without a session token: %d %s, want the plain 401 first", a.status, a.body)
	}

	s, _ = newSim(t, Options{Metadata: &MetadataOptions{Garbage: true}})
	a = metaGet(s, "")
	if a.status != 200 || json.Valid(a.body) {
		t.Errorf("Garbage: %d valid=%v %s", a.status, json.Valid(a.body), a.body)
	}
	if s.IssuedCredentials() != 0 {
		t.Errorf("IssuedCredentials = %d after failures only", s.IssuedCredentials())
	}

	// No metadata service: both paths are unknown APIs, whatever the method.
	s, _ = newSim(t, Options{})
	metaPut(s, "21600").wantError(t, 404, "APIGW.0101", "")
	metaGet(s, "").wantError(t, 404, "APIGW.0101", "")
	if s.Requests(OpMetadataToken) != 1 || s.Requests(OpMetadataSecurityKey) != 1 {
		t.Errorf("counters: %d %d", s.Requests(OpMetadataToken), s.Requests(OpMetadataSecurityKey))
	}
}

func TestTemporaryKeysAKLock(t *testing.T) {
	s, clock := newSim(t, Options{Tasks: 1, Metadata: &MetadataOptions{}})
	path := showPath(s.TaskIDs()[0])
	c := credentialOf(t, metaGet(s, ""))
	bad := c.keys()
	bad.SecretKey = "wrong"
	for range 6 {
		serve(s, signedWith(clock, path, bad)).wantError(t, 401, "APIGW.0301", "verify aksk signature fail")
	}
	serve(s, signedWith(clock, path, c.keys())).wantError(t, 401, "APIGW.0301", "AK access failed to reach the limit")
	if a := serve(s, signed(clock, path)); a.status != 200 {
		t.Errorf("the permanent AK is locked too: %d", a.status)
	}
	clock.Advance(5 * time.Minute)
	if a := serve(s, signedWith(clock, path, c.keys())); a.status != 200 {
		t.Errorf("after the lock: %d %s", a.status, a.body)
	}
}
