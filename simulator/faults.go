package simulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault is a canned answer. Status 0 means the normal answer, given after Delay (a slow
// answer); then ContentType and Body are unused. Otherwise the simulator waits Delay and
// answers Status with Body. An empty ContentType sends no Content-Type header at all.
// Header is added to the answer and overrides the simulator's own headers (X-Request-Id,
// Date, Server). Every wait ends early, without an answer, when the client goes away.
type Fault struct {
	Status      int
	ContentType string
	Body        string
	Delay       time.Duration
	Header      map[string]string
}

// Error codes and messages the simulator answers, as the API gateway and MetaStudio
// spell them.
const (
	// CodeGatewayNotFound is the gateway's 404: no such API (path, method or project).
	CodeGatewayNotFound = "APIGW.0101"
	// CodeGatewayBadRequest is the gateway's 400/413 for a request it cannot take.
	CodeGatewayBadRequest = "APIGW.0201"
	// CodeGatewayAuth is the gateway's 401 for any IAM authentication failure.
	CodeGatewayAuth = "APIGW.0301"
	// CodeGatewayThrottled is the gateway's 429.
	CodeGatewayThrottled = "APIGW.0308"
	// CodeInternal is MetaStudio's 500 internal error.
	CodeInternal = "MSS.000000002"
	// CodeInvalidParam is MetaStudio's 400 invalid-parameter error, also the answer of
	// ShowTask for an unknown task id (ShowTask documents only 200 and 400).
	CodeInvalidParam = "MSS.000000003"
	// CodeAuthFailed is MetaStudio's unauthenticated or authentication-failed error (403).
	CodeAuthFailed = "MSS.000000004"
	// CodeTokenInvalid is MetaStudio's 400 for a token it cannot use.
	CodeTokenInvalid = "MSS.00010008"
	// CodeTokenProject is MetaStudio's 400 for a token of another project than the URL's.
	CodeTokenProject = "MSS.00010009"
	// CodeGatewayQuotaUsedUp is the gateway's answer once a call quota is used up.
	CodeGatewayQuotaUsedUp = "APIGW.0501"

	msgNotFound  = "The API does not exist or has not been published in the environment"
	msgThrottled = "The throttling threshold has been reached: policy user over ratelimit, limit:20, time:1 second"
	msgInternal  = "Internal error."
	// msgQuotaUsedUp is the wording of Huawei's API Gateway error-code page for APIG.0501,
	// answered with status 405.
	msgQuotaUsedUp = "The app quota has been used up."
	msgAuthPfx     = "Incorrect IAM authentication information: "
	msgLocked      = msgAuthPfx + "AK access failed to reach the limit,forbidden."
	// msgNoProjectID completes msgAuthPfx for an AK/SK-signed MetaStudio call without an
	// X-Project-Id header (the simulator's wording: Huawei documents none for it).
	msgNoProjectID = "Unauthorized, the X-Project-Id header is missing"
	// msgDecryptTokenFail is the gateway's answer to an X-Auth-Token it cannot use: wrong,
	// expired or revoked (Huawei documents no message that mentions expiry).
	msgDecryptTokenFail = "decrypt token fail"
	contentJSON         = "application/json"
	contentMSS          = "application/json;charset=UTF-8"
)

// newRequestID is 32 random lower-case hex digits, like the gateway's request ids.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// errorBody is {"error_code","error_msg","request_id"} in that order.
func errorBody(code, msg, requestID string) string {
	b, _ := json.Marshal(struct {
		Code      string `json:"error_code"`
		Msg       string `json:"error_msg"`
		RequestID string `json:"request_id"`
	}{code, msg, requestID})
	return string(b)
}

// jsonFault is an error answer whose body and X-Request-Id header carry the same id.
func jsonFault(status int, contentType, code, msg string) Fault {
	id := newRequestID()
	return Fault{
		Status:      status,
		ContentType: contentType,
		Body:        errorBody(code, msg, id),
		Header:      map[string]string{"X-Request-Id": id},
	}
}

// FaultInvalidParam is MetaStudio's 400 MSS.000000003 (invalid parameter). Like every
// ready-made JSON fault, it carries a request id of its own in the body and in the
// X-Request-Id header (the same id each time this Fault value is served).
func FaultInvalidParam() Fault {
	return jsonFault(http.StatusBadRequest, contentMSS, CodeInvalidParam, "Invalid parameter: task_id is invalid.")
}

// FaultNotFound is the gateway's 404 APIGW.0101: the API does not exist or has not been
// published in the environment.
func FaultNotFound() Fault {
	return jsonFault(http.StatusNotFound, contentJSON, CodeGatewayNotFound, msgNotFound)
}

// FaultThrottled is the gateway's 429 APIGW.0308: the throttling threshold has been reached.
func FaultThrottled() Fault {
	return jsonFault(http.StatusTooManyRequests, contentJSON, CodeGatewayThrottled, msgThrottled)
}

// ratelimitMsg is the gateway's 429 wording for a limit of n calls per period ("second" or
// "minute").
func ratelimitMsg(n string, period string) string {
	return "The throttling threshold has been reached: policy user over ratelimit,limit:" + n + ",time:1 " + period
}

// FaultQuotaPerSecond is the gateway's 429 APIGW.0308 for a per-second quota of n calls,
// worded as the gateway words it ("...,limit:10,time:1 second"), with no Retry-After.
func FaultQuotaPerSecond(n int) Fault {
	return jsonFault(http.StatusTooManyRequests, contentJSON, CodeGatewayThrottled, ratelimitMsg(strconv.Itoa(n), "second"))
}

// FaultQuotaPerMinute is the gateway's 429 APIGW.0308 for a per-minute quota of n calls
// ("...,limit:20,time:1 minute"), with no Retry-After.
func FaultQuotaPerMinute(n int) Fault {
	return jsonFault(http.StatusTooManyRequests, contentJSON, CodeGatewayThrottled, ratelimitMsg(strconv.Itoa(n), "minute"))
}

// FaultQuotaUsedUp is the gateway's answer once a quota is used up: 405 APIGW.0501 "The
// app quota has been used up." (the status and wording of Huawei's API Gateway error-code
// page; no Retry-After).
func FaultQuotaUsedUp() Fault {
	return jsonFault(http.StatusMethodNotAllowed, contentJSON, CodeGatewayQuotaUsedUp, msgQuotaUsedUp)
}

// FaultTokenInvalid is MetaStudio's 400 MSS.00010008 "Invalid token in the header".
func FaultTokenInvalid() Fault {
	return jsonFault(http.StatusBadRequest, contentMSS, CodeTokenInvalid, "Invalid token in the header")
}

// FaultTokenProject is MetaStudio's 400 MSS.00010009: the token belongs to another project
// than the one in the URL.
func FaultTokenProject() Fault {
	return jsonFault(http.StatusBadRequest, contentMSS, CodeTokenProject, "urlTenantId is not equal tokenTenantId")
}

// FaultAuthForbidden is MetaStudio's 403 MSS.000000004 (authentication failed).
func FaultAuthForbidden() Fault {
	return jsonFault(http.StatusForbidden, contentMSS, CodeAuthFailed, "Authentication failed.")
}

// FaultInternal is MetaStudio's 500 MSS.000000002 (internal error), the answer of
// Options.ErrorRate.
func FaultInternal() Fault {
	return jsonFault(http.StatusInternalServerError, contentMSS, CodeInternal, msgInternal)
}

// FaultHTML is an nginx-style text/html error page with the given status (502, 503, 504
// are what a load balancer in front of the gateway sends), no JSON at all.
func FaultHTML(status int) Fault {
	text := http.StatusText(status)
	if text == "" {
		text = "Error"
	}
	body := fmt.Sprintf("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"+
		"<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
		status, text, status, text)
	return Fault{Status: status, ContentType: "text/html", Body: body}
}

// FaultMalformed is a 200 application/json answer whose body is truncated JSON.
func FaultMalformed() Fault {
	return Fault{
		Status:      http.StatusOK,
		ContentType: contentMSS,
		Body:        `{"resource":"qa_pair","task_name":"import_2025","begin_time":17442769`,
	}
}

// FaultSlow is the normal answer, given after d; it ends without an answer when the
// client goes away first.
func FaultSlow(d time.Duration) Fault {
	return Fault{Delay: d}
}

// namedFaults are the faults that NamedFault knows, by name.
var namedFaults = map[string]func() Fault{
	"token-invalid":  FaultTokenInvalid,
	"token-project":  FaultTokenProject,
	"auth-forbidden": FaultAuthForbidden,
	"quota-second":   func() Fault { return FaultQuotaPerSecond(10) },
	"quota-minute":   func() Fault { return FaultQuotaPerMinute(20) },
	"quota-used-up":  FaultQuotaUsedUp,
	"invalid-param":  FaultInvalidParam,
	"not-found":      FaultNotFound,
	"throttled":      FaultThrottled,
	"internal":       FaultInternal,
	"malformed":      FaultMalformed,
}

// FaultNames lists the names NamedFault knows, sorted: the real cloud's answers
// (token-invalid, token-project, auth-forbidden, quota-second with a limit of 10 per
// second, quota-minute with 20 per minute, quota-used-up) and the simulator's other kinds
// (invalid-param, not-found, throttled, internal, malformed).
func FaultNames() []string {
	names := make([]string, 0, len(namedFaults))
	for name := range namedFaults {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// NamedFault returns the fault of a name of FaultNames, for command lines and configs.
func NamedFault(name string) (Fault, error) {
	f, ok := namedFaults[name]
	if !ok {
		return Fault{}, fmt.Errorf("unknown fault %q (known: %s)", name, strings.Join(FaultNames(), ", "))
	}
	return f(), nil
}
