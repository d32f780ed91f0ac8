package metastudio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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

// AuthFailed reports whether the credentials were refused: by the API (a 401, APIGW.0301
// or MSS.000000004, whatever the message says) or by the credential source (Err wraps
// auth.ErrRejected: IAM refused the password, no agency is bound to the ECS). Credentials
// that could not be had for another reason are CredentialsUnavailable, not AuthFailed.
func (e *APIError) AuthFailed() bool {
	code := strings.Replace(e.Code, "APIG.", "APIGW.", 1)
	return e.StatusCode == http.StatusUnauthorized || code == "APIGW.0301" || code == "MSS.000000004" ||
		errors.Is(e.Err, auth.ErrRejected)
}

// CredentialsUnavailable reports whether the call was not made because its credentials
// could not be had, without a refusal: IAM or the metadata service timed out, could not be
// reached or failed (5xx), the caller's deadline passed while waiting for them, or a key
// file could not be read. This is no reason for the AK guard to cool down.
func (e *APIError) CredentialsUnavailable() bool {
	return errors.Is(e.Err, ErrCredentials) && !errors.Is(e.Err, auth.ErrRejected)
}

// Verifies reports whether the answer proves that the credentials passed the gateway's
// authentication: the service itself answered, with an MSS.* error code (a 2xx, a nil
// error, verifies too). A 3xx, a gateway error without an MSS code, or no answer at all
// verifies nothing.
func (e *APIError) Verifies() bool {
	return strings.HasPrefix(e.Code, "MSS.") && !e.AuthFailed()
}

// ErrCredentials marks a call that was not made because its credentials could not be had
// (a missing key file, IAM refusing the password or not answering, the metadata service
// unreachable). errors.Is(err, auth.ErrRejected) tells a refusal from the rest.
var ErrCredentials = errors.New("credentials unavailable")

// Throttled reports whether the API asked us to slow down.
func (e *APIError) Throttled() bool {
	code := strings.Replace(e.Code, "APIG.", "APIGW.", 1)
	return e.StatusCode == http.StatusTooManyRequests || code == "APIGW.0308"
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
