package simulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// HeaderMetadataToken carries a metadata session token.
	HeaderMetadataToken = "X-Metadata-Token"
	// HeaderMetadataTokenTTL asks the metadata service for a session token of that many
	// seconds (1 to MaxMetadataTokenTTL).
	HeaderMetadataTokenTTL = "X-Metadata-Token-Ttl-Seconds"
	// MaxMetadataTokenTTL is the longest session token lifetime, in seconds (6 hours).
	MaxMetadataTokenTTL = 21600

	// MsgNoAgency is the body of the securitykey 401 when no agency is bound.
	MsgNoAgency = "Please configure Cloud Service Agency first"

	contentText  = "text/plain; charset=utf-8"
	upperDigits  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// IssuedCredentials returns how many temporary credentials the metadata service has issued.
func (s *Server) IssuedCredentials() int {
	return int(s.issuedCreds.Load())
}

// ExpireCredentials makes every temporary credential issued so far expire now (by Now):
// requests signed with them then answer 401 APIGW.0301 "... Get secretKey failed,ak:AK,
// err:ak not exist", since IAM no longer knows an expired temporary AK.
func (s *Server) ExpireCredentials() {
	expireNow(s, s.temp, func(tc *tempCred) *time.Time { return &tc.expires })
}

func (s *Server) writeText(w http.ResponseWriter, status int, text string) {
	s.writeBody(w, status, contentText, []byte(text))
}

// writeStatusText answers status with its standard text as a plain-text body.
func (s *Server) writeStatusText(w http.ResponseWriter, status int) {
	text := http.StatusText(status)
	if text == "" {
		text = "Error"
	}
	s.writeText(w, status, text)
}

// metadata answers any method on the metadata service's paths: the gateway's 404
// APIGW.0101 when the service is off.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request, reqID string, via handler) {
	m := s.opts.Metadata
	switch {
	case m == nil:
		s.writeJSONError(w, reqID, http.StatusNotFound, CodeGatewayNotFound, msgNotFound)
	case via == viaMetadataToken:
		s.metadataToken(w, r, m)
	default:
		s.metadataSecurityKey(w, r, reqID, m)
	}
}

// notAllowed answers 405 to a method other than allow.
func (s *Server) notAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	s.writeStatusText(w, http.StatusMethodNotAllowed)
}

// metadataToken answers any method on /meta-data/latest/api/token.
func (s *Server) metadataToken(w http.ResponseWriter, r *http.Request, m *MetadataOptions) {
	if r.Method != http.MethodPut {
		if !m.SessionTokens && m.PutStatus == 0 {
			s.writeStatusText(w, http.StatusNotFound)
			return
		}
		s.notAllowed(w, http.MethodPut)
		return
	}
	if m.PutStatus != 0 {
		s.writeStatusText(w, m.PutStatus)
		return
	}
	if !m.SessionTokens {
		s.writeStatusText(w, http.StatusNotFound)
		return
	}
	ttl, err := strconv.Atoi(strings.TrimSpace(r.Header.Get(HeaderMetadataTokenTTL)))
	if err != nil || ttl < 1 || ttl > MaxMetadataTokenTTL {
		s.writeText(w, http.StatusBadRequest, "Bad Request: "+HeaderMetadataTokenTTL+
			" must be a whole number of seconds from 1 to "+strconv.Itoa(MaxMetadataTokenTTL))
		return
	}
	now := s.now()
	tok := randomBase64(base64.RawURLEncoding, 42)
	s.mu.Lock()
	for t, exp := range s.sessions {
		if !now.Before(exp) {
			delete(s.sessions, t)
		}
	}
	s.sessions[tok] = now.Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	s.writeText(w, http.StatusOK, tok)
}

// validSession reports whether tok is a session token that has not expired.
func (s *Server) validSession(tok string) bool {
	if tok == "" {
		return false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.sessions[tok]
	return ok && now.Before(exp)
}

// metadataSecurityKey answers any method on /openstack/latest/securitykey.
func (s *Server) metadataSecurityKey(w http.ResponseWriter, r *http.Request, reqID string, m *MetadataOptions) {
	if r.Method != http.MethodGet {
		s.notAllowed(w, http.MethodGet)
		return
	}
	if m.SessionTokens && !s.validSession(r.Header.Get(HeaderMetadataToken)) {
		s.writeStatusText(w, http.StatusUnauthorized)
		return
	}
	if m.NoAgency {
		s.writeText(w, http.StatusUnauthorized, MsgNoAgency)
		return
	}
	if m.Garbage {
		s.writeBody(w, http.StatusOK, contentJSON, []byte(`{"credential":{"access":"`))
		return
	}

	now := s.now()
	expires := now.Add(m.CredentialTTL).UTC().Truncate(time.Microsecond)
	tc := tempCred{
		secret:  randomFrom(alphanumeric, 40),
		token:   randomBase64(base64.StdEncoding, 720),
		expires: expires,
	}
	s.mu.Lock()
	for ak, old := range s.temp {
		if now.Sub(old.expires) > forgetAfter {
			delete(s.temp, ak)
		}
	}
	ak := randomFrom(upperDigits, 20)
	for s.creds[ak] != "" || s.temp[ak].secret != "" {
		ak = randomFrom(upperDigits, 20)
	}
	s.temp[ak] = tc
	s.issuedCreds.Add(1)
	s.mu.Unlock()

	b, err := json.Marshal(object{{"credential", object{
		{"access", ak},
		{"secret", tc.secret},
		{"securitytoken", tc.token},
		{"expires_at", expires.Format(iamTimeFormat)},
	}}})
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusInternalServerError, CodeInternal, msgInternal)
		return
	}
	s.writeBody(w, http.StatusOK, contentJSON, b)
}
