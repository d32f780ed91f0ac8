package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPublishedVector is the example of Huawei's API signing guide, quoted in the contract.
func TestPublishedVector(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?marker=13551d6b-755d-4757-b956-536f674975c0&limit=2", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSdkDate, "20191115T033655Z")
	wantCanonical := "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\nlimit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n" +
		"content-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n\n" +
		"content-type;host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	canonical := CanonicalRequest(req, []string{"content-type", "host", "x-sdk-date"}, payloadHash(req, nil))
	if canonical != wantCanonical {
		t.Fatalf("canonical request:\n%q\nwant\n%q", canonical, wantCanonical)
	}
	sig := Signature("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", StringToSign(canonical, "20191115T033655Z"))
	if want := "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"; sig != want {
		t.Fatalf("signature %s, want %s", sig, want)
	}
	// The gateway's side of the same vector.
	req.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature="+sig)
	a, err := ParseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(req, nil, a, "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"); err != nil {
		t.Fatalf("Verify of the published vector: %v", err)
	}
	if err := Verify(req, nil, a, "wrong"); err == nil {
		t.Fatal("Verify accepted a wrong secret key")
	}
}

// TestSDKVector is the vector of the official Go SDK's signer test, with the SDK's own
// signed-header list (x-sdk-date alone). Which headers the exporter itself signs is
// TestSignLeavesOutUnderscores'.
func TestSDKVector(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://example.com/path?limit=1", nil)
	req.Header.Set(HeaderSdkDate, "20060102T150405Z")
	canonical := CanonicalRequest(req, []string{"x-sdk-date"}, payloadHash(req, nil))
	sig := Signature("SecretKey", StringToSign(canonical, "20060102T150405Z"))
	if want := "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"; sig != want {
		t.Fatalf("signature %s, want %s (canonical %q)", sig, want, canonical)
	}
}

// TestSignVectors checks Sign end to end. Each canonical request is written out by hand, and
// each signature was computed from it with Python's hmac module, independently of this code.
func TestSignVectors(t *testing.T) {
	date := time.Date(2026, 11, 26, 8, 30, 0, 0, time.UTC)
	cases := []struct {
		name, method, url, body string
		keys                    Keys
		wantCanonical           string
		wantAuthorization       string
	}{
		{
			name: "repeated query keys", method: "GET",
			url:  "https://metastudio.cn-north-4.myhuaweicloud.com/v2/p1/ies/task?resource=qa&resource=intent&begin_time=1&business_id=b%201",
			keys: Keys{AccessKey: "AK1", SecretKey: "SK1"},
			wantCanonical: "GET\n/v2/p1/ies/task/\nbegin_time=1&business_id=b%201&resource=intent&resource=qa\n" +
				"host:metastudio.cn-north-4.myhuaweicloud.com\nx-project-id:p1\nx-sdk-date:20261126T083000Z\n\n" +
				"host;x-project-id;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			wantAuthorization: "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-project-id;x-sdk-date, Signature=16e85aeb2d65854d2c822b816c008c0f2bfd4899c129dda3719707fc68a3bf5f",
		},
		{
			name: "escaped path segments", method: "GET",
			url:  "https://h.example.com/v2/p1/ies/task/a%20b%2Fc~d%C3%A9",
			keys: Keys{AccessKey: "AK1", SecretKey: "SK1"},
			wantCanonical: "GET\n/v2/p1/ies/task/a%20b%2Fc~d%C3%A9/\n\n" +
				"host:h.example.com\nx-project-id:p1\nx-sdk-date:20261126T083000Z\n\n" +
				"host;x-project-id;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			wantAuthorization: "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-project-id;x-sdk-date, Signature=94ccdbc82b7d901c02ba7ecac98f8ac1720479fdbc974adba75b956c9deaba30",
		},
		{
			name: "body", method: "POST",
			url:  "https://h.example.com/v3/auth/tokens?nocatalog=true",
			body: `{"a":1}`,
			keys: Keys{AccessKey: "AK1", SecretKey: "SK1"},
			wantCanonical: "POST\n/v3/auth/tokens/\nnocatalog=true\n" +
				"host:h.example.com\nx-project-id:p1\nx-sdk-date:20261126T083000Z\n\n" +
				"host;x-project-id;x-sdk-date\n015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862",
			wantAuthorization: "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-project-id;x-sdk-date, Signature=3d1a16cd16efb2b8e273e29f47cc853022c0dbbdf5d95645e80802f273b13671",
		},
		{
			name: "security token", method: "GET",
			url:  "https://h.example.com/v2/p1/ies/task/t1",
			keys: Keys{AccessKey: "TMPAK", SecretKey: "TMPSK", SecurityToken: "tok+/="},
			wantCanonical: "GET\n/v2/p1/ies/task/t1/\n\n" +
				"host:h.example.com\nx-project-id:p1\nx-sdk-date:20261126T083000Z\nx-security-token:tok+/=\n\n" +
				"host;x-project-id;x-sdk-date;x-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			wantAuthorization: "SDK-HMAC-SHA256 Access=TMPAK, SignedHeaders=host;x-project-id;x-sdk-date;x-security-token, Signature=5da1be100b20050148cf4c1efab1ac04c4d2b1a661c2dd724418039dbf92a7fe",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(HeaderProjectID, "p1")
			req.Header.Set("Content-Type", "application/json")
			Sign(req, []byte(tc.body), tc.keys, date)
			a, err := ParseAuthorization(req.Header.Get("Authorization"))
			if err != nil {
				t.Fatal(err)
			}
			if got := CanonicalRequest(req, a.SignedHeaders, payloadHash(req, []byte(tc.body))); got != tc.wantCanonical {
				t.Errorf("canonical request:\n%q\nwant\n%q", got, tc.wantCanonical)
			}
			if got := req.Header.Get("Authorization"); got != tc.wantAuthorization {
				t.Errorf("Authorization:\n%s\nwant\n%s", got, tc.wantAuthorization)
			}
			if err := Verify(req, []byte(tc.body), a, tc.keys.SecretKey); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if tc.body != "" {
				if err := Verify(req, []byte(tc.body+" "), a, tc.keys.SecretKey); err == nil {
					t.Error("Verify accepted a changed body")
				}
			}
			if tc.keys.SecurityToken != "" {
				req.Header.Set(HeaderSecurityToken, "other")
				if err := Verify(req, nil, a, tc.keys.SecretKey); err == nil {
					t.Error("Verify accepted a changed security token: it is not signed")
				}
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://h.example.com/v2/p1/ies/task/t1", nil)
	Sign(req, nil, Keys{AccessKey: "AK", SecretKey: "SK"}, time.Unix(0, 0))
	a, _ := ParseAuthorization(req.Header.Get("Authorization"))
	noDate := a
	noDate.SignedHeaders = []string{"host"}
	if err := Verify(req, nil, noDate, "SK"); err == nil || !strings.Contains(err.Error(), "x-sdk-date") {
		t.Errorf("want an error about x-sdk-date, got %v", err)
	}
	unsorted := a
	unsorted.SignedHeaders = []string{"x-sdk-date", "host"}
	if err := Verify(req, nil, unsorted, "SK"); err == nil {
		t.Error("Verify accepted unsorted SignedHeaders")
	}
	for _, h := range []string{"", "Basic abc", "SDK-HMAC-SHA256 Access=AK", "SDK-HMAC-SHA256 garbage"} {
		if _, err := ParseAuthorization(h); err == nil {
			t.Errorf("ParseAuthorization(%q) accepted it", h)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	req, _ := http.NewRequest("GET", "https://metastudio.cn-north-4.myhuaweicloud.com/v2/0123456789abcdef0123456789abcdef/ies/task/fd1c56acbb2c4b1aa24ba37df99f3129", nil)
	req.Header.Set(HeaderProjectID, "0123456789abcdef0123456789abcdef")
	keys := Keys{AccessKey: "QTWAOYTTINDUT2QVKYUC", SecretKey: "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		Sign(req, nil, keys, now)
	}
}

// TestSignLeavesTheRequestAlone: signing adds its headers and changes nothing else; the
// values it signs are trimmed copies.
func TestSignLeavesTheRequestAlone(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://h.example.com/v2/p/ies/task/t", nil)
	req.Header["X-Spaced"] = []string{"  padded value  ", " second "}
	req.Header.Set("User-Agent", " agent ")
	Sign(req, nil, Keys{AccessKey: "AK", SecretKey: "SK"}, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	if got := req.Header["X-Spaced"]; len(got) != 2 || got[0] != "  padded value  " || got[1] != " second " {
		t.Errorf("signing changed a header value: %q", got)
	}
	if got := req.Header.Get("User-Agent"); got != " agent " {
		t.Errorf("signing changed User-Agent: %q", got)
	}
}

// TestSignLeavesOutUnderscores: like the SDK, the signer does not sign a header whose name
// contains "_" (proxies drop such headers), whatever else it signs.
func TestSignLeavesOutUnderscores(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://h.example.com/v2/p/ies/task/t", nil)
	req.Header[http.CanonicalHeaderKey("X-Project-Id")] = []string{"p"}
	req.Header["X-Custom_Header"] = []string{"dropped by proxies"}
	req.Header["X_Other"] = []string{"too"}
	Sign(req, nil, Keys{AccessKey: "AK", SecretKey: "SK"}, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	a, err := ParseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.SignedHeaders, ";"); got != "host;x-project-id;x-sdk-date" {
		t.Errorf("SignedHeaders=%s, want host;x-project-id;x-sdk-date", got)
	}
}
