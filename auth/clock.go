package auth

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// SkewTolerance is the clock skew that is tolerated: beyond it, requests are signed
	// with the API's estimated time. The gateway refuses an X-Sdk-Date more than 15
	// minutes off; the Date header it is measured from has whole seconds.
	SkewTolerance = time.Minute
	// SkewSampleInterval is how often an answer's Date header is read, besides every 401.
	SkewSampleInterval = time.Minute
)

var clockCorrectionDesc = prometheus.NewDesc("metastudio_clock_correction_seconds",
	"The offset added to the local clock to sign requests (X-Sdk-Date): minus metastudio_clock_skew_seconds while that exceeds 60 s in magnitude, else 0.",
	nil, nil)

var clockSkewDesc = prometheus.NewDesc("metastudio_clock_skew_seconds",
	"The local clock minus the API's Date header at the last answer sampled; the gateway refuses an X-Sdk-Date more than 15 minutes off. Absent until the first answer.",
	nil, nil)

// Clock estimates the API's clock from the Date headers of MetaStudio's answers, and
// gives the time to sign with. Huawei's SDKs sign with the local clock whatever it says,
// and the gateway refuses an X-Sdk-Date more than 15 minutes off, every refusal counting
// toward the AK lock. A Clock corrects the signing time once the skew (local − server)
// exceeds SkewTolerance. It samples an answer at most every SkewSampleInterval, and every
// 401 (the answer a skewed signature gets). One Clock serves the process.
type Clock struct {
	now func() time.Time

	mu      sync.Mutex
	skew    time.Duration
	sampled time.Time // local time of the last sample; zero before the first
}

// NewClock returns a Clock that corrects now (nil: time.Now).
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Due reports whether an answer received at received should be sampled.
func (c *Clock) Due(received time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sampled.IsZero() || received.Sub(c.sampled) >= SkewSampleInterval || received.Before(c.sampled)
}

// Sample records an answer's Date header (serverDate) and the local time it came.
func (c *Clock) Sample(serverDate, received time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.skew, c.sampled = received.Sub(serverDate), received
}

// Skew is the last measured local − server time; ok is false before the first sample.
func (c *Clock) Skew() (skew time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skew, !c.sampled.IsZero()
}

// Correction is what Now adds to the local clock: −skew beyond SkewTolerance, else 0.
func (c *Clock) Correction() time.Duration {
	skew, _ := c.Skew()
	if skew.Abs() > SkewTolerance {
		return -skew
	}
	return 0
}

// Now is the time to sign with: the local clock, corrected.
func (c *Clock) Now() time.Time { return c.now().Add(c.Correction()) }

// Describe implements prometheus.Collector.
func (c *Clock) Describe(ch chan<- *prometheus.Desc) {
	ch <- clockCorrectionDesc
	ch <- clockSkewDesc
}

// Collect implements prometheus.Collector.
func (c *Clock) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(clockCorrectionDesc, prometheus.GaugeValue, c.Correction().Seconds())
	if skew, ok := c.Skew(); ok {
		ch <- prometheus.MustNewConstMetric(clockSkewDesc, prometheus.GaugeValue, skew.Seconds())
	}
}
