package auth

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClock(t *testing.T) {
	local := newFakeClock()
	c := NewClock(local.Now)
	if !c.Now().Equal(local.Now()) || !c.Due(local.Now()) {
		t.Fatal("before any sample: no correction, and the first answer is sampled")
	}
	for _, tc := range []struct {
		skew, correction time.Duration
	}{
		{30 * time.Second, 0},                 // tolerated
		{-60 * time.Second, 0},                // tolerated, just
		{-20 * time.Minute, 20 * time.Minute}, // local clock behind
		{90 * time.Second, -90 * time.Second}, // local clock ahead
		{2 * time.Second, 0},                  // back to normal
	} {
		local.Advance(SkewSampleInterval)
		received := local.Now()
		if !c.Due(received) {
			t.Fatalf("a sample is due after %s", SkewSampleInterval)
		}
		c.Sample(received.Add(-tc.skew), received)
		if c.Due(received.Add(time.Second)) {
			t.Error("sampled twice within the interval")
		}
		if got := c.Correction(); got != tc.correction {
			t.Errorf("skew %s: correction %s, want %s", tc.skew, got, tc.correction)
		}
		if got := c.Now(); !got.Equal(local.Now().Add(tc.correction)) {
			t.Errorf("skew %s: signs at %s, want %s", tc.skew, got, local.Now().Add(tc.correction))
		}
	}
	c.Sample(local.Now().Add(20*time.Minute), local.Now())
	if got := testutil.ToFloat64(c); got != 1200 {
		t.Errorf("metastudio_clock_correction_seconds = %g, want 1200", got)
	}
}
