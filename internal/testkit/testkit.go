// Package testkit holds the helpers that the tests of several packages share: a fake
// clock, a buffer safe for concurrent writers, and a free loopback address. It imports no
// package of the exporter, so that any test may use it; the fake MetaStudio API, which
// imports the client, is its subpackage fakeapi.
package testkit

import (
	"bytes"
	"math"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Clock is a clock that moves only when told, safe for concurrent use: simulated minutes
// pass without sleeping.
type Clock struct {
	t atomic.Pointer[time.Time]
}

// NewClock returns a Clock that reads start.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.t.Store(&start)
	return c
}

// Now is the clock's time; pass the method value where a func() time.Time is wanted.
func (c *Clock) Now() time.Time { return *c.t.Load() }

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	for {
		old := c.t.Load()
		t := old.Add(d)
		if c.t.CompareAndSwap(old, &t) {
			return
		}
	}
}

// Buffer collects output (a log) written from several goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Take returns everything written so far and forgets it.
func (b *Buffer) Take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.b.String()
	b.b.Reset()
	return out
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort is FreeAddr's port.
func FreePort(tb testing.TB) int {
	tb.Helper()
	_, port, err := net.SplitHostPort(FreeAddr(tb))
	if err != nil {
		tb.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Need returns the path of an installed command. When it is missing the test is skipped
// with a message that says how to get it, except under CI=true, where the test fails:
// .ci/run installs every command the tests need (prometheus and promtool with Debian's
// prometheus package, systemd-analyze with systemd).
func Need(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	how := "apt-get install prometheus; .ci/run installs it"
	switch name {
	case "systemd-analyze":
		how = "apt-get install systemd; .ci/run installs it"
	case "make":
		how = "apt-get install make"
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is not installed, and CI must run this test (%s)", name, how)
	}
	tb.Skipf("%s is not installed, so this test cannot run here (%s)", name, how)
	return ""
}

// Quantile is the q-quantile (0..1) of xs, interpolated linearly between the closest
// ranks; NaN for no values. xs is not modified.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// WaitFor polls cond every millisecond until it holds, failing the test after 10 s.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
