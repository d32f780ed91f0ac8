package simulator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Paths of the IAM and metadata APIs the simulator serves besides MetaStudio.
const (
	pathIAMToken            = "/v3/auth/tokens"
	pathIAMProjects         = "/v3/projects"
	pathMetadataToken       = "/meta-data/latest/api/token"
	pathMetadataSecurityKey = "/openstack/latest/securitykey"
)

const (
	defaultRegion        = "cn-north-4"
	defaultTokenTTL      = 24 * time.Hour
	defaultCredentialTTL = 2 * time.Hour
	// forgetAfter is how long an expired token, session token or temporary key is still
	// recognised as expired; after that it is unknown.
	forgetAfter = 24 * time.Hour
	// iamTimeFormat is how IAM and the metadata service write instants (UTC, microseconds).
	iamTimeFormat = "2006-01-02T15:04:05.000000Z"
)

// IAM error codes and messages. The body is
// {"error":{"code":status,"message":msg,"title":title},"error_code":code,"error_msg":msg}.
const (
	// CodeIAMBadRequest is IAM's 400 for a request body it cannot use, and for a project
	// scope that names no known project.
	CodeIAMBadRequest = "IAM.0007"
	// CodeIAMAuth is IAM's 401 for a wrong user name, password or domain.
	CodeIAMAuth = "IAM.0004"

	msgIAMWrongPassword = "The username or password is wrong."
)

// SetSkew makes the server's clock run d ahead of Options.Now (behind when d < 0): the
// Date header reports Now()+d, and X-Sdk-Date is checked against Now()+d. Lifetimes of
// tokens and credentials, and the AK lock, still follow Now.
func (s *Server) SetSkew(d time.Duration) {
	s.skew.Store(int64(d))
}

// Skew returns the skew set with SetSkew.
func (s *Server) Skew() time.Duration {
	return time.Duration(s.skew.Load())
}

// serverNow is the server's own clock: Now plus the skew.
func (s *Server) serverNow() time.Time {
	return s.now().Add(s.Skew())
}

// IssuedTokens returns how many X-Auth-Tokens IAM has issued.
func (s *Server) IssuedTokens() int {
	return int(s.issued.Load())
}

// ExpireTokens makes every X-Auth-Token IAM has issued so far expire now (by Now): the
// MetaStudio routes then answer 401 APIGW.0301 "... decrypt token fail", as Huawei's
// gateway answers an expired token. Options.Tokens are not affected.
func (s *Server) ExpireTokens() {
	expireNow(s, s.iamTokens, func(it *issuedToken) *time.Time { return &it.expires })
}

// expireNow makes every entry of m that has not expired expire now (by Now); expiry
// points to an entry's expiry. m is one of the Server's maps that s.mu guards.
func expireNow[V any](s *Server, m map[string]V, expiry func(*V) *time.Time) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range m {
		if exp := expiry(&v); exp.After(now) {
			*exp = now
			m[k] = v
		}
	}
}

// RevokeTokens revokes every X-Auth-Token IAM has issued so far, as IAM does within
// about 30 minutes of a password or permission change: the MetaStudio routes then answer
// 401 APIGW.0301 "... decrypt token fail". Tokens issued later are good. Options.Tokens
// are not affected.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.iamTokens)
}

// iamErrorBody is IAM's error body.
func iamErrorBody(status int, code, msg string) []byte {
	type detail struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Title   string `json:"title"`
	}
	b, _ := json.Marshal(struct {
		Error     detail `json:"error"`
		ErrorCode string `json:"error_code"`
		ErrorMsg  string `json:"error_msg"`
	}{detail{status, msg, http.StatusText(status)}, code, msg})
	return b
}

func (s *Server) writeIAMError(w http.ResponseWriter, status int, code, msg string) {
	s.writeBody(w, status, contentMSS, iamErrorBody(status, code, msg))
}

// tokenRequest is the part of a password-token request the simulator reads.
type tokenRequest struct {
	Auth *struct {
		Identity *struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User *struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   *struct {
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope *struct {
			Project *struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

// iamToken answers POST /v3/auth/tokens: a password token scoped to a project.
func (s *Server) iamToken(w http.ResponseWriter, r *http.Request, reqID string, body []byte) {
	var req tokenRequest
	bad := func(why string) {
		s.writeIAMError(w, http.StatusBadRequest, CodeIAMBadRequest, "The request body is invalid: "+why+".")
	}
	if err := json.Unmarshal(body, &req); err != nil {
		bad("not a JSON object")
		return
	}
	a := req.Auth
	switch {
	case a == nil || a.Identity == nil:
		bad("auth.identity is missing")
		return
	case !slices.Contains(a.Identity.Methods, "password") || a.Identity.Password == nil ||
		a.Identity.Password.User == nil:
		bad(`auth.identity needs the method "password" and password.user`)
		return
	}
	u := a.Identity.Password.User
	if u.Name == "" || u.Password == "" || u.Domain == nil || u.Domain.Name == "" {
		bad("password.user needs name, password and domain.name")
		return
	}
	if a.Scope == nil || a.Scope.Project == nil || (a.Scope.Project.ID == "" && a.Scope.Project.Name == "") {
		bad("auth.scope.project needs id or name")
		return
	}
	if !s.users[IAMUser{Domain: u.Domain.Name, User: u.Name, Password: u.Password}] {
		s.writeIAMError(w, http.StatusUnauthorized, CodeIAMAuth, msgIAMWrongPassword)
		return
	}
	projectID, region, ok := s.findProject(a.Scope.Project.ID, a.Scope.Project.Name)
	if !ok {
		bad("auth.scope.project names no project of this domain")
		return
	}

	now := s.now()
	issued := now.UTC().Truncate(time.Microsecond)
	expires := now.Add(s.opts.TokenTTL).UTC().Truncate(time.Microsecond)
	tok := "MIIT" + randomBase64(base64.RawURLEncoding, 150)
	s.mu.Lock()
	for t, it := range s.iamTokens {
		if now.Sub(it.expires) > forgetAfter {
			delete(s.iamTokens, t)
		}
	}
	s.iamTokens[tok] = issuedToken{expires: expires, project: projectID}
	s.issued.Add(1)
	s.mu.Unlock()

	type named struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	domain := named{stableID("domain", u.Domain.Name), u.Domain.Name}
	token := object{
		{"expires_at", expires.Format(iamTimeFormat)},
		{"issued_at", issued.Format(iamTimeFormat)},
		{"methods", []string{"password"}},
		{"project", object{{"id", projectID}, {"name", region}, {"domain", domain}}},
		{"user", object{
			{"id", stableID("user", u.Domain.Name+"/"+u.Name)},
			{"name", u.Name},
			{"domain", domain},
			{"password_expires_at", ""},
		}},
	}
	if r.URL.Query().Get("nocatalog") != "true" {
		token = append(token, field{"catalog", []object{{
			{"type", "metastudio"},
			{"id", stableID("service", "metastudio")},
			{"name", "metastudio"},
			{"endpoints", []object{{
				{"id", stableID("endpoint", "metastudio/"+region)},
				{"interface", "public"},
				{"region", region},
				{"region_id", region},
				{"url", "https://metastudio." + region + ".myhuaweicloud.com"},
			}}},
		}}})
	}
	b, err := json.Marshal(object{{"token", token}})
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusInternalServerError, CodeInternal, msgInternal)
		return
	}
	w.Header().Set("X-Subject-Token", tok)
	s.writeBody(w, http.StatusCreated, contentMSS, b)
}

// findProject resolves a token scope: an id listed in Projects (name, if also given, must
// be its region), or a region with at least one project (its first).
func (s *Server) findProject(id, name string) (projectID, region string, ok bool) {
	if id != "" {
		for r, ids := range s.projects {
			if slices.Contains(ids, id) && (name == "" || name == r) {
				return id, r, true
			}
		}
		return "", "", false
	}
	if ids := s.projects[name]; len(ids) > 0 {
		return ids[0], name, true
	}
	return "", "", false
}

// iamProjects answers GET /v3/projects[?name=region], AK/SK-signed.
func (s *Server) iamProjects(w http.ResponseWriter, r *http.Request, reqID string, body []byte) {
	if msg, ok := s.authenticateAKSK(r, body); !ok {
		s.writeJSONError(w, reqID, http.StatusUnauthorized, CodeGatewayAuth, msgAuthPfx+msg)
		return
	}
	q := r.URL.Query()
	var regions []string
	if name, filtered := q["name"]; filtered {
		if len(name) > 0 {
			regions = []string{name[0]}
		}
	} else {
		for region := range s.projects {
			regions = append(regions, region)
		}
		slices.Sort(regions)
	}
	domainID := stableID("domain", "metastudio-sim")
	if len(s.opts.IAMUsers) > 0 {
		domainID = stableID("domain", s.opts.IAMUsers[0].Domain)
	}
	base := "https://" + r.Host + pathIAMProjects
	projects := []object{}
	for _, region := range regions {
		for _, id := range s.projects[region] {
			projects = append(projects, object{
				{"domain_id", domainID},
				{"is_domain", false},
				{"parent_id", domainID},
				{"name", region},
				{"description", ""},
				{"links", object{{"self", base + "/" + id}}},
				{"id", id},
				{"enabled", true},
			})
		}
	}
	self := base
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	b, err := json.Marshal(object{
		{"projects", projects},
		{"links", object{{"self", self}, {"previous", nil}, {"next", nil}}},
	})
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusInternalServerError, CodeInternal, msgInternal)
		return
	}
	s.writeBody(w, http.StatusOK, contentMSS, b)
}

// stableID is 32 hex digits that depend only on kind and name.
func stableID(kind, name string) string {
	sum := sha256.Sum256([]byte(kind + "/" + name))
	return hex.EncodeToString(sum[:16])
}

// randomBase64 encodes n random bytes.
func randomBase64(enc *base64.Encoding, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return enc.EncodeToString(b)
}

// randomFrom is n characters drawn at random from alphabet (at most 256 characters).
func randomFrom(alphabet string, n int) string {
	var out strings.Builder
	out.Grow(n)
	limit := 256 - 256%len(alphabet) // bytes at or above it would bias the draw
	var b []byte
	for out.Len() < n {
		if len(b) == 0 {
			b = make([]byte, n)
			_, _ = rand.Read(b) // crypto/rand.Read never fails
		}
		c := int(b[0])
		b = b[1:]
		if c < limit {
			out.WriteByte(alphabet[c%len(alphabet)])
		}
	}
	return out.String()
}
