package auth

import (
	"context"
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
	a := New(config.Credentials{TokenFile: path}, Options{})
	a.(*TokenAuth).token.settle = 0 // adopt changes at once; TestHalfWrittenPair covers settling
	get := func() string {
		req, _ := http.NewRequest("GET", "https://h.example.com/v2/p/ies/task/t", nil)
		if err := a.Authenticate(context.Background(), req, nil); err != nil {
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
	// While a secret manager replaces the file, the last good token stays in use.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "token-two-LONGER" {
		t.Fatalf("while the file is missing: token %q, want the last good one", got)
	}
	// With no good token ever read, a missing file is an error that shows no secret.
	fresh := New(config.Credentials{TokenFile: path}, Options{})
	req, _ := http.NewRequest("GET", "https://h.example.com/", nil)
	if err := fresh.Authenticate(context.Background(), req, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing token file must fail and say why: %v", err)
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
			s := New(tc.creds, Options{Now: func() time.Time { return now }}).(*Signer)
			got, _ := http.NewRequest("GET", "https://h.example.com/v2/p/ies/task/t", nil)
			if err := s.Authenticate(context.Background(), got, nil); err != nil {
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

// TestHalfWrittenPair: a secret manager writes the new AK, then the new SK. In between,
// the new AK must not be used with the old SK: changed files are adopted together, once
// they have settled.
func TestHalfWrittenPair(t *testing.T) {
	dir := t.TempDir()
	akFile, skFile := filepath.Join(dir, "ak"), filepath.Join(dir, "sk")
	write(t, akFile, "AK1")
	write(t, skFile, "SK1")
	s := New(config.Credentials{AccessKeyFile: akFile, SecretKeyFile: skFile}, Options{}).(*Signer)
	s.keys.settle = time.Hour // every file written in this test is still settling
	check := func(wantAK, wantSK string) uint64 {
		t.Helper()
		keys, err := s.Keys()
		if err != nil {
			t.Fatal(err)
		}
		if keys.AccessKey != wantAK || keys.SecretKey != wantSK {
			t.Fatalf("keys %s/%s, want %s/%s", keys.AccessKey, keys.SecretKey, wantAK, wantSK)
		}
		return s.Generation()
	}
	gen1 := check("AK1", "SK1") // nothing to fall back on at start: used at once
	write(t, akFile, "AK2")
	check("AK1", "SK1")
	write(t, skFile, "SK2")
	if gen := check("AK1", "SK1"); gen != gen1 {
		t.Errorf("generation moved to %d while the old pair is in use", gen)
	}
	settled := time.Now().Add(-2 * time.Hour)
	for _, f := range []string{akFile, skFile} {
		if err := os.Chtimes(f, settled, settled); err != nil {
			t.Fatal(err)
		}
	}
	if gen := check("AK2", "SK2"); gen == gen1 {
		t.Error("the generation must change with the new pair, so the AK guard tests it alone")
	}
	// A file that disappears while being replaced keeps the last good pair in use.
	if err := os.Remove(skFile); err != nil {
		t.Fatal(err)
	}
	check("AK2", "SK2")
}
