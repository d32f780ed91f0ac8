package auth

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	// Write a new file and rename it over the old one, as secret managers and Kubernetes do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTokenFileIsReReadWhenItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write(t, path, "token-one\n")
	a := New(config.Credentials{TokenFile: path})
	get := func() string {
		req, _ := http.NewRequest("GET", "https://h.example.com/v2/p/ies/task/t", nil)
		if err := a.Authenticate(req, nil); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("Authorization") != "" {
			t.Error("token auth must not sign")
		}
		return req.Header.Get(HeaderAuthToken)
	}
	if got := get(); got != "token-one" {
		t.Fatalf("token %q", got)
	}
	write(t, path, "token-two-longer")
	if got := get(); got != "token-two-longer" {
		t.Fatalf("after rotation: token %q, want the new one", got)
	}
	// Same size, new content, new file: still noticed.
	write(t, path, "token-two-LONGER")
	if got := get(); got != "token-two-LONGER" {
		t.Fatalf("after a same-size rotation: token %q", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://h.example.com/", nil)
	err := a.Authenticate(req, nil)
	if err == nil || strings.Contains(err.Error(), "token-two") {
		t.Errorf("a missing token file must fail without showing the old token: %v", err)
	}
}

func TestSignerFromFilesAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "ak"), "FILEAK\n")
	write(t, filepath.Join(dir, "sk"), "file-sk\n")
	write(t, filepath.Join(dir, "st"), "file-security-token\n")
	cases := []struct {
		name  string
		creds config.Credentials
		keys  Keys
	}{
		{"files", config.Credentials{AccessKeyFile: filepath.Join(dir, "ak"), SecretKeyFile: filepath.Join(dir, "sk"),
			SecurityTokenFile: filepath.Join(dir, "st")}, Keys{"FILEAK", "file-sk", "file-security-token"}},
		{"inline", config.Credentials{AccessKey: "INLINEAK", SecretKey: "inline-sk"}, Keys{"INLINEAK", "inline-sk", ""}},
		{"environment", config.Credentials{AccessKey: "ENVAK", SecretKey: "env-sk", SecurityToken: "env-st", FromEnv: "CLOUD_SDK_AK/CLOUD_SDK_SK"},
			Keys{"ENVAK", "env-sk", "env-st"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
			s := New(tc.creds).(*Signer)
			s.Now = func() time.Time { return now }
			got, _ := http.NewRequest("GET", "https://h.example.com/v2/p/ies/task/t", nil)
			if err := s.Authenticate(got, nil); err != nil {
				t.Fatal(err)
			}
			want, _ := http.NewRequest("GET", "https://h.example.com/v2/p/ies/task/t", nil)
			Sign(want, nil, tc.keys, now)
			for _, h := range []string{"Authorization", HeaderSdkDate, HeaderSecurityToken} {
				if got.Header.Get(h) != want.Header.Get(h) {
					t.Errorf("%s: %q, want %q", h, got.Header.Get(h), want.Header.Get(h))
				}
			}
		})
	}
}
