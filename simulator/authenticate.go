package simulator

import (
	"net/http"
	"slices"
	"time"
)

// authenticate checks the request like the gateway: an X-Auth-Token when present, else an
// SDK-HMAC-SHA256 Authorization, which must come with an X-Project-Id header on a call to
// MetaStudio (rt ShowTask or SearchTask). msg completes "Incorrect IAM authentication
// information: ".
func (s *Server) authenticate(r *http.Request, body []byte, rt route) (msg string, ok bool) {
	if tok := r.Header.Get(headerAuthToken); tok != "" {
		return s.checkToken(tok)
	}
	if msg, ok := s.authenticateAKSK(r, body); !ok {
		return msg, false
	}
	if rt.op != OpOther && r.Header.Get(headerProjectID) == "" {
		return msgNoProjectID, false
	}
	return "", true
}

// credentialsOf names the credentials a request claims, for the gateway's quotas and
// overlap count: its X-Auth-Token when it has one (authentication then uses the token),
// else the AK of its Authorization header; "" for neither.
func credentialsOf(r *http.Request) string {
	if tok := r.Header.Get(headerAuthToken); tok != "" {
		return "token:" + tok
	}
	if a, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		return "ak:" + a.accessKey
	}
	return ""
}

// checkToken accepts a token of Options.Tokens, or one IAM issued that has not expired.
func (s *Server) checkToken(tok string) (msg string, ok bool) {
	if s.tokens[tok] {
		return "", true
	}
	now := s.now()
	s.mu.Lock()
	it, issued := s.iamTokens[tok]
	s.mu.Unlock()
	if !issued || !now.Before(it.expires) {
		return msgDecryptTokenFail, false // Huawei's answer for a wrong, expired or revoked token alike
	}
	return "", true
}

// akNotExist is the gateway's answer for an AK that IAM does not know.
func akNotExist(ak string) string {
	return "Get secretKey failed,ak:" + ak + ",err:ak not exist"
}

// authenticateAKSK checks an SDK-HMAC-SHA256 Authorization: the AK (static or temporary),
// its lock, the expiry of a temporary AK, then verifyAKSK.
func (s *Server) authenticateAKSK(r *http.Request, body []byte) (msg string, ok bool) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return "the request carries neither X-Auth-Token nor Authorization", false
	}
	a, err := parseAuthorization(header)
	if err != nil {
		return "verify aksk signature fail, " + err.Error(), false
	}
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	sk, known := s.creds[a.accessKey]
	wantToken := s.secTokens[a.accessKey]
	var expires time.Time
	if !known {
		if tc, ok := s.temp[a.accessKey]; ok {
			sk, wantToken, expires, known = tc.secret, tc.token, tc.expires, true
		}
	}
	if !known {
		return akNotExist(a.accessKey), false
	}
	st := s.aks[a.accessKey]
	if st == nil {
		st = &akState{}
		s.aks[a.accessKey] = st
	}
	if !st.lockedUntil.IsZero() {
		if now.Before(st.lockedUntil) {
			return msgLocked[len(msgAuthPfx):], false
		}
		st.lockedUntil = time.Time{}
		st.failures = 0
	}
	if !expires.IsZero() && !now.Before(expires) {
		return akNotExist(a.accessKey), false // IAM forgets an expired temporary AK
	}
	if reason := verifyAKSK(r, body, a, sk, wantToken, now.Add(s.Skew())); reason != "" {
		st.failures++
		if st.failures > lockAfter {
			st.failures = 0
			st.lockedUntil = now.Add(lockFor)
		}
		return "verify aksk signature fail, " + reason, false
	}
	st.failures = 0
	return "", true
}

// verifyAKSK returns why a signed request fails, or "" when it passes: the X-Sdk-Date
// window around serverNow, the security token (wantToken, "" for a permanent key), then the
// signature itself.
func verifyAKSK(r *http.Request, body []byte, a authorization, sk, wantToken string, serverNow time.Time) string {
	date := r.Header.Get(headerSdkDate)
	if date == "" {
		return "X-Sdk-Date is missing"
	}
	t, err := time.Parse(sdkDateFormat, date)
	if err != nil {
		return "X-Sdk-Date is invalid"
	}
	if d := serverNow.Sub(t); d > maxDateSkew || d < -maxDateSkew {
		return "X-Sdk-Date is more than 15 minutes away from the server time"
	}
	if wantToken != "" {
		if r.Header.Get(headerSecurityToken) != wantToken {
			return "X-Security-Token is missing or invalid"
		}
		if !slices.Contains(a.signedHeaders, "x-security-token") {
			return "x-security-token is not signed"
		}
	}
	if err := checkSignature(r, body, a, sk); err != nil {
		return err.Error()
	}
	return ""
}

// issuedToken is an X-Auth-Token IAM issued: when it expires and the project it is scoped to.
type issuedToken struct {
	expires time.Time
	project string
}

// authorize checks that an authenticated MetaStudio call may reach p. An AK/SK call needs
// an AK of p's (mayUse), else it gets the answer Options.WrongProject chooses; it does not
// count toward the AK lock, since the signature was right. A token IAM issued for another
// project that this server serves gets MetaStudio's 400 MSS.00010009; Options.Tokens are
// good for every project.
func (s *Server) authorize(r *http.Request, p *project) (status int, code, msg string, ok bool) {
	if tok := r.Header.Get(headerAuthToken); tok != "" {
		s.mu.Lock()
		it, issued := s.iamTokens[tok]
		s.mu.Unlock()
		if issued && !s.tokens[tok] && it.project != p.id && s.byID[it.project] != nil {
			return http.StatusBadRequest, CodeTokenProject, "urlTenantId is not equal tokenTenantId", false
		}
		return 0, "", "", true
	}
	a, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil { // authenticate let it through, so this does not happen
		return http.StatusUnauthorized, CodeGatewayAuth, msgAuthPfx + "verify aksk signature fail", false
	}
	s.mu.Lock()
	allowed := s.mayUse(a.accessKey, p)
	s.mu.Unlock()
	switch {
	case allowed:
		return 0, "", "", true
	case s.opts.WrongProject == WrongProjectMetaStudio:
		return http.StatusForbidden, CodeAuthFailed, "Authentication failed.", false
	}
	return http.StatusUnauthorized, CodeGatewayAuth,
		msgAuthPfx + "the AK " + a.accessKey + " has no permission on project " + p.id, false
}
