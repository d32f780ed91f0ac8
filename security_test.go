package main

// Security: TLS and basic auth end to end, private CAs through SSL_CERT_FILE, running as
// nobody in a read-only directory, server timeouts, and no secret in anything the
// exporter writes.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"golang.org/x/crypto/bcrypt"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// TestMain lets a test run this test binary as the exporter itself (for the subprocess
// tests below): with METASTUDIO_EXPORTER_RUN_MAIN set, it is main().
func TestMain(m *testing.M) {
	if os.Getenv("METASTUDIO_EXPORTER_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "metastudio-exporter-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("prom-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := writeFile(t, dir, "web.yml", "tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+
		"\nbasic_auth_users:\n  prometheus: "+string(hash)+"\n")
	cfg := writeFile(t, dir, "c.yml", "region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [t1]\n")
	addr, stop := startExporter(t, testEnv, "--config.file="+cfg, "--web.config.file="+webConfig)
	defer stop()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path, user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", "https://"+addr+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/metrics", "/-/healthy", "/-/ready", "/probe?task=t1", "/sd", "/config", "/"} {
		if code, _ := get(path, "", ""); code != 401 {
			t.Errorf("%s without credentials: %d, want 401", path, code)
		}
		code, body := get(path, "prometheus", "wrong")
		if code != 401 || strings.Contains(body, "prometheus") || strings.Contains(body, "wrong") || strings.Contains(body, "metastudio") {
			t.Errorf("%s with a bad password: %d %q; want a 401 that reveals nothing", path, code, body)
		}
	}
	if code, body := get("/metrics", "prometheus", "prom-password"); code != 200 || !strings.Contains(body, "metastudio_task_scrape_success") {
		t.Errorf("with TLS and good credentials: %d", code)
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain http was served on the TLS port")
		}
	}
}

func TestServerTimeouts(t *testing.T) {
	s := newServer(http.NotFoundHandler(), log.NewNopLogger())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Errorf("a server limit is unset: %+v", s)
	}
	if s.WriteTimeout < config.MaxScrapeTimeout+5*time.Second {
		t.Errorf("write timeout %s is shorter than the longest scrape + 5 s", s.WriteTimeout)
	}
}

// subprocess runs this test binary as the exporter with args and env.
func subprocess(t *testing.T, exe string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = append([]string{"METASTUDIO_EXPORTER_RUN_MAIN=1", "PATH=/usr/bin:/bin"}, env...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

func waitFor(t *testing.T, url string, out *bytes.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(body)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200; output:\n%s", url, out)
	return ""
}

// TestPrivateCAAndNonRoot runs the exporter as nobody (uid 65534) in a read-only working
// directory, against an https simulator whose certificate only SSL_CERT_FILE vouches for.
func TestPrivateCAAndNonRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to uid 65534")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "metastudio-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, _ := selfSigned(t, dir)
	sim := simulator.New(simulator.Options{Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject})
	sim.SetTask("t1", map[string]any{"task_id": "t1", "total_count": 7})
	srv := httptest.NewUnstartedServer(sim)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	exe := filepath.Join(dir, "exporter")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "config.yml", "region: cn-north-4\nproject_id: "+e2eProject+"\nendpoint: "+srv.URL+"\ntasks: [t1]\n")
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{dir, filepath.Join(dir, "config.yml"), certFile} {
		if err := os.Chmod(f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := testkit.FreeAddr(t)
	cmd, out := subprocess(t, exe, []string{"SSL_CERT_FILE=" + certFile, "CLOUD_SDK_AK=" + e2eAK, "CLOUD_SDK_SK=" + e2eSK},
		"--config.file="+filepath.Join(dir, "config.yml"), "--web.listen-address="+addr)
	cmd.Dir = readOnly
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	waitFor(t, "http://"+addr+"/-/ready", out)
	body := waitFor(t, "http://"+addr+"/metrics", out)
	if !strings.Contains(body, `metastudio_task_items{project="default",task_id="t1"} 7`) {
		t.Errorf("as nobody, with the CA from SSL_CERT_FILE, the task was not read:\n%s\n%s", body, out)
	}
}

// TestNoSecretAnywhere collects every byte the exporter writes during runs full of
// failures (debug logs, every page, error answers) and looks for each secret.
func TestNoSecretAnywhere(t *testing.T) {
	const (
		securityToken = "security-token-value-that-must-not-leak"
		password      = "iam-password-value-that-must-not-leak"
		token         = "x-auth-token-value-that-must-not-leak"
		sk            = "secret-key-value-that-must-not-leak"
	)
	sim := simulator.New(simulator.Options{Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject,
		IAMUsers: []simulator.IAMUser{{Domain: "d", User: "u", Password: "the-right-one"}}, ErrorRate: 0.3, MalformedRate: 0.2})
	sim.SetTask("t1", map[string]any{"task_id": "t1"})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	base := "region: cn-north-4\nproject_id: " + e2eProject + "\nendpoint: " + srv.URL + "\niam_endpoint: " + srv.URL + "\ntasks: [t1, t2]\n"
	configs := map[string]string{
		"inline SK":     base + "credentials: {access_key: " + e2eAK + ", secret_key: " + sk + "}\n",
		"SK file":       base + "credentials: {access_key: " + e2eAK + ", secret_key_file: " + writeFile(t, dir, "sk", sk) + ", security_token_file: " + writeFile(t, dir, "st", securityToken) + "}\n",
		"IAM password":  base + "credentials: {iam_password: {domain_name: d, user_name: u, password_file: " + writeFile(t, dir, "pw", password) + "}}\n",
		"token file":    base + "credentials: {token_file: " + writeFile(t, dir, "tok", token) + "}\n",
		"environment":   base,
		"bad reload":    base + "credentials: {access_key: " + e2eAK + ", secret_key: " + sk + "}\n",
		"config errors": "region: cn-north-4\ncredentials: {access_key: A, secret_key: " + sk + ", token_file: /nonexistent}\ntasks: [t1]\n",
	}
	env := func(k string) string {
		return map[string]string{"CLOUD_SDK_AK": e2eAK, "CLOUD_SDK_SK": sk, "CLOUD_SDK_SECURITY_TOKEN": securityToken}[k]
	}
	var everything strings.Builder
	for name, text := range configs {
		path := writeFile(t, dir, "config.yml", text)
		addr := testkit.FreeAddr(t)
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"--config.file=" + path, "--web.listen-address=" + addr, "--log.level=debug"}, &stdout, &stderr, env)
		}()
		if name != "config errors" {
			for i := 0; i < 100; i++ {
				if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
					resp.Body.Close()
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if name == "bad reload" {
				writeFile(t, dir, "config.yml", "region: [\nsecret_key: "+sk+"\n")
			}
			for _, req := range []struct{ method, path string }{
				{"GET", "/metrics"}, {"GET", "/metrics"}, {"GET", "/config"}, {"GET", "/"}, {"GET", "/sd"},
				{"GET", "/probe?task=t1"}, {"GET", "/probe?task=" + sk}, {"GET", "/nope"}, {"POST", "/-/reload"},
			} {
				r, _ := http.NewRequest(req.method, "http://"+addr+req.path, nil)
				if resp, err := http.DefaultClient.Do(r); err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					everything.Write(body)
				}
			}
		}
		cancel()
		<-done
		everything.WriteString(stdout.String() + stderr.String())
	}
	out := everything.String()
	if !strings.Contains(out, "metastudio_task_scrape_success") || !strings.Contains(out, "level=debug") {
		t.Fatalf("the runs produced too little to check:\n%s", out)
	}
	for _, secret := range []string{sk, securityToken, password, token} {
		if strings.Contains(out, secret) {
			i := strings.Index(out, secret)
			t.Errorf("secret %q appears in the exporter's output: ...%s...", secret, out[max(0, i-200):min(len(out), i+100)])
		}
	}
}
