package simulator

import (
	"net/http"
	"testing"
)

// The simulator's canonicaliser against the vectors Huawei publishes, written out here
// rather than computed by the exporter's signer.

func TestVerifierPublishedVector(t *testing.T) {
	const (
		sk  = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
		sig = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
	)
	req, _ := http.NewRequest("GET", "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?marker=13551d6b-755d-4757-b956-536f674975c0&limit=2", nil)
	req.Host = req.URL.Host // as a server sees it
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Sdk-Date", "20191115T033655Z")
	signed := []string{"content-type", "host", "x-sdk-date"}
	want := "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\nlimit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n" +
		"content-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n\n" +
		"content-type;host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got, err := canonicalRequest(req, nil, signed); err != nil || got != want {
		t.Fatalf("canonical request:\n%q (%v)\nwant\n%q", got, err, want)
	}
	a, err := parseAuthorization("SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=" + sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSignature(req, nil, a, sk); err != nil {
		t.Errorf("the published vector fails: %v", err)
	}
	if err := checkSignature(req, nil, a, "wrong"); err == nil {
		t.Error("a wrong SK passes")
	}
}

func TestVerifierSDKVector(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://example.com/path?limit=1", nil)
	req.Host = req.URL.Host
	req.Header.Set("X-Sdk-Date", "20060102T150405Z")
	req.Header.Set("X-Custom_Header", "not signed") // the SDK leaves names with "_" out
	a, err := parseAuthorization("SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSignature(req, nil, a, "SecretKey"); err != nil {
		t.Errorf("the SDK's vector fails: %v", err)
	}
}

func TestVerifierQuery(t *testing.T) {
	for raw, want := range map[string]string{
		"":                          "",
		"limit=2&marker=a":          "limit=2&marker=a",
		"b=2&a=z&a=y":               "a=y&a=z&b=2",
		"business_id=b%2B1%202~":    "business_id=b%2B1%202~",
		"business_id=b%2B1+2~":      "business_id=b%2B1%2B2~", // "+" on the wire is a plus sign
		"r=%e4%b8%ad":               "r=%E4%B8%AD",
		"flag":                      "flag=",
		"name=cn-north-4&name=a.b_": "name=a.b_&name=cn-north-4",
		"r=%E7%9F%A5&r=a%2Bb":       "r=a%2Bb&r=%E7%9F%A5", // sorted as decoded: "a+b" < "知"
	} {
		if got, err := canonicalQueryOf(raw); err != nil || got != want {
			t.Errorf("canonical query of %q: %q (%v), want %q", raw, got, err, want)
		}
	}
	if _, err := canonicalQueryOf("a=%zz"); err == nil {
		t.Error("a malformed escape passes")
	}
	if got, err := canonicalPath("/v2/p%2Fq/ies/task"); err != nil || got != "/v2/p%2Fq/ies/task/" {
		t.Errorf("canonical path %q (%v)", got, err)
	}
}
