package auth_test

// Fuzz target of the signer's canonicalisation. `go test` runs the seeds (the f.Add calls
// and testdata/fuzz/FuzzSign/); `make fuzz` explores from them. See docs/reliability.md.

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

var fuzzNow = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

// FuzzSign canonicalises and signs a request with any path, query and extra header:
//   - Escape writes only A-Z a-z 0-9 - _ . ~ and %XX, and decodes back to its input;
//   - CanonicalURI writes only those and "/", ends in "/" and is idempotent;
//   - CanonicalQuery lists every value once, sorted, escaped;
//   - Sign then Verify of the same request verifies, in memory and after the request has
//     been written to the wire and read back as a server reads it;
//   - changing the value of any signed header (or the host) makes Verify fail, while
//     changing an unsigned header does not.
func FuzzSign(f *testing.F) {
	type seed struct {
		path, query, name, value, newValue, sk, token string
		body                                          []byte
	}
	for _, s := range []seed{
		{"/v2/p1/ies/task/t1", "", "X-Project-Id", "p1", "p2", "SK", "", nil},
		{"/v2/p1/ies/task", "resource=qa_pair&resource=intent&business_id=b+1&begin_time=1&offset=0&limit=100",
			"X-Request-Id", "r1", "r2", "SK", "temporary-token", nil},
		{"/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs", "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
			"Content-Type", "application/json", "text/plain", "MFwFdFd6n", "", nil},
		{"/v3/auth/tokens", "nocatalog=true", "X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD", "x", "sk", "", []byte(`{"auth":{}}`)},
		{"/a b/c%2Fd/é/~x/", "a=1&a=0&b=&=c&%zz=1&x=%E2%82%AC;y", "x-lower", " padded value\t", "padded value", "", "", nil},
		{"", "", "", "", "", "", "", nil},
		{"//double//slash/../.", "q=a+b%20c&q=", "X-Custom_Under", "v", "w", "k", "t", []byte("body")},
		{"/\xff\xfe/%/%2", "\xff=\xfe", "X-Multi", "a,b", "a,b", "k", "", nil},
		{"/v2/p1/ies/task/t1", "", "Host", "evil.example", "other.example", "k", "", nil},
		{"/v2/p1/ies/task/t1", "", "X-Sdk-Date", "20000101T000000Z", "20260101T000000Z", "k", "\x00token", nil},
	} {
		f.Add(s.path, s.query, s.name, s.value, s.newValue, s.sk, s.token, s.body)
	}

	f.Fuzz(func(t *testing.T, path, rawQuery, name, value, newValue, sk, token string, body []byte) {
		for _, s := range []string{path, rawQuery, name, value, newValue} {
			checkEscape(t, s)
		}
		checkCanonicalURI(t, path)
		query, _ := url.ParseQuery(rawQuery) // keeps the pairs that parse, as a server does
		checkCanonicalQuery(t, query)
		checkCanonicalQuery(t, map[string][]string{name: {value, newValue, rawQuery}, path: nil})

		keys := auth.Keys{AccessKey: "FUZZAK", SecretKey: sk, SecurityToken: token}
		newRequest := func(u *url.URL) *http.Request {
			req := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(auth.HeaderProjectID, "fuzz-project")
			if validToken(name) {
				req.Header.Add(name, value)
			}
			return req
		}

		// In memory: the path as the request holds it, the query as it came.
		req := newRequest(&url.URL{Scheme: "https", Host: "metastudio.cn-north-4.myhuaweicloud.com", Path: path, RawQuery: rawQuery})
		auth.Sign(req, body, keys, fuzzNow)
		a := verifies(t, "in memory", req, body, sk)
		if a == nil {
			return
		}
		checkMutations(t, req, body, a, sk, newValue)

		// On the wire: what the client sends (the path escaped, the query encoded) and a
		// server reads back.
		for _, v := range append(req.Header.Values(name), token) {
			if !validFieldValue(v) {
				return // a real client refuses to send such a header
			}
		}
		wire := newRequest(&url.URL{Scheme: "http", Host: "127.0.0.1:9", Path: "/" + path, RawQuery: query.Encode()})
		wire.Body, wire.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		auth.Sign(wire, body, keys, fuzzNow)
		var buf bytes.Buffer
		if err := wire.Write(&buf); err != nil {
			t.Fatalf("writing the signed request: %v", err)
		}
		got, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil {
			t.Fatalf("reading back the signed request: %v\n%q", err, buf.String())
		}
		gotBody, err := io.ReadAll(got.Body)
		if err != nil {
			t.Fatalf("reading back the body: %v", err)
		}
		verifies(t, "after the wire", got, gotBody, sk)
	})
}

// verifies checks that req carries a well-formed Authorization that Verify accepts, and
// returns it parsed (nil after a failure).
func verifies(t *testing.T, where string, req *http.Request, body []byte, sk string) *auth.Authorization {
	t.Helper()
	a, err := auth.ParseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		t.Errorf("%s: the signer's own Authorization does not parse: %v", where, err)
		return nil
	}
	if a.AccessKey != "FUZZAK" {
		t.Errorf("%s: Access=%q, want FUZZAK", where, a.AccessKey)
	}
	for _, h := range []string{"host", "x-project-id", "x-sdk-date"} {
		if !contains(a.SignedHeaders, h) {
			t.Errorf("%s: SignedHeaders %q lacks %s", where, a.SignedHeaders, h)
		}
	}
	if token := req.Header.Get(auth.HeaderSecurityToken); token != "" && !contains(a.SignedHeaders, "x-security-token") {
		t.Errorf("%s: the security token is not signed: %q", where, a.SignedHeaders)
	}
	if err := auth.Verify(req, body, a, sk); err != nil {
		t.Errorf("%s: Sign then Verify of the same request: %v\ncanonical request:\n%s", where, err,
			auth.CanonicalRequest(req, a.SignedHeaders, "<payload>"))
		return nil
	}
	return &a
}

// checkMutations changes each signed header (and the host) to newValue, where that
// changes what is signed: Verify must refuse. Changing Content-Type, which is not signed,
// must not matter.
func checkMutations(t *testing.T, req *http.Request, body []byte, a *auth.Authorization, sk, newValue string) {
	t.Helper()
	for _, h := range a.SignedHeaders {
		r := req.Clone(req.Context())
		if h == "host" {
			if newValue == "" || newValue == req.Host {
				continue
			}
			r.Host = newValue
		} else {
			values := slices.Clone(req.Header.Values(h)) // Values is the request's own slice
			for i := range values {
				values[i] = strings.TrimSpace(values[i])
			}
			if strings.Join(values, ",") == strings.TrimSpace(newValue) {
				continue
			}
			r.Header.Set(h, newValue)
		}
		if err := auth.Verify(r, body, *a, sk); err == nil {
			t.Errorf("signed header %s changed from %q to %q, and Verify still accepts", h, req.Header.Values(h), newValue)
		}
	}
	if !contains(a.SignedHeaders, "content-type") {
		r := req.Clone(req.Context())
		r.Header.Set("Content-Type", newValue)
		if err := auth.Verify(r, body, *a, sk); err != nil {
			t.Errorf("changing the unsigned Content-Type to %q broke the signature: %v", newValue, err)
		}
	}
}

// checkEscape checks the alphabet, the length and the round trip of Escape.
func checkEscape(t *testing.T, s string) {
	t.Helper()
	out := auth.Escape(s)
	if !escapedOnly(out, false) {
		t.Errorf("Escape(%q) = %q: not only unreserved characters and %%XX", s, out)
	}
	want := 0
	for i := 0; i < len(s); i++ {
		if unreserved(s[i]) {
			want++
		} else {
			want += 3
		}
	}
	if len(out) != want {
		t.Errorf("Escape(%q) = %q: %d bytes, want %d", s, out, len(out), want)
	}
	if back, err := url.PathUnescape(out); err != nil || back != s {
		t.Errorf("Escape(%q) = %q decodes to %q (%v)", s, out, back, err)
	}
}

// checkCanonicalURI checks the canonical form of any escaped path.
func checkCanonicalURI(t *testing.T, path string) {
	t.Helper()
	uri := auth.CanonicalURI(path)
	if !strings.HasSuffix(uri, "/") || !escapedOnly(uri, true) {
		t.Errorf("CanonicalURI(%q) = %q", path, uri)
	}
	if want := strings.Count(path, "/") + 1; !strings.HasSuffix(path, "/") && strings.Count(uri, "/") != want {
		t.Errorf("CanonicalURI(%q) = %q: %d segments, want %d", path, uri, strings.Count(uri, "/"), want)
	}
	if again := auth.CanonicalURI(uri); again != uri {
		t.Errorf("CanonicalURI is not idempotent: %q -> %q -> %q", path, uri, again)
	}
}

// checkCanonicalQuery checks that every value appears once, escaped, in sorted order.
func checkCanonicalQuery(t *testing.T, query map[string][]string) {
	t.Helper()
	out := auth.CanonicalQuery(query)
	if again := auth.CanonicalQuery(query); again != out {
		t.Fatalf("CanonicalQuery is not deterministic: %q then %q", out, again)
	}
	n := 0
	for _, vs := range query {
		n += len(vs)
	}
	var parts []string
	if out != "" {
		parts = strings.Split(out, "&")
	}
	if len(parts) != n {
		t.Fatalf("CanonicalQuery(%q) = %q: %d pairs, want %d", query, out, len(parts), n)
	}
	type pair struct{ k, v string }
	var got []pair
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !escapedOnly(k, false) || !escapedOnly(v, false) {
			t.Fatalf("CanonicalQuery(%q) = %q: bad pair %q", query, out, p)
		}
		rk, err1 := url.PathUnescape(k)
		rv, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			t.Fatalf("CanonicalQuery(%q): pair %q does not decode", query, p)
		}
		got = append(got, pair{rk, rv})
	}
	if !sort.SliceIsSorted(got, func(i, j int) bool {
		return got[i].k < got[j].k || got[i].k == got[j].k && got[i].v < got[j].v
	}) {
		t.Errorf("CanonicalQuery(%q) = %q: not sorted by key, then value", query, out)
	}
	for _, p := range got {
		if !contains(query[p.k], p.v) {
			t.Errorf("CanonicalQuery(%q) = %q: %q=%q was not in the query", query, out, p.k, p.v)
		}
	}
}

// escapedOnly reports whether s holds only unreserved characters and %XX (upper-case hex),
// and "/" when slash is set.
func escapedOnly(s string, slash bool) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case unreserved(c), slash && c == '/':
		case c == '%' && i+2 < len(s) && upperHex(s[i+1]) && upperHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// validToken reports whether s can be an HTTP header name (RFC 9110 token).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validFieldValue reports whether s can be sent as a header value: no control characters
// but tab.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
