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
	// ServerDate is the answer's Date header when it was sampled for the clock skew (a
	// MetaStudio answer: every 401, else at most once per SkewSampleInterval), else zero;
	// Received is when the answer came: their difference is the clock skew that makes
	// the gateway refuse X-Sdk-Date.
	ServerDate, Received time.Time
}

// Observer is told about every call.
type Observer interface {
	ObserveCall(Call)
}

// ErrRejected marks an error whose meaning is "these credentials were refused" (IAM
// refused the password, no agency is bound to the ECS): retrying soon would only fail
// again, so the AK guard cools down as after a 401. Any other failure to get credentials
// (a timeout, a network error, a 5xx of IAM or the metadata service) is not a refusal.
var ErrRejected = errors.New("credentials rejected")

// Refresher is implemented by credentials the exporter gets for itself (IAM tokens, the
// temporary keys of the metadata service) and by token_file. Refresh means: the API
// refused the current token or temporary keys; discard them and get new ones (token_file:
// read the file again). The fetch runs detached from ctx, bounded by its own client
// timeout, one at a time: concurrent calls share one fetch, and ctx bounds only how long
// the caller waits. A Refresh does not change the Generation.
type Refresher interface {
	Refresh(ctx context.Context) error
}

// Versioned is implemented by credentials that can change from outside while the exporter
// runs. The generation changes only on such a change: a rotated key file, a new password
// file or token file content. A token or temporary keys that the exporter fetches itself
// (renewal ahead of expiry, Refresh) do not change it, so that the AK guard's cool-down
// is reset by the user's fix and never by the exporter's own retry.
type Versioned interface {
	Generation() uint64
}

// Observe reports one call to o (which may be nil). resp is nil when no answer came;
// received is the local time the answer came, by the exporter's clock. serverDate is the
// answer's Date header when the caller sampled it for the clock skew, else zero: the
// header is not parsed on every call.
func Observe(o Observer, op string, resp *http.Response, duration time.Duration, received, serverDate time.Time) {
	if o == nil {
		return
	}
	c := Call{Operation: op, Code: "error", Duration: duration, Received: received, ServerDate: serverDate}
	if resp != nil {
		c.Code = strconv.Itoa(resp.StatusCode)
	}
	o.ObserveCall(c)
}

// The credentials the exporter can refresh, and those that change from outside.
var (
	_ Refresher = (*IAMToken)(nil)
	_ Refresher = (*Metadata)(nil)
	_ Refresher = (*TokenAuth)(nil)
	_ Versioned = (*IAMToken)(nil)
	_ Versioned = (*TokenAuth)(nil)
	_ Versioned = (*Signer)(nil)
)
