package metastudio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

// APIError is a failed API call. StatusCode is 0 when no response came. Code, Message
// and RequestID come from the body ({"error_code","error_msg","request_id"}, or
// {"code","message"} as the SDK falls back to) and the X-Request-Id header. Err holds a
// transport or decoding failure.
type APIError struct {
	Operation  string
	StatusCode int
	Code       string
	Message    string
	RequestID  string
	// RetryAfter is what a 429's Retry-After header asked for; 0 when it had none.
	RetryAfter time.Duration
	Err        error
}

// Error says what failed, with the status, code, message and request id that came back.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Operation)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap gives the transport or decoding error, so errors.Is finds a deadline.
func (e *APIError) Unwrap() error { return e.Err }

// Reason is a short, stable word for logs: the API's error code, else "timeout",
// "canceled", "body_too_large", "transport" (no answer), "http_<status>", "read" (the
// body broke off) or "decode" (a 2xx that is not a task).
func (e *APIError) Reason() string {
	switch {
	case e.Code != "":
		return e.Code
	case errors.Is(e.Err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(e.Err, context.Canceled):
		return "canceled"
	case errors.Is(e.Err, ErrCredentials):
		return "credentials"
	case errors.Is(e.Err, ErrBodyTooLarge):
		return "body_too_large"
	case e.StatusCode == 0:
		return "transport"
	case e.StatusCode < 200 || e.StatusCode > 299:
		return fmt.Sprintf("http_%d", e.StatusCode)
	case errors.Is(e.Err, errRead):
		return "read"
	}
	return "decode"
}

// ErrBodyTooLarge is the error of an answer longer than MaxBodyBytes.
var ErrBodyTooLarge = fmt.Errorf("body larger than %d bytes", MaxBodyBytes)

var errRead = errors.New("reading body")

// The error codes the client tells apart. The gateway's codes also come spelled APIG.
// (older gateways); gatewayCode maps them to APIGW.
const (
	codeBadCredentials = "APIGW.0301"    // 401: the signature, AK or token did not verify
	codeThrottled      = "APIGW.0308"    // 429: a throttling threshold was reached
	codeQuotaUsedUp    = "APIGW.0501"    // 405: "The app quota has been used up."
	codeUnauthorized   = "MSS.000000004" // MetaStudio: unauthenticated or auth failed
	codeInvalidToken   = "MSS.00010008"  // 400 "Invalid token in the header"
	codeOtherProject   = "MSS.00010009"  // 400 "urlTenantId is not equal tokenTenantId"
)

// gatewayCode is e.Code with the gateway's old APIG. prefix spelled APIGW.
func (e *APIError) gatewayCode() string {
	if rest, ok := strings.CutPrefix(e.Code, "APIG."); ok {
		return "APIGW." + rest
	}
	return e.Code
}

// AuthFailed reports whether the credentials were refused: by the API (a 401, APIGW.0301,
// MSS.000000004, MSS.00010008 for a token it cannot use, MSS.00010009 for a token of
// another project, whatever the message says) or by the credential source (Err wraps
// auth.ErrRejected: IAM refused the password, no agency is bound to the ECS). Credentials
// that could not be had for another reason are CredentialsUnavailable, not AuthFailed.
func (e *APIError) AuthFailed() bool {
	switch e.gatewayCode() {
	case codeBadCredentials, codeUnauthorized, codeInvalidToken, codeOtherProject:
		return true
	}
	return e.StatusCode == http.StatusUnauthorized || errors.Is(e.Err, auth.ErrRejected)
}

// TokenRejected reports whether the API refused the credentials it was sent in a way that
// fresh ones may cure: a 401, APIGW.0301, MSS.000000004 or MSS.00010008 (an expired or
// revoked token is refused so). A token of another project (MSS.00010009) is not: a
// refreshed token names the same project. Nor is a refusal by the credential source, which
// sent no call (StatusCode 0).
func (e *APIError) TokenRejected() bool {
	if e.StatusCode == 0 || errors.Is(e.Err, auth.ErrRejected) {
		return false
	}
	switch e.gatewayCode() {
	case codeBadCredentials, codeUnauthorized, codeInvalidToken:
		return true
	case codeOtherProject:
		return false
	}
	return e.StatusCode == http.StatusUnauthorized
}

// CredentialsUnavailable reports whether the call was not made because its credentials
// could not be had, without a refusal: IAM or the metadata service timed out, could not be
// reached or failed (5xx), the caller's deadline passed while waiting for them, or a key
// file could not be read. This is no reason for the AK guard to cool down.
func (e *APIError) CredentialsUnavailable() bool {
	return errors.Is(e.Err, ErrCredentials) && !errors.Is(e.Err, auth.ErrRejected)
}

// Verifies reports whether the answer proves that the credentials passed the gateway's
// authentication: the service itself answered, with an MSS.* error code that is not one of
// AuthFailed's (a 2xx, a nil error, verifies too). A 3xx, a gateway error without an MSS
// code, or no answer at all verifies nothing.
func (e *APIError) Verifies() bool {
	return strings.HasPrefix(e.Code, "MSS.") && !e.AuthFailed()
}

// ErrCredentials marks a call that was not made because its credentials could not be had
// (a missing key file, IAM refusing the password or not answering, the metadata service
// unreachable). errors.Is(err, auth.ErrRejected) tells a refusal from the rest.
var ErrCredentials = errors.New("credentials unavailable")

// Throttled reports whether the API asked us to slow down: a 429 or APIGW.0308, or a
// quota that is used up (APIGW.0501, which the gateway answers with 405). Either way it is
// the call budget speaking, not the task or the credentials failing.
func (e *APIError) Throttled() bool {
	code := e.gatewayCode()
	return e.StatusCode == http.StatusTooManyRequests || code == codeThrottled || code == codeQuotaUsedUp
}

// Quota is what a throttling answer says of the quota it hit.
type Quota struct {
	// Limit calls are allowed per Period; both are 0 when the answer states no limit.
	Limit  float64
	Period time.Duration
	// UsedUp means the quota is spent, not only reached for the moment: the gateway's
	// APIGW.0501 ("The app quota has been used up.") or a message saying so. Calls are
	// refused until it is renewed or raised.
	UsedUp bool
}

// The gateway states a throttling policy's threshold in its message, as in "The throttling
// threshold has been reached: policy user over ratelimit,limit:20,time:1 minute". The
// patterns accept spaces, "=" for ":", and any case; the unit may be plural or short.
var (
	quotaLimitRE  = regexp.MustCompile(`(?:^|[^a-z])limit\s*[:=]\s*([0-9]+(?:\.[0-9]+)?)`)
	quotaPeriodRE = regexp.MustCompile(`(?:^|[^a-z])time\s*[:=]\s*([0-9]*)\s*([a-z]+)`)
)

// quotaUnits are the units a stated period may carry.
var quotaUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
}

// Quota reads which quota a throttling answer (Throttled) says was hit, so that the caller
// can pace itself to it instead of guessing: "limit:20,time:1 minute" gives Limit 20 and
// Period 1m; APIGW.0501, or a message saying the quota is used up or exhausted, gives
// UsedUp. ok is false when the answer is not Throttled or states neither, such as a
// Retry-After alone or a body in another wording.
func (e *APIError) Quota() (q Quota, ok bool) {
	if !e.Throttled() {
		return Quota{}, false
	}
	msg := strings.ToLower(e.Message)
	q.UsedUp = e.gatewayCode() == codeQuotaUsedUp ||
		strings.Contains(msg, "quota") && (strings.Contains(msg, "used up") || strings.Contains(msg, "exhausted"))
	q.Limit, q.Period = statedLimit(msg)
	return q, q.UsedUp || q.Period > 0
}

// maxPeriodCount bounds the count of a stated period, so that days cannot overflow.
const maxPeriodCount = 10000

// statedLimit finds "limit:N" and "time:[M] unit" in a lower-case message; 0, 0 unless both
// are there and make sense: N > 0 and finite, M from 1 to maxPeriodCount (absent: 1), and a
// known unit.
func statedLimit(msg string) (float64, time.Duration) {
	lm, pm := quotaLimitRE.FindStringSubmatch(msg), quotaPeriodRE.FindStringSubmatch(msg)
	if lm == nil || pm == nil {
		return 0, 0
	}
	limit, err := strconv.ParseFloat(lm[1], 64)
	unit, known := quotaUnits[pm[2]]
	if err != nil || limit <= 0 || !known { // err: past float64
		return 0, 0
	}
	n := 1
	if pm[1] != "" {
		if n, err = strconv.Atoi(pm[1]); err != nil || n <= 0 || n > maxPeriodCount {
			return 0, 0
		}
	}
	return limit, time.Duration(n) * unit
}

// fillFromBody reads an error body; HTML or garbage leaves the fields empty and keeps
// a hint of what came instead.
func (e *APIError) fillFromBody(body []byte) {
	if code, msg, reqID, ok := errorFields(body); ok {
		e.Code, e.Message = code, msg
		if reqID != "" {
			e.RequestID = reqID
		}
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		e.Err = errors.New("body is not an API error object")
	}
}

// errorFields extracts the error fields of a JSON object body. ok is true when the body
// is an object with a non-empty error_code or code.
func errorFields(body []byte) (code, msg, requestID string, ok bool) {
	var fields struct {
		ErrorCode Value `json:"error_code"`
		ErrorMsg  Value `json:"error_msg"`
		Code      Value `json:"code"`
		Message   Value `json:"message"`
		RequestID Value `json:"request_id"`
	}
	// Most answers name neither key ("error_code", "code"): one look, no second decoding.
	if !bytes.Contains(body, []byte(`code"`)) {
		return "", "", "", false
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &fields) != nil {
		return "", "", "", false
	}
	code, msg = fields.ErrorCode.Text, fields.ErrorMsg.Text
	if code == "" {
		code = fields.Code.Text
	}
	if msg == "" {
		msg = fields.Message.Text
	}
	return truncate(code, 64), truncate(msg, 256), truncate(fields.RequestID.Text, 128), code != ""
}

// truncate bounds text that the server controls before it reaches a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return max(time.Duration(min(s, 86400))*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
