// Package auth authenticates requests to Huawei Cloud APIs the way Huawei's SDKs do:
// SDK-HMAC-SHA256 signatures with an AK/SK (optionally temporary, with a security token),
// or an IAM X-Auth-Token.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Algorithm is the signing algorithm name that prefixes the Authorization header and the
// string to sign.
const Algorithm = "SDK-HMAC-SHA256"

// DateFormat is the layout of X-Sdk-Date (UTC, basic ISO 8601).
const DateFormat = "20060102T150405Z"

// Header names used by the signer.
const (
	HeaderSdkDate       = "X-Sdk-Date"
	HeaderSecurityToken = "X-Security-Token"
	HeaderProjectID     = "X-Project-Id"
	HeaderAuthToken     = "X-Auth-Token"
	HeaderContentSha256 = "X-Sdk-Content-Sha256"
	unsignedPayload     = "UNSIGNED-PAYLOAD"
)

// Keys is one consistent set of AK/SK credentials. SecurityToken is set for temporary
// credentials; it is sent as X-Security-Token and signed.
type Keys struct {
	AccessKey     string
	SecretKey     string
	SecurityToken string
}

// Sign adds X-Sdk-Date, X-Security-Token (for temporary keys) and the Authorization header
// to req. body is the exact request body (nil for none). It signs host, x-sdk-date,
// x-security-token and every X- header already set on req, so callers set X-Project-Id first.
//
// Sign runs once per API call, so it writes into pre-sized buffers: no fmt, no Split/Join,
// and a request without a query is not parsed for one.
func Sign(req *http.Request, body []byte, keys Keys, now time.Time) {
	var dateBuf [len(DateFormat)]byte
	date := string(now.UTC().AppendFormat(dateBuf[:0], DateFormat))
	req.Header[HeaderSdkDate] = []string{date}
	if keys.SecurityToken != "" {
		req.Header[HeaderSecurityToken] = []string{keys.SecurityToken}
	}
	var namesBuf [8]string
	signed := appendSignedHeaderNames(namesBuf[:0], req)
	canonical := CanonicalRequest(req, signed, payloadHash(req, body))

	var sigBuf [2 * sha256.Size]byte
	sig := signatureHex(sigBuf[:0], keys.SecretKey, canonical, date)

	var b strings.Builder
	n := len(Algorithm) + len(" Access=") + len(keys.AccessKey) + len(", SignedHeaders=") + len(", Signature=") + len(sig)
	for _, h := range signed {
		n += len(h) + 1
	}
	b.Grow(n)
	b.WriteString(Algorithm)
	b.WriteString(" Access=")
	b.WriteString(keys.AccessKey)
	b.WriteString(", SignedHeaders=")
	writeJoined(&b, signed)
	b.WriteString(", Signature=")
	b.Write(sig)
	req.Header["Authorization"] = []string{b.String()}
}

// appendSignedHeaderNames picks the headers the exporter signs: host and every X- header
// (which covers x-project-id, x-sdk-date and x-security-token), lower-case and sorted. Like
// the SDK, it leaves out names containing "_" (proxies drop them).
func appendSignedHeaderNames(names []string, req *http.Request) []string {
	names = append(names, "host")
	for name := range req.Header {
		if len(name) < 2 || (name[0] != 'X' && name[0] != 'x') || name[1] != '-' || strings.IndexByte(name, '_') >= 0 {
			continue
		}
		names = append(names, strings.ToLower(name))
	}
	sort.Strings(names)
	return names
}

// payloadHash is the hex SHA-256 of body, or UNSIGNED-PAYLOAD when the request says so.
func payloadHash(req *http.Request, body []byte) string {
	if req.Header.Get(HeaderContentSha256) == unsignedPayload {
		return unsignedPayload
	}
	if len(body) == 0 {
		return emptyPayloadHash
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// emptyPayloadHash is the hex SHA-256 of an empty body: every GET's payload hash.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// CanonicalRequest builds the canonical request of the SDK-HMAC-SHA256 algorithm: method,
// URI (each segment escaped, ending in "/"), sorted escaped query, the signed headers as
// "name:trimmed value" lines, the signed-header list and the payload hash, joined by "\n".
// signedHeaders must be lower-case and sorted.
func CanonicalRequest(req *http.Request, signedHeaders []string, payloadHash string) string {
	uri := CanonicalURI(req.URL.EscapedPath())
	var query string
	if req.URL.RawQuery != "" {
		query = CanonicalQuery(req.URL.Query())
	}
	var valuesBuf [8]string
	values := valuesBuf[:0]
	n := len(req.Method) + len(uri) + len(query) + len(payloadHash) + 4
	for _, name := range signedHeaders {
		v := headerValue(req, name)
		values = append(values, v)
		n += 2*len(name) + len(v) + 3
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(req.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for i, name := range signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(values[i])
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	writeJoined(&b, signedHeaders)
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// writeJoined writes names joined by ";".
func writeJoined(b *strings.Builder, names []string) {
	for i, name := range names {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
	}
}

// headerValue is the trimmed value of a header for signing; Host comes from the request
// line, as the server sees it.
func headerValue(req *http.Request, lowerName string) string {
	if lowerName == "host" {
		if req.Host != "" {
			return req.Host
		}
		return req.URL.Host
	}
	values := req.Header.Values(lowerName)
	if len(values) == 1 {
		return strings.TrimSpace(values[0]) // a substring: the request's value stays as sent
	}
	trimmed := make([]string, len(values)) // Values is the request's own slice: leave it as sent
	for i, v := range values {
		trimmed[i] = strings.TrimSpace(v)
	}
	return strings.Join(trimmed, ",")
}

// CanonicalURI takes the path as sent on the wire, unescapes each segment and escapes it
// again with Escape, and makes sure the result ends in "/". An escaped "/" (%2F) stays
// inside its segment.
func CanonicalURI(escapedPath string) string {
	plain := true // only unreserved bytes and "/": every segment escapes to itself
	for i := 0; i < len(escapedPath); i++ {
		if c := escapedPath[i]; c != '/' && !isUnreserved(c) {
			plain = false
			break
		}
	}
	if plain {
		if strings.HasSuffix(escapedPath, "/") {
			return escapedPath
		}
		return escapedPath + "/"
	}
	segments := strings.Split(escapedPath, "/")
	for i, s := range segments {
		if raw, err := url.PathUnescape(s); err == nil {
			s = raw
		}
		segments[i] = Escape(s)
	}
	uri := strings.Join(segments, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri
}

// CanonicalQuery sorts keys, and each key's values, and escapes both.
func CanonicalQuery(query map[string][]string) string {
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		values := append([]string(nil), query[k]...)
		sort.Strings(values)
		for _, v := range values {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			writeEscaped(&b, k)
			b.WriteByte('=')
			writeEscaped(&b, v)
		}
	}
	return b.String()
}

// Escape keeps A-Z a-z 0-9 - _ . ~ and writes every other byte as %XX (upper-case hex).
func Escape(s string) string {
	var b strings.Builder
	writeEscaped(&b, s)
	return b.String()
}

func writeEscaped(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// StringToSign is "SDK-HMAC-SHA256\n{X-Sdk-Date}\n{hex sha256(canonical request)}".
func StringToSign(canonicalRequest, sdkDate string) string {
	return string(appendStringToSign(nil, canonicalRequest, sdkDate))
}

func appendStringToSign(dst []byte, canonicalRequest, sdkDate string) []byte {
	sum := sha256.Sum256([]byte(canonicalRequest))
	dst = append(dst, Algorithm...)
	dst = append(dst, '\n')
	dst = append(dst, sdkDate...)
	dst = append(dst, '\n')
	return hex.AppendEncode(dst, sum[:])
}

// Signature is hex HMAC-SHA256(secretKey, stringToSign).
func Signature(secretKey, stringToSign string) string {
	mac := hmac.New(sha256.New, []byte(secretKey))
	mac.Write([]byte(stringToSign))
	return hex.EncodeToString(mac.Sum(nil))
}

// signatureHex appends hex HMAC-SHA256(secretKey, StringToSign(canonical, date)) to dst,
// building the string to sign in a stack buffer.
func signatureHex(dst []byte, secretKey, canonical, date string) []byte {
	var stsBuf [128]byte
	sts := appendStringToSign(stsBuf[:0], canonical, date)
	m, _ := macPool.Get().(*keyedMAC)
	if m == nil || m.key != secretKey {
		m = &keyedMAC{key: secretKey, mac: hmac.New(sha256.New, []byte(secretKey))}
	} else {
		m.mac.Reset()
	}
	m.mac.Write(sts)
	var sum [sha256.Size]byte
	dst = hex.AppendEncode(dst, m.mac.Sum(sum[:0]))
	macPool.Put(m)
	return dst
}

// keyedMAC is an HMAC-SHA256 keyed with one SK. Reset brings it back to the keyed state,
// so a call reuses it instead of hashing the key into two new digests.
type keyedMAC struct {
	key string
	mac hash.Hash
}

var macPool sync.Pool // of *keyedMAC; one whose key is not the SK in use is replaced

// Authorization is a parsed SDK-HMAC-SHA256 Authorization header.
type Authorization struct {
	AccessKey     string
	SignedHeaders []string
	Signature     string
}

// ParseAuthorization reads "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex".
func ParseAuthorization(header string) (Authorization, error) {
	var a Authorization
	rest, ok := strings.CutPrefix(header, Algorithm+" ")
	if !ok {
		return a, errors.New("authorization header does not start with " + Algorithm)
	}
	for _, part := range strings.Split(rest, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("authorization header part %q has no '='", part)
		}
		switch key {
		case "Access":
			a.AccessKey = value
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(value, ";")
		case "Signature":
			a.Signature = value
		}
	}
	if a.AccessKey == "" || len(a.SignedHeaders) == 0 || a.Signature == "" {
		return a, errors.New("authorization header lacks Access, SignedHeaders or Signature")
	}
	return a, nil
}

// Verify checks req's SDK-HMAC-SHA256 signature the way the API gateway does: it recomputes
// the canonical request over the headers that SignedHeaders lists (which must include
// x-sdk-date) and compares signatures in constant time. secretKey is the SK of a.AccessKey.
func Verify(req *http.Request, body []byte, a Authorization, secretKey string) error {
	if !sort.StringsAreSorted(a.SignedHeaders) {
		return errors.New("SignedHeaders is not sorted")
	}
	hasDate := false
	for _, h := range a.SignedHeaders {
		if h == "x-sdk-date" {
			hasDate = true
		}
	}
	if !hasDate {
		return errors.New("SignedHeaders does not include x-sdk-date")
	}
	canonical := CanonicalRequest(req, a.SignedHeaders, payloadHash(req, body))
	want := Signature(secretKey, StringToSign(canonical, req.Header.Get(HeaderSdkDate)))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(a.Signature))) {
		return errors.New("signature does not match")
	}
	return nil
}
