package auth

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Call describes one API call, whatever service it went to, for metrics and for the AK
// guard: every call counts in metastudio_api_requests_total.
type Call struct {
	Operation string        // ShowTask, SearchTask, IAMToken, IAMProjects, MetadataToken, MetadataSecurityKey
	Code      string        // the HTTP status, or "error" when no response came
	Duration  time.Duration // until the body was read
	// ServerDate is the answer's Date header (zero if none), and Received when it came:
	// their difference is the clock skew that makes the gateway refuse X-Sdk-Date.
	ServerDate, Received time.Time
}

// Observer is told about every call.
type Observer interface {
	ObserveCall(Call)
}

// ErrRejected marks an error whose meaning is "these credentials were refused" (a wrong
// IAM password, no agency bound to the ECS): retrying soon would only fail again, so the
// AK guard cools down as after a 401.
var ErrRejected = errors.New("credentials rejected")

// Refresher is implemented by credentials that expire (IAM tokens, temporary keys from
// the metadata service). After a 401 that says the credentials expired, the client calls
// Refresh with the refused request, and retries the call once. Many calls refused at once
// cause one refresh: credentials other than the refused ones are already new.
type Refresher interface {
	Refresh(ctx context.Context, refused *http.Request) error
}

// Versioned is implemented by credentials that can change while the exporter runs. The
// generation changes whenever the credentials in use change, so that the AK guard sends
// the first call with new credentials alone.
type Versioned interface {
	Generation() uint64
}

// Observe reports one call to o (which may be nil). resp is nil when no answer came;
// received is the local time the answer came, by the exporter's clock.
func Observe(o Observer, op string, resp *http.Response, duration time.Duration, received time.Time) {
	if o == nil {
		return
	}
	c := Call{Operation: op, Code: "error", Duration: duration, Received: received}
	if resp != nil {
		c.Code = strconv.Itoa(resp.StatusCode)
		if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			c.ServerDate = d
		}
	}
	o.ObserveCall(c)
}
