package main

// The fault matrix: the exporter against the simulator while the API or the network
// misbehaves, one test per fault (go test -race -count=1 -run 'TestFault' .). Each test
// checks that /metrics keeps answering 200, that the affected tasks report
// metastudio_task_scrape_success 0 (or their cached values, where the contract serves
// them), that a healthy control task on the same scrape is unaffected, that the call is
// counted in metastudio_api_requests_total, that no goroutine outlives a scrape, and that
// after the exporter is closed goleak finds nothing.
//
// Tests may only send traffic to loopback. Every transport built here dials through
// dialGuard, which refuses, and fails the test for, any address that is not a loopback IP
// literal; host names (the DNS and TLS rows) are mapped to loopback by a switchboard that
// stands in for DNS. docs/reliability.md (## Fault matrix) lists the rows.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"go.uber.org/goleak"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// faultHost is the MetaStudio endpoint of region cn-north-4, which the DNS and TLS rows
// configure; the switchboard maps it to a loopback server, or to no address at all.
const faultHost = "metastudio.cn-north-4.myhuaweicloud.com"

// faultConcurrency is scrape.concurrency in the fault tests: the keep-alive pool holds at
// most this many connections.
const faultConcurrency = 4

// faultScrapeConfig turns the rate limit off, so that only the 429 row meets it.
const faultScrapeConfig = "scrape: {timeout: 10s, concurrency: 4, max_requests_per_second: 0}\n"

// errNotLoopback is the error of a dial that the guard refused.
var errNotLoopback = errors.New("dial guard: refused, not a loopback address")

// dialGuard dials loopback IP literals only. Anything else (another address, a host name,
// a network other than TCP) is reported through errorf (t.Errorf) and refused before a
// socket exists. Two more locks stand behind that check: the net.Dialer's Control refuses
// to connect a socket to a non-loopback address (it runs before connect(2), so no packet
// leaves), and its resolver refuses to send any DNS query.
type dialGuard struct {
	errorf func(format string, args ...any)
	dialer net.Dialer

	sockets atomic.Int64 // sockets that reached Control, just before connect(2)
	lookups atomic.Int64 // DNS queries the resolver tried to send
	read    atomic.Int64 // bytes read from every connection dialed

	mu     sync.Mutex
	dialed []string
}

func newDialGuard(errorf func(format string, args ...any)) *dialGuard {
	g := &dialGuard{errorf: errorf}
	g.dialer = net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			g.sockets.Add(1)
			if !loopbackAddress(address) {
				g.errorf("dial guard: a socket was about to connect to %s %s, which is not loopback", network, address)
				return errNotLoopback
			}
			return nil
		},
		Resolver: &net.Resolver{PreferGo: true, Dial: func(_ context.Context, network, address string) (net.Conn, error) {
			g.lookups.Add(1)
			g.errorf("dial guard: a DNS query to %s %s was about to be sent", network, address)
			return nil, errNotLoopback
		}},
	}
	return g
}

// loopbackAddress reports whether address is host:port with host a loopback IP literal.
func loopbackAddress(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// DialContext is the guarded dial, for http.Transport.DialContext.
func (g *dialGuard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if !strings.HasPrefix(network, "tcp") || !loopbackAddress(address) {
		g.errorf("dial guard: a test tried to dial %s %s, which is not a loopback address", network, address)
		return nil, &net.OpError{Op: "dial", Net: network, Err: errNotLoopback}
	}
	g.mu.Lock()
	g.dialed = append(g.dialed, address)
	g.mu.Unlock()
	c, err := g.dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, read: &g.read}, nil
}

// Dialed lists the addresses dialed so far.
func (g *dialGuard) Dialed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.dialed...)
}

// countingConn counts the bytes the client reads off the network.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// switchboard stands in for DNS: it maps the host:port a client dials to a loopback
// address and dials that through the guard. A host name with no route fails the way a
// resolver that does not know the name fails (*net.DNSError, IsNotFound), without any
// query. IP literals go straight to the guard.
type switchboard struct {
	guard *dialGuard

	mu     sync.Mutex
	routes map[string]string
}

func (s *switchboard) route(from, to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.routes == nil {
		s.routes = map[string]string{}
	}
	if to == "" {
		delete(s.routes, from)
		return
	}
	s.routes[from] = to
}

func (s *switchboard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return s.guard.DialContext(ctx, network, address)
	}
	s.mu.Lock()
	to, ok := s.routes[address]
	s.mu.Unlock()
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	return s.guard.DialContext(ctx, network, to)
}

// faultRig is one row's world: the simulator, the servers, the exporter and its client.
type faultRig struct {
	t      *testing.T
	sim    *simulator.Server
	guard  *dialGuard
	board  *switchboard
	roots  *x509.CertPool
	logs   *testkit.Buffer
	e      *exporter
	h      http.Handler
	client *metastudio.Client
	tr     *http.Transport
	base   int // goroutines before the exporter started, servers included
	own    int // the exporter's long-lived goroutines
	extra  int // goroutines of calls a test leaves in flight on purpose
}

// newFaultRig prepares a row. Its first cleanup, which runs last, is goleak's check: once
// the exporter's context is cancelled, the idle connections closed and the servers
// closed, no goroutine of this test may remain. Goroutines that were already running
// when the test started (other tests' long-lived ones) are the only ones ignored.
func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	r := &faultRig{
		t:     t,
		sim:   simulator.New(simulator.Options{Credentials: map[string]string{e2eAK: e2eSK}, ProjectID: e2eProject}),
		guard: newDialGuard(t.Errorf),
		roots: x509.NewCertPool(),
		logs:  &testkit.Buffer{},
	}
	r.board = &switchboard{guard: r.guard}
	return r
}

// running and finished add tasks to the simulator: a running task is fetched on every
// scrape; a finished one is served from the cache (cache.finished_ttl, 10m) once known.
func (r *faultRig) running(ids ...string) {
	for _, id := range ids {
		r.sim.SetTask(id, map[string]any{"task_id": id, "task_name": "import " + id, "resource": "qa_pair",
			"begin_time": 1744276967708, "total_count": 10, "success_count": 4, "failure_count": 1, "task_status": 1})
	}
}

func (r *faultRig) finished(ids ...string) {
	for _, id := range ids {
		r.sim.SetTask(id, map[string]any{"task_id": id, "task_name": "import " + id, "resource": "qa_pair",
			"begin_time": 1744276967708, "end_time": 1744277967708, "total_count": 10, "success_count": 9,
			"failure_count": 1, "task_status": 2})
	}
}

// serve starts a plain HTTP server on loopback, closed at cleanup.
func (r *faultRig) serve(h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	r.t.Cleanup(srv.Close)
	return srv
}

// serveTLS starts an HTTPS server on loopback with cert (nil: httptest's own, which is for
// example.com and 127.0.0.1), closed at cleanup. Its handshake errors are not logged.
func (r *faultRig) serveTLS(h http.Handler, cert *tls.Certificate) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	srv.StartTLS()
	r.t.Cleanup(srv.Close)
	r.roots.AddCert(srv.Certificate())
	return srv
}

// hostCert is a self-signed certificate for host alone.
func hostCert(t *testing.T, host string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// start builds the exporter for endpoint and tasks, as the binary does, then gives it a
// client whose transport is the exporter's own (metastudio.NewTransport) with three
// changes: it dials through the switchboard and the guard, it trusts the test
// certificates (never skip-verify), and it ignores proxy variables (so the DNS row cannot
// become a proxy dial). The goroutine baseline is taken just before.
func (r *faultRig) start(endpoint, extra string, tasks ...string) {
	t := r.t
	t.Helper()
	cfg, _, err := config.Parse([]byte(opsConfig(endpoint, e2eSK, extra, tasks...)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	r.base = runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r.e, err = newExporter(ctx, cfg, options{getenv: noEnv, logger: log.NewLogfmtLogger(r.logs), now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.h, err = r.e.handler("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := r.e.projects[collector.DefaultProject]
	creds := auth.New(cfg.Credentials, auth.Options{Now: time.Now, IAMEndpoint: cfg.IAMEndpointURL(), Region: cfg.Region,
		ProjectID: cfg.ProjectID, Observer: p.apiMetrics})
	r.tr = metastudio.NewTransport(cfg.Scrape.Concurrency)
	r.tr.Proxy = nil
	r.tr.DialContext = r.board.DialContext
	r.tr.TLSClientConfig = &tls.Config{RootCAs: r.roots}
	r.client, err = metastudio.NewClient(metastudio.Options{
		Endpoint: cfg.MetaStudioEndpoint(), ProjectID: cfg.ProjectID, Auth: creds, MaxConns: cfg.Scrape.Concurrency,
		Observer: p.apiMetrics, UserAgent: exporterName + "/faults", Now: time.Now, Transport: r.tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.client.CloseIdleConnections) // runs before cancel and the servers' Close
	r.e.refresher.SetProject(collector.DefaultProject, collector.NewAPI(r.client), p.guard, p.rate)
	p.guard.Reset(creds, cfg.Credentials.FailureBackoff)
	// The exporter's long-lived goroutines: its reload loop, the refresher's dispatcher,
	// housekeeping and one worker per scrape.concurrency (discovery is off).
	r.own = 3 + cfg.Scrape.Concurrency
	r.waitGoroutines("after the exporter started", r.base+r.own)
}

// faultScrape is one answer of /metrics.
type faultScrape struct {
	body     string
	families map[string]string // parseExposition's: one string of sample lines per family
	took     time.Duration
}

// scrape asks /metrics as Prometheus would, with its timeout header, checks that the
// answer is a 200 whose exposition parses (label values valid UTF-8), then checks that no
// goroutine of the scrape remains.
func (r *faultRig) scrape(timeoutSeconds string) faultScrape {
	t := r.t
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutSeconds)
	rec := httptest.NewRecorder()
	start := time.Now()
	r.h.ServeHTTP(rec, req)
	s := faultScrape{body: rec.Body.String(), took: time.Since(start)}
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d: %s", rec.Code, trim(s.body))
	}
	if !utf8.ValidString(s.body) {
		t.Errorf("the exposition is not valid UTF-8")
	}
	s.families = parseExposition(t, s.body)
	r.settle()
	return s
}

// settle checks that the scrape left no goroutine behind. With the keep-alive pool open,
// what may remain besides the baseline is the exporter's own (reload loop, refresher) and, per pooled connection
// (at most scrape.concurrency), the transport's read and write loops and the server's
// connection goroutine. Once the pool is closed, only the exporter's own.
func (r *faultRig) settle() {
	r.t.Helper()
	r.waitGoroutines("with the keep-alive pool open", r.base+r.own+r.extra+3*faultConcurrency)
	r.client.CloseIdleConnections()
	r.waitGoroutines("after closing idle connections", r.base+r.own+r.extra)
}

// waitGoroutines polls runtime.NumGoroutine until it is at most limit, for 5 s.
func (r *faultRig) waitGoroutines(when string, limit int) {
	r.t.Helper()
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= limit {
			if d := time.Since(start); d > 100*time.Millisecond {
				r.t.Logf("%s: the goroutines settled after %s", when, d)
			}
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			r.t.Errorf("%s: %d goroutines, want at most %d (baseline %d):\n%s", when, n, limit, r.base, buf)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value is the sample of family name with exactly these labels (as exposed, sorted), if any.
func (s faultScrape) value(name, labels string) (float64, bool) {
	prefix := name + " "
	if labels != "" {
		prefix = name + "{" + labels + "} "
	}
	for _, line := range strings.Split(s.families[name], "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// calls is metastudio_api_requests_total for ShowTask and code (0 when absent).
func (s faultScrape) calls(code string) float64 {
	v, _ := s.value("metastudio_api_requests_total", `code="`+code+`",operation="ShowTask",project="default"`)
	return v
}

// series lists every metastudio_task_* sample of one task.
func (s faultScrape) series(id string) []string {
	var out []string
	for name, lines := range s.families {
		if !strings.HasPrefix(name, "metastudio_task_") {
			continue
		}
		for _, line := range strings.Split(lines, "\n") {
			if strings.Contains(line, `task_id="`+id+`"`) {
				out = append(out, line)
			}
		}
	}
	return out
}

// failed checks that each task reports scrape_success 0 and nothing else.
func (r *faultRig) failed(s faultScrape, ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		if got := s.series(id); len(got) != 1 || got[0] != `metastudio_task_scrape_success{project="default",task_id="`+id+`"} 0` {
			r.t.Errorf("task %s: want scrape_success 0 alone, got %q", id, got)
		}
	}
}

// healthy checks that each task reports scrape_success 1 and its values.
func (r *faultRig) healthy(s faultScrape, ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		v, ok := s.value("metastudio_task_scrape_success", `project="default",task_id="`+id+`"`)
		_, items := s.value("metastudio_task_items", `project="default",task_id="`+id+`"`)
		_, age := s.value("metastudio_task_data_age_seconds", `project="default",task_id="`+id+`"`)
		if !ok || v != 1 || !items || !age {
			r.t.Errorf("task %s: want scrape_success 1 with its values, got %q", id, s.series(id))
		}
	}
}

// wantCalls checks metastudio_api_requests_total{operation="ShowTask",project="default"} code by code; codes
// not listed must be absent.
func (r *faultRig) wantCalls(s faultScrape, want map[string]float64) {
	r.t.Helper()
	var lines []string
	for _, line := range strings.Split(s.families["metastudio_api_requests_total"], "\n") {
		if line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) != len(want) {
		r.t.Errorf("metastudio_api_requests_total has %d series, want %d (%v):\n%s", len(lines), len(want), want, strings.Join(lines, "\n"))
	}
	for code, n := range want {
		if got := s.calls(code); got != n {
			r.t.Errorf("metastudio_api_requests_total{code=%q,operation=\"ShowTask\"} = %v, want %v", code, got, n)
		}
	}
}

// logged checks that the logs contain each text.
func (r *faultRig) logged(texts ...string) {
	r.t.Helper()
	out := r.logs.String()
	for _, text := range texts {
		if !strings.Contains(out, text) {
			r.t.Errorf("the logs lack %q:\n%s", text, out)
		}
	}
}

// TestFaultDialGuard proves the guard: a dial to TEST-NET-1 (192.0.2.1), to another
// non-loopback address or to a host name is refused and reported before any socket
// exists, let alone a packet; behind it, the dialer's Control refuses to connect a socket
// to a non-loopback address and its resolver sends no DNS query; loopback dials work.
func TestFaultDialGuard(t *testing.T) {
	var mu sync.Mutex
	var reports []string
	g := newDialGuard(func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, fmt.Sprintf(format, args...))
	})
	reported := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), reports...)
	}
	ctx := context.Background()

	for i, address := range []string{"192.0.2.1:443", faultHost + ":443", "[2001:db8::1]:443", "10.0.0.1:80", "localhost:80"} {
		conn, err := g.DialContext(ctx, "tcp", address)
		if conn != nil || !errors.Is(err, errNotLoopback) {
			t.Errorf("dial %s through the guard: %v, %v; want it refused", address, conn, err)
		}
		if r := reported(); len(r) != i+1 || !strings.Contains(r[i], address) {
			t.Errorf("dial %s: the guard reported %q, want one report naming it", address, r)
		}
	}
	if _, err := g.DialContext(ctx, "udp", "127.0.0.1:53"); !errors.Is(err, errNotLoopback) {
		t.Errorf("a UDP dial: %v, want it refused", err)
	}
	if g.sockets.Load() != 0 || g.lookups.Load() != 0 || len(g.Dialed()) != 0 {
		t.Errorf("refused dials made %d sockets and %d DNS queries, dialed %v; want none", g.sockets.Load(), g.lookups.Load(), g.Dialed())
	}

	// The way the fault tests use it: in an http.Transport.
	tr := &http.Transport{DialContext: g.DialContext}
	defer tr.CloseIdleConnections()
	before := len(reported())
	if _, err := (&http.Client{Transport: tr}).Get("http://192.0.2.1/"); !errors.Is(err, errNotLoopback) {
		t.Errorf("GET http://192.0.2.1/ through a guarded transport: %v, want the guard's refusal", err)
	}
	if len(reported()) != before+1 || g.sockets.Load() != 0 {
		t.Errorf("GET http://192.0.2.1/: %d reports, %d sockets; want 1 report and no socket", len(reported())-before, g.sockets.Load())
	}

	// The second lock, should the first be bypassed: Control refuses before connect(2).
	before = len(reported())
	if _, err := g.dialer.DialContext(ctx, "tcp", "192.0.2.1:443"); !errors.Is(err, errNotLoopback) {
		t.Errorf("the bare dialer to 192.0.2.1: %v, want Control's refusal", err)
	}
	if g.sockets.Load() != 1 || len(reported()) != before+1 {
		t.Errorf("Control: %d sockets, %d reports; want the one socket refused and reported", g.sockets.Load(), len(reported())-before)
	}
	// The third: a host name reaching the bare dialer sends no DNS query.
	if _, err := g.dialer.DialContext(ctx, "tcp", faultHost+":443"); err == nil {
		t.Error("the bare dialer resolved a host name")
	}
	if g.lookups.Load() == 0 || g.sockets.Load() != 1 {
		t.Errorf("the resolver: %d queries refused, %d sockets; want at least one refused query and no new socket", g.lookups.Load(), g.sockets.Load())
	}

	// Loopback works, and its bytes are counted.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	before = len(reported())
	conn, err := g.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("a loopback dial: %v", err)
	}
	got, _ := io.ReadAll(conn)
	conn.Close()
	if string(got) != "hi" || g.read.Load() != 2 || len(reported()) != before || len(g.Dialed()) != 1 {
		t.Errorf("a loopback dial: read %q (%d counted), %d new reports, dialed %v", got, g.read.Load(), len(reported())-before, g.Dialed())
	}
}

// TestFaultConnectionRefused: the endpoint stops listening. The running task fails with
// no answer (code "error"); the finished one is served from the cache.
func TestFaultConnectionRefused(t *testing.T) {
	r := newFaultRig(t)
	r.running("live")
	r.finished("done")
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, "live", "done")
	s := r.scrape("5")
	r.healthy(s, "live", "done")
	r.wantCalls(s, map[string]float64{"200": 2})

	srv.Close()
	r.base-- // the server's accept loop is gone
	for scrape := 1; scrape <= 2; scrape++ {
		s = r.scrape("5")
		r.failed(s, "live")
		r.healthy(s, "done")
		r.wantCalls(s, map[string]float64{"200": 2, "error": float64(scrape)}) // one call per scrape, no retry
	}
	r.logged(`task_id=live error_code=transport`, "connection refused")
}

// TestFaultResetMidBody: the connection is reset (RST) after the headers and half the body.
func TestFaultResetMidBody(t *testing.T) {
	r := newFaultRig(t)
	r.running("control", "reset")
	r.finished("done")
	wire := simulator.NewWire(r.sim)
	wire.Set("reset", simulator.WireResetMidBody)
	srv := r.serve(wire)
	r.start(srv.URL, faultScrapeConfig, "control", "reset", "done")

	s := r.scrape("5")
	r.failed(s, "reset")
	r.healthy(s, "control", "done")
	r.wantCalls(s, map[string]float64{"200": 3}) // the status line came: the call counts as a 200
	s = r.scrape("5")
	r.failed(s, "reset")
	r.healthy(s, "control", "done")
	r.wantCalls(s, map[string]float64{"200": 5}) // done is cached
	if wire.Broken() != 2 {
		t.Errorf("%d answers were broken, want 2", wire.Broken())
	}
	r.logged(`task_id=reset error_code=read status=200`, "connection reset by peer")

	// Once the wire holds, the task recovers on the next scrape.
	wire.Clear("reset")
	s = r.scrape("5")
	r.healthy(s, "control", "reset", "done")
	r.logged(`msg="Task is scraped again" project=default task_id=reset`)
}

// TestFaultShortBody: Content-Length promises more than is sent before the connection closes.
func TestFaultShortBody(t *testing.T) {
	r := newFaultRig(t)
	r.running("control", "short")
	r.finished("done")
	wire := simulator.NewWire(r.sim)
	wire.Set("short", simulator.WireShortBody)
	srv := r.serve(wire)
	r.start(srv.URL, faultScrapeConfig, "control", "short", "done")

	s := r.scrape("5")
	r.failed(s, "short")
	r.healthy(s, "control", "done")
	r.wantCalls(s, map[string]float64{"200": 3})
	s = r.scrape("5")
	r.failed(s, "short")
	r.healthy(s, "control", "done")
	r.wantCalls(s, map[string]float64{"200": 5})
	r.logged(`task_id=short error_code=read status=200`, "unexpected EOF")
}

// TestFaultHugeBody: a 10 MiB answer (a valid JSON object) is cut at the 1 MiB cap, and the
// client reads little more than that off the network.
func TestFaultHugeBody(t *testing.T) {
	r := newFaultRig(t)
	r.running("control", "huge")
	r.finished("done")
	const size = 10 << 20
	prefix, suffix := `{"task_id":"huge","total_count":1,"task_name":"`, `"}`
	r.sim.SetFault("huge", simulator.Fault{Status: 200, ContentType: "application/json;charset=UTF-8",
		Body: prefix + strings.Repeat("x", size-len(prefix)-len(suffix)) + suffix})
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, "control", "huge", "done")

	s := r.scrape("5")
	r.failed(s, "huge")
	r.healthy(s, "control", "done")
	r.wantCalls(s, map[string]float64{"200": 3})
	r.logged(`task_id=huge error_code=body_too_large status=200`)
	if n := r.guard.read.Load(); n > 3<<20 {
		t.Errorf("the client read %d bytes off the network for a 10 MiB answer; the cap is %d", n, metastudio.MaxBodyBytes)
	}
	s = r.scrape("5")
	r.failed(s, "huge")
	r.wantCalls(s, map[string]float64{"200": 5})
}

// TestFaultInvalidUTF8: string fields carry bytes that are not UTF-8. The task is still
// scraped: JSON decoding replaces each bad byte with U+FFFD, so label values are valid
// UTF-8 and the exposition passes promtool; a count that no longer parses is left out. An
// error body with bad bytes fails its task and leaves the logs valid UTF-8.
func TestFaultInvalidUTF8(t *testing.T) {
	r := newFaultRig(t)
	r.running("control", "badtext", "baderror")
	r.finished("done")
	r.sim.SetFault("badtext", simulator.Fault{Status: 200, ContentType: "application/json;charset=UTF-8",
		Body: "{\"task_id\":\"badtext\",\"task_name\":\"import \xff\xfe batch\",\"resource\":\"qa\xc3(\",\"task_type\":0," +
			"\"operator\":\"op\xed\xa0\x80\",\"user_id\":\"u\x80\",\"task_status\":\"run\xffning\",\"begin_time\":1744276967708," +
			"\"total_count\":5,\"success_count\":\"4\xff\",\"failure_count\":1}"})
	r.sim.SetFault("baderror", simulator.Fault{Status: 400, ContentType: "application/json",
		Body: "{\"error_code\":\"MSS.000000003\",\"error_msg\":\"Invalid \xff\xfe parameter \xc0\xaf\",\"request_id\":\"\xffbad\"}"})
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, "control", "badtext", "baderror", "done")

	s := r.scrape("5") // checks the exposition parses with UTF-8 validation and is valid UTF-8
	r.healthy(s, "control", "done", "badtext")
	r.failed(s, "baderror")
	r.wantCalls(s, map[string]float64{"200": 3, "400": 1})
	info := s.series("badtext")
	joined := strings.Join(info, "\n")
	for _, want := range []string{`task_name="import ` + "\uFFFD\uFFFD" + ` batch"`, `status="run` + "\uFFFD" + `ning"`,
		`metastudio_task_items{project="default",task_id="badtext"} 5`, `metastudio_task_failed_items{project="default",task_id="badtext"} 1`} {
		if !strings.Contains(joined, want) {
			t.Errorf("badtext lacks %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "metastudio_task_succeeded_items") {
		t.Errorf("success_count \"4\\xff\" does not parse and must be left out:\n%s", joined)
	}
	if out := r.logs.String(); !utf8.ValidString(out) || !strings.Contains(out, "task_id=baderror error_code=MSS.000000003 status=400") {
		t.Errorf("logs (valid UTF-8: %v):\n%q", utf8.ValidString(out), out)
	}
	cmd := exec.Command(testkit.Need(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(s.body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestFaultWrongContentType: the exporter judges the body, not the Content-Type. A task
// JSON object served as text/html (or with no Content-Type) is accepted; an HTML page
// with a 200 fails its task as a decode error.
func TestFaultWrongContentType(t *testing.T) {
	r := newFaultRig(t)
	r.running("control", "jsonhtml", "nocontenttype", "htmlpage")
	r.finished("done")
	task := `{"task_id":"%s","resource":"qa_pair","begin_time":1744276967708,"total_count":8,"success_count":8,"failure_count":0}`
	r.sim.SetFault("jsonhtml", simulator.Fault{Status: 200, ContentType: "text/html", Body: fmt.Sprintf(task, "jsonhtml")})
	r.sim.SetFault("nocontenttype", simulator.Fault{Status: 200, Body: fmt.Sprintf(task, "nocontenttype")})
	page := simulator.FaultHTML(200)
	r.sim.SetFault("htmlpage", page)
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, "control", "jsonhtml", "nocontenttype", "htmlpage", "done")

	s := r.scrape("5")
	r.healthy(s, "control", "done", "jsonhtml", "nocontenttype")
	r.failed(s, "htmlpage")
	r.wantCalls(s, map[string]float64{"200": 5})
	if v, _ := s.value("metastudio_task_items", `project="default",task_id="jsonhtml"`); v != 8 {
		t.Errorf("jsonhtml: items %v, want 8", v)
	}
	r.logged(`task_id=htmlpage error_code=decode status=200`, "answer is not a JSON object")
}

// TestFault200ErrorBody: a 200 whose body is an error object, in either spelling, fails
// its task with the code it names; it is not an authentication failure.
func TestFault200ErrorBody(t *testing.T) {
	r := newFaultRig(t)
	r.running("control", "errorcode", "codemessage")
	r.finished("done")
	r.sim.SetFault("errorcode", simulator.Fault{Status: 200, ContentType: "application/json;charset=UTF-8",
		Body: `{"error_code":"MSS.000000002","error_msg":"Internal error.","request_id":"0123456789abcdef0123456789abcdef"}`})
	r.sim.SetFault("codemessage", simulator.Fault{Status: 200, ContentType: "application/json",
		Body: `{"code":"MSS.000000001","message":"Service busy"}`})
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, "control", "errorcode", "codemessage", "done")

	for n := 1; n <= 2; n++ {
		s := r.scrape("5")
		r.failed(s, "errorcode", "codemessage")
		r.healthy(s, "control", "done")
		r.wantCalls(s, map[string]float64{"200": float64(1 + 3*n)}) // done is fetched once
		if v, ok := s.value("metastudio_auth_ok", `project="default"`); !ok || v != 1 {
			t.Errorf("metastudio_auth_ok = %v (%v), want 1: an error body is not an auth failure", v, ok)
		}
	}
	r.logged(`task_id=errorcode error_code=MSS.000000002 status=200 request_id=0123456789abcdef0123456789abcdef`,
		`task_id=codemessage error_code=MSS.000000001 status=200`)
}

// TestFaultRedirect: 301, 302, 307 and 308 to another loopback server. The exporter
// follows none (a re-sent signature would count toward the AK lock): the task fails with
// the 3xx counted, and the other server receives nothing.
func TestFaultRedirect(t *testing.T) {
	r := newFaultRig(t)
	var elsewhere atomic.Int64
	target := r.serve(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		elsewhere.Add(1)
		t.Errorf("the redirect target received %s %s (signed: %v)", req.Method, req.URL, req.Header.Get("Authorization") != "")
	}))
	codes := []int{301, 302, 307, 308}
	tasks := []string{"control"}
	for _, code := range codes {
		id := "moved" + strconv.Itoa(code)
		tasks = append(tasks, id)
		r.running(id)
		r.sim.SetFault(id, simulator.Fault{Status: code,
			Header: map[string]string{"Location": target.URL + "/v2/" + e2eProject + "/ies/task/" + id}})
	}
	r.running("control")
	r.finished("done")
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, append(tasks, "done")...)

	s := r.scrape("5")
	r.healthy(s, "control", "done")
	r.failed(s, tasks[1:]...)
	r.wantCalls(s, map[string]float64{"200": 2, "301": 1, "302": 1, "307": 1, "308": 1})
	r.logged(`task_id=moved301 error_code=http_301 status=301`, `task_id=moved307 error_code=http_307 status=307`)
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests", n)
	}
	for _, addr := range r.guard.Dialed() {
		if addr != srv.Listener.Addr().String() {
			t.Errorf("the exporter dialed %s; only the endpoint %s is expected", addr, srv.Listener.Addr())
		}
	}
}

// TestFaultBurst5xx: three scrapes in a row get 500, 502, 503 and 504 (JSON and nginx
// HTML). One call per task per scrape, no retry, no cool-down, one warning per task; the
// tasks recover as soon as the answers do.
func TestFaultBurst5xx(t *testing.T) {
	r := newFaultRig(t)
	faults := map[string]simulator.Fault{"e500": simulator.FaultInternal(), "e502": simulator.FaultHTML(502),
		"e503": simulator.FaultHTML(503), "e504": simulator.FaultHTML(504)}
	r.running("control", "e500", "e502", "e503", "e504")
	r.finished("done")
	for id, f := range faults {
		r.sim.SetFault(id, f)
	}
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, "control", "e500", "e502", "e503", "e504", "done")

	for n := 1; n <= 3; n++ {
		s := r.scrape("5")
		r.failed(s, "e500", "e502", "e503", "e504")
		r.healthy(s, "control", "done")
		r.wantCalls(s, map[string]float64{"200": float64(n + 1), "500": float64(n), "502": float64(n), "503": float64(n), "504": float64(n)})
		if v, _ := s.value("metastudio_auth_backoff_seconds", `project="default"`); v != 0 {
			t.Errorf("a 5xx started an authentication cool-down of %vs", v)
		}
	}
	if n := r.sim.Requests(simulator.OpShowTask); n != 6+5+5 {
		t.Errorf("%d ShowTask calls in three scrapes, want 16: a retry happened", n)
	}
	if n := strings.Count(r.logs.String(), `msg="Task scrape failed"`); n != 4 {
		t.Errorf("%d warnings, want one per failing task (4):\n%s", n, r.logs)
	}
	r.logged(`task_id=e500 error_code=MSS.000000002 status=500`, `task_id=e502 error_code=http_502 status=502`,
		`task_id=e504 error_code=http_504 status=504`)

	for id := range faults {
		r.sim.ClearFault(id)
	}
	s := r.scrape("5")
	r.healthy(s, "control", "done", "e500", "e502", "e503", "e504")
	if n := strings.Count(r.logs.String(), `msg="Task is scraped again"`); n != 4 {
		t.Errorf("%d recoveries logged, want 4", n)
	}
}

// TestFaultThrottleStorm: every task but the control answers 429. The rate in force drops
// (cut to 0.7 of what was sent, at most once a second), metastudio_api_throttled_total
// counts every 429, and no 429 is retried: at most one call per task per scrape.
func TestFaultThrottleStorm(t *testing.T) {
	r := newFaultRig(t)
	tasks := []string{"control"}
	for i := 1; i <= 8; i++ {
		id := fmt.Sprintf("throttled%d", i)
		tasks = append(tasks, id)
		r.running(id)
		// A 429 that states no quota: the adaptive rate answers it (a stated quota paces).
		r.sim.SetFault(id, simulator.Fault{Status: 429, ContentType: "application/json",
			Body: `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached","request_id":"r1"}`})
	}
	r.running("control")
	r.finished("done")
	tasks = append(tasks, "done")
	srv := r.serve(r.sim)
	r.start(srv.URL, "scrape: {timeout: 10s, concurrency: 4, max_requests_per_second: 20}\n", tasks...)

	previous := int64(0)
	for n := 1; n <= 2; n++ {
		s := r.scrape("10")
		calls := r.sim.Requests(simulator.OpShowTask) - previous
		previous += calls
		if calls > int64(len(tasks)) {
			t.Errorf("scrape %d made %d calls for %d tasks: a retry storm", n, calls, len(tasks))
		}
		r.failed(s, tasks[1:9]...)
		r.healthy(s, "control", "done") // live, or its last values if the budget did not reach it
		throttled, _ := s.value("metastudio_api_throttled_total", `project="default"`)
		if throttled == 0 || throttled != s.calls("429") {
			t.Errorf("scrape %d: metastudio_api_throttled_total %v, 429s counted %v; want them equal and not 0", n, throttled, s.calls("429"))
		}
		if rate, ok := s.value("metastudio_api_rate_limit_per_second", `project="default"`); !ok || rate <= 0 || rate >= 20 {
			t.Errorf("scrape %d: the rate limit in force is %v, want it cut from 20", n, rate)
		}
		if total := s.calls("200") + s.calls("429") + s.calls("error"); int64(total) != previous {
			t.Errorf("scrape %d: %v calls counted, the simulator saw %d", n, total, previous)
		}
	}
	// One warning per throttled task, and one more only where a loaded machine let a call
	// run into the deadline (its error code changed).
	if n := strings.Count(r.logs.String(), `level=warn msg="Task scrape failed"`); n < 8 || n > 16 {
		t.Errorf("%d warnings of a 429, want one per throttled task (8):\n%s", n, r.logs)
	}
}

// TestFaultLatencySpike: answers that would take a minute do not hold the scrape: it
// returns at its deadline (Prometheus' timeout minus 0.5 s) and serves the slow tasks'
// last values with their age. Their calls go on under their own timeout (scrape.timeout),
// and the next scrape waits for them instead of calling again. A spike that fits in the
// deadline is only slow.
func TestFaultLatencySpike(t *testing.T) {
	r := newFaultRig(t)
	r.running("control", "slow1", "slow2", "spike")
	r.finished("done")
	srv := r.serve(r.sim)
	r.start(srv.URL, faultScrapeConfig, "control", "slow1", "slow2", "spike", "done")
	s := r.scrape("2")
	r.healthy(s, "control", "slow1", "slow2", "spike", "done")
	r.wantCalls(s, map[string]float64{"200": 5})

	r.sim.SetFault("slow1", simulator.FaultSlow(time.Minute))
	r.sim.SetFault("slow2", simulator.FaultSlow(time.Minute))
	r.sim.SetFault("spike", simulator.FaultSlow(300*time.Millisecond))
	r.extra = 2 * 4 // each slow call: a connection's read and write loops, the server's and its background read
	// The margin only has to tell the deadline from the slow calls' minute: a loaded 2-core
	// machine under -race may take seconds to answer.
	const deadline, margin = 1500 * time.Millisecond, 10 * time.Second
	for n := 1; n <= 2; n++ {
		s := r.scrape("2")
		if s.took > deadline+margin {
			t.Errorf("scrape %d took %s, want at most the deadline %s + %s", n, s.took, deadline, margin)
		}
		if s.took < deadline-100*time.Millisecond {
			t.Errorf("scrape %d took only %s: the slow calls were not waited for until the deadline", n, s.took)
		}
		r.healthy(s, "control", "spike", "done", "slow1", "slow2")
		for _, id := range []string{"slow1", "slow2"} {
			if age, _ := s.value("metastudio_task_data_age_seconds", `project="default",task_id="`+id+`"`); age <= 0 {
				t.Errorf("scrape %d: %s is served with data_age %v, want its last values' age", n, id, age)
			}
		}
		// The slow calls of the first scrape are still in flight in the second: no new call.
		r.wantCalls(s, map[string]float64{"200": float64(5 + 2*n)})
	}
}

// TestFaultDNSFailure: the endpoint's name stops resolving. The configured endpoint is
// the real https://metastudio.cn-north-4.myhuaweicloud.com; the switchboard first maps it
// to a loopback simulator with a certificate for that name, then answers "no such host".
// Nothing dials a non-loopback address or sends a DNS query.
func TestFaultDNSFailure(t *testing.T) {
	r := newFaultRig(t)
	r.running("live")
	r.finished("done")
	srv := r.serveTLS(r.sim, hostCert(t, faultHost))
	r.board.route(faultHost+":443", srv.Listener.Addr().String())
	r.start("https://"+faultHost, faultScrapeConfig, "live", "done")
	s := r.scrape("5")
	r.healthy(s, "live", "done")
	r.wantCalls(s, map[string]float64{"200": 2})

	r.board.route(faultHost+":443", "")
	s = r.scrape("5")
	r.failed(s, "live")
	r.healthy(s, "done")
	r.wantCalls(s, map[string]float64{"200": 2, "error": 1})
	r.logged(`task_id=live error_code=transport`, "lookup "+faultHost+": no such host")

	var dnsErr *net.DNSError
	if _, err := r.client.ShowTask(context.Background(), "live"); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound || dnsErr.Name != faultHost {
		t.Errorf("ShowTask: %v, want a *net.DNSError for %s", err, faultHost)
	}
	r.client.CloseIdleConnections()
	for _, addr := range r.guard.Dialed() {
		if addr != srv.Listener.Addr().String() {
			t.Errorf("dialed %s", addr)
		}
	}
	if r.guard.lookups.Load() != 0 {
		t.Errorf("%d DNS queries were attempted", r.guard.lookups.Load())
	}
}

// TestFaultTLSWrongHost: the endpoint's name leads to a server whose certificate is for
// example.com and 127.0.0.1 only (httptest's), though the client trusts that certificate.
// The handshake fails on the host name, the server sees no request, and the task fails.
func TestFaultTLSWrongHost(t *testing.T) {
	r := newFaultRig(t)
	r.running("live")
	r.finished("done")
	good := r.serveTLS(r.sim, hostCert(t, faultHost))
	var reached atomic.Int64
	wrong := r.serveTLS(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }), nil)
	r.board.route(faultHost+":443", good.Listener.Addr().String())
	r.start("https://"+faultHost, faultScrapeConfig, "live", "done")
	s := r.scrape("5")
	r.healthy(s, "live", "done")

	r.board.route(faultHost+":443", wrong.Listener.Addr().String())
	s = r.scrape("5")
	r.failed(s, "live")
	r.healthy(s, "done")
	r.wantCalls(s, map[string]float64{"200": 2, "error": 1})
	r.logged(`task_id=live error_code=transport`, "x509: certificate is valid for example.com", "not "+faultHost)

	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	_, err := r.client.ShowTask(context.Background(), "live")
	if !errors.As(err, &verifyErr) || !errors.As(err, &hostErr) || hostErr.Host != faultHost {
		t.Errorf("ShowTask: %v, want a certificate verification error for host %s", err, faultHost)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the server with the wrong certificate received %d requests", n)
	}
	if r.tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("the transport skips verification")
	}
}
