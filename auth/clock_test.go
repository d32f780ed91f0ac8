package auth

import (
	"strings"
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
	want := `
# HELP metastudio_clock_correction_seconds The offset added to the local clock to sign requests (X-Sdk-Date): minus metastudio_clock_skew_seconds while that exceeds 60 s in magnitude, else 0.
# TYPE metastudio_clock_correction_seconds gauge
metastudio_clock_correction_seconds 1200
# HELP metastudio_clock_skew_seconds The local clock minus the API's Date header at the last answer sampled; the gateway refuses an X-Sdk-Date more than 15 minutes off. Absent until the first answer.
# TYPE metastudio_clock_skew_seconds gauge
metastudio_clock_skew_seconds -1200
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
