package metastudio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

// TestAuthCodes pins how the guard reads each refusal: which ones refuse the credentials
// (AuthFailed), which ones fresh credentials may cure (TokenRejected), which ones prove that
// the gateway let the call through (Verifies), and which ones are the budget (Throttled).
func TestAuthCodes(t *testing.T) {
	rejected := fmt.Errorf("%w: %w: IAMToken: HTTP 401: IAM.0004", ErrCredentials, auth.ErrRejected)
	for _, tc := range []struct {
		name                                  string
		err                                   *APIError
		auth, token, verifies, throttled, any bool
	}{
		{name: "gateway 401 APIGW.0301", err: &APIError{StatusCode: 401, Code: "APIGW.0301"}, auth: true, token: true},
		{name: "old spelling APIG.0301", err: &APIError{StatusCode: 401, Code: "APIG.0301"}, auth: true, token: true},
		{name: "401 without a body", err: &APIError{StatusCode: 401}, auth: true, token: true},
		{name: "403 MSS.000000004", err: &APIError{StatusCode: 403, Code: "MSS.000000004"}, auth: true, token: true},
		{name: "400 MSS.00010008 invalid token", err: &APIError{StatusCode: 400, Code: "MSS.00010008", Message: "Invalid token in the header"},
			auth: true, token: true},
		{name: "400 MSS.00010009 token of another project", err: &APIError{StatusCode: 400, Code: "MSS.00010009",
			Message: "urlTenantId is not equal tokenTenantId"}, auth: true},
		{name: "401 MSS.00010009 is still no token to refresh", err: &APIError{StatusCode: 401, Code: "MSS.00010009"}, auth: true},
		{name: "IAM refused the password", err: &APIError{Err: rejected}, auth: true},
		{name: "a credential source's refusal, whatever it quotes", err: &APIError{Code: "APIGW.0301", Err: rejected}, auth: true},
		{name: "MSS.000000003 invalid parameter", err: &APIError{StatusCode: 400, Code: "MSS.000000003"}, verifies: true},
		{name: "MSS.000000002 internal error", err: &APIError{StatusCode: 500, Code: "MSS.000000002"}, verifies: true},
		{name: "another MSS code", err: &APIError{StatusCode: 400, Code: "MSS.00010010"}, verifies: true},
		{name: "gateway 404", err: &APIError{StatusCode: 404, Code: "APIGW.0101"}},
		{name: "gateway 429", err: &APIError{StatusCode: 429, Code: "APIGW.0308"}, throttled: true},
		{name: "429 without a body", err: &APIError{StatusCode: 429}, throttled: true},
		{name: "405 APIGW.0501 quota used up", err: &APIError{StatusCode: 405, Code: "APIGW.0501"}, throttled: true},
		{name: "405 APIG.0501 quota used up", err: &APIError{StatusCode: 405, Code: "APIG.0501"}, throttled: true},
		{name: "405 without a code", err: &APIError{StatusCode: 405}},
		{name: "no answer", err: &APIError{Err: context.DeadlineExceeded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.err
			if e.AuthFailed() != tc.auth || e.TokenRejected() != tc.token || e.Verifies() != tc.verifies || e.Throttled() != tc.throttled {
				t.Errorf("AuthFailed %v TokenRejected %v Verifies %v Throttled %v; want %v %v %v %v",
					e.AuthFailed(), e.TokenRejected(), e.Verifies(), e.Throttled(), tc.auth, tc.token, tc.verifies, tc.throttled)
			}
		})
	}
}

// TestQuota reads the gateway's throttling messages as Huawei documents them and in the
// variants a lenient reader should take; anything else states no quota.
func TestQuota(t *testing.T) {
	const reached = "The throttling threshold has been reached: policy user over ratelimit,"
	for _, tc := range []struct {
		name   string
		err    *APIError
		want   Quota
		stated bool
	}{
		{name: "per minute, as documented", err: &APIError{StatusCode: 429, Code: "APIGW.0308", Message: reached + "limit:20,time:1 minute"},
			want: Quota{Limit: 20, Period: time.Minute}, stated: true},
		{name: "per second, as documented", err: &APIError{StatusCode: 429, Code: "APIGW.0308", Message: reached + "limit:20,time:1 second"},
			want: Quota{Limit: 20, Period: time.Second}, stated: true},
		{name: "spaces, as the simulator writes it", err: &APIError{StatusCode: 429, Code: "APIGW.0308", Message: reached + " limit:20, time:1 second"},
			want: Quota{Limit: 20, Period: time.Second}, stated: true},
		{name: "loose spelling", err: &APIError{StatusCode: 429, Code: "APIG.0308", Message: "Policy IP over ratelimit, LIMIT = 5 , Time: 10 Seconds"},
			want: Quota{Limit: 5, Period: 10 * time.Second}, stated: true},
		{name: "a fraction per second", err: &APIError{StatusCode: 429, Code: "APIGW.0308", Message: reached + "limit:2.5,time:1 second"},
			want: Quota{Limit: 2.5, Period: time.Second}, stated: true},
		{name: "no count before the unit", err: &APIError{StatusCode: 429, Message: "limit:100,time:minute"},
			want: Quota{Limit: 100, Period: time.Minute}, stated: true},
		{name: "per hour", err: &APIError{StatusCode: 429, Message: reached + "limit:1000,time:1 hour"},
			want: Quota{Limit: 1000, Period: time.Hour}, stated: true},
		{name: "per day, plural", err: &APIError{StatusCode: 429, Message: reached + "limit:10000,time:2 days"},
			want: Quota{Limit: 10000, Period: 48 * time.Hour}, stated: true},
		{name: "APIGW.0501 used up", err: &APIError{StatusCode: 405, Code: "APIGW.0501", Message: "The app quota has been used up."},
			want: Quota{UsedUp: true}, stated: true},
		{name: "APIG.0501 without a message", err: &APIError{StatusCode: 405, Code: "APIG.0501"},
			want: Quota{UsedUp: true}, stated: true},
		{name: "used-up wording on a 429", err: &APIError{StatusCode: 429, Code: "APIGW.0308", Message: "The quota has been used up"},
			want: Quota{UsedUp: true}, stated: true},
		{name: "exhausted wording on a 429", err: &APIError{StatusCode: 429, Message: "Daily quota exhausted: limit:500,time:1 day"},
			want: Quota{Limit: 500, Period: 24 * time.Hour, UsedUp: true}, stated: true},
		{name: "429 in other words", err: &APIError{StatusCode: 429, Code: "APIG.0308", Message: "The request is throttled."}},
		{name: "429 without a body", err: &APIError{StatusCode: 429}},
		{name: "limit without a period", err: &APIError{StatusCode: 429, Message: "limit:20"}},
		{name: "period without a limit", err: &APIError{StatusCode: 429, Message: "ratelimit,time:1 second"}},
		{name: "unknown unit", err: &APIError{StatusCode: 429, Message: "limit:20,time:1 fortnight"}},
		{name: "no limit", err: &APIError{StatusCode: 429, Message: "limit:0,time:1 second"}},
		{name: "no period", err: &APIError{StatusCode: 429, Message: "limit:20,time:0 second"}},
		{name: "a large limit", err: &APIError{StatusCode: 429, Message: "limit:99999999999999999999,time:1 second"},
			want: Quota{Limit: 1e20, Period: time.Second}, stated: true},
		{name: "a limit past float64", err: &APIError{StatusCode: 429, Message: "limit:" + strings.Repeat("9", 400) + ",time:1 second"}},
		{name: "a period past the bound", err: &APIError{StatusCode: 429, Message: "limit:1,time:10001 days"}},
		{name: "not throttled", err: &APIError{StatusCode: 400, Code: "MSS.000000003", Message: "limit:20,time:1 second, quota used up"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.err.Quota()
			if got != tc.want || ok != tc.stated {
				t.Errorf("Quota() = %+v, %v; want %+v, %v", got, ok, tc.want, tc.stated)
			}
		})
	}
}

// FuzzQuota: any message gives a quota that makes sense, or none, and never a panic.
func FuzzQuota(f *testing.F) {
	for _, m := range []string{
		"The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 minute",
		"The throttling threshold has been reached: policy user over ratelimit, limit:20, time:1 second",
		"limit:2.5,time:1 second", "limit:99999999999999999999,time:9999 days", "time:1 s limit:1",
		"The app quota has been used up.", "limit:\u0130,time:\u212a", "", "limit:1e9,time:-1 hour",
	} {
		f.Add(429, "APIGW.0308", m)
	}
	f.Add(405, "APIG.0501", "")
	f.Fuzz(func(t *testing.T, status int, code, msg string) {
		e := &APIError{StatusCode: status, Code: code, Message: msg}
		q, ok := e.Quota()
		if !ok {
			if q.Limit != 0 || q.Period != 0 || q.UsedUp {
				t.Errorf("no quota stated, yet %+v", q)
			}
			return
		}
		if !e.Throttled() {
			t.Errorf("a quota %+v from an answer that is not throttled", q)
		}
		if (q.Limit > 0) != (q.Period > 0) || q.Limit < 0 || q.Period < 0 || q.Period > 10000*24*time.Hour {
			t.Errorf("Quota() = %+v: a limit needs its period, both positive and bounded", q)
		}
		if !q.UsedUp && q.Limit == 0 {
			t.Errorf("ok with neither a limit nor a used-up quota: %+v", q)
		}
	})
}

// TestCodesThroughTheClient: MetaStudio's token codes and the gateway's used-up quota, as
// the client reads them off the wire.
func TestCodesThroughTheClient(t *testing.T) {
	for _, tc := range []struct {
		name, body             string
		status                 int
		auth, token, throttled bool
		wantQuota              Quota
	}{
		{name: "invalid token", status: 400, body: `{"error_code":"MSS.00010008","error_msg":"Invalid token in the header"}`,
			auth: true, token: true},
		{name: "token of another project", status: 400, body: `{"error_code":"MSS.00010009","error_msg":"urlTenantId is not equal tokenTenantId"}`,
			auth: true},
		{name: "quota used up", status: 405, body: `{"error_code":"APIGW.0501","error_msg":"The app quota has been used up."}`,
			throttled: true, wantQuota: Quota{UsedUp: true}},
		{name: "per-minute quota", status: 429, body: `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 minute"}`,
			throttled: true, wantQuota: Quota{Limit: 20, Period: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestClient(t, answer(tc.status, "application/json", tc.body))
			_, err := c.ShowTask(context.Background(), "t1")
			var e *APIError
			if !errors.As(err, &e) {
				t.Fatalf("want *APIError, got %T %v", err, err)
			}
			if e.AuthFailed() != tc.auth || e.TokenRejected() != tc.token || e.Throttled() != tc.throttled || e.Verifies() {
				t.Errorf("AuthFailed %v TokenRejected %v Throttled %v Verifies %v", e.AuthFailed(), e.TokenRejected(), e.Throttled(), e.Verifies())
			}
			if q, _ := e.Quota(); q != tc.wantQuota {
				t.Errorf("Quota() = %+v, want %+v", q, tc.wantQuota)
			}
		})
	}
}
