package simulator

// The gateway's check of an SDK-HMAC-SHA256 signature, written from the published
// algorithm (Huawei's API request signing guide, as CONTRACT.md and API-NOTES.md quote
// it) and independent of the exporter's signer in package auth: a mistake in one is not
// repeated by the other. It works on the request as it came over the wire: the escaped
// path, the raw query (where "+" is a plus sign, not a space) and the header values.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"sort"
	"strings"
)

// Header names the gateway reads.
const (
	headerAuthToken     = "X-Auth-Token"
	headerSdkDate       = "X-Sdk-Date"
	headerSecurityToken = "X-Security-Token"
	headerContentSha256 = "X-Sdk-Content-Sha256"
	sdkDateFormat       = "20060102T150405Z"
	signAlgorithm       = "SDK-HMAC-SHA256"
)

// authorization is a parsed "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex".
type authorization struct {
	accessKey     string
	signedHeaders []string
	signature     string
}

func parseAuthorization(header string) (authorization, error) {
	var a authorization
	rest, ok := strings.CutPrefix(header, signAlgorithm+" ")
	if !ok {
		return a, errors.New("authorization header does not start with " + signAlgorithm)
	}
	for _, field := range strings.Split(rest, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return a, errors.New("authorization header has a part without '='")
		}
		switch key {
		case "Access":
			a.accessKey = value
		case "SignedHeaders":
			a.signedHeaders = strings.Split(value, ";")
		case "Signature":
			a.signature = value
		}
	}
	if a.accessKey == "" || len(a.signedHeaders) == 0 || a.signature == "" {
		return a, errors.New("authorization header lacks Access, SignedHeaders or Signature")
	}
	return a, nil
}

// checkSignature recomputes the signature over the headers that SignedHeaders lists
// (sorted, and including x-sdk-date) and compares it in constant time.
func checkSignature(r *http.Request, body []byte, a authorization, sk string) error {
	if !sort.StringsAreSorted(a.signedHeaders) {
		return errors.New("SignedHeaders is not sorted")
	}
	hasDate := false
	for _, h := range a.signedHeaders {
		hasDate = hasDate || h == "x-sdk-date"
	}
	if !hasDate {
		return errors.New("SignedHeaders does not include x-sdk-date")
	}
	canonical, err := canonicalRequest(r, body, a.signedHeaders)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(canonical))
	toSign := signAlgorithm + "\n" + r.Header.Get(headerSdkDate) + "\n" + hex.EncodeToString(digest[:])
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(toSign))
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(a.signature))) {
		return errors.New("signature does not match")
	}
	return nil
}

// canonicalRequest is method, URI, query, header lines, signed-header list and payload
// hash, joined by "\n".
func canonicalRequest(r *http.Request, body []byte, signed []string) (string, error) {
	uri, err := canonicalPath(r.URL.EscapedPath())
	if err != nil {
		return "", err
	}
	query, err := canonicalQueryOf(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	var headers strings.Builder
	for _, name := range signed {
		value := ""
		if name == "host" {
			value = r.Host
		} else {
			values := r.Header.Values(name)
			parts := make([]string, len(values))
			for i, v := range values {
				parts[i] = strings.TrimSpace(v)
			}
			value = strings.Join(parts, ",")
		}
		headers.WriteString(name + ":" + value + "\n")
	}
	payload := r.Header.Get(headerContentSha256)
	if payload != "UNSIGNED-PAYLOAD" {
		sum := sha256.Sum256(body)
		payload = hex.EncodeToString(sum[:])
	}
	return strings.Join([]string{r.Method, uri, query, headers.String(), strings.Join(signed, ";"), payload}, "\n"), nil
}

// canonicalPath decodes each segment of the path as sent and encodes it again, ending in "/".
func canonicalPath(escaped string) (string, error) {
	segments := strings.Split(escaped, "/")
	for i, s := range segments {
		raw, err := percentDecode(s)
		if err != nil {
			return "", err
		}
		segments[i] = percentEncode(raw)
	}
	uri := strings.Join(segments, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri, nil
}

// canonicalQueryOf decodes each key and value of the raw query and encodes it again,
// sorted by key, then value, both compared decoded (as Huawei's APIG signer sorts them).
// Only %XX is decoded: "+" stays a plus sign.
func canonicalQueryOf(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	type pair struct{ k, v string }
	var pairs []pair
	for _, field := range strings.Split(raw, "&") {
		if field == "" {
			continue
		}
		k, v, _ := strings.Cut(field, "=")
		dk, err := percentDecode(k)
		if err != nil {
			return "", err
		}
		dv, err := percentDecode(v)
		if err != nil {
			return "", err
		}
		pairs = append(pairs, pair{dk, dv})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = percentEncode(p.k) + "=" + percentEncode(p.v)
	}
	return strings.Join(out, "&"), nil
}

// percentEncode keeps A-Z a-z 0-9 - _ . ~ and writes every other byte as %XX, upper case.
func percentEncode(s string) string {
	const digits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&15])
		}
	}
	return b.String()
}

// percentDecode turns each %XX into its byte and leaves everything else as it is.
func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", errors.New("the URL has a malformed %-escape")
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
