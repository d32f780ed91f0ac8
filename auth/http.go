package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxBody caps what is read of an IAM or metadata answer.
const maxBody = 1 << 20

// noRedirect keeps a client from re-sending credentials to wherever a 3xx points.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// iamTimeout bounds every IAM call (the token, the project lookup).
const iamTimeout = 30 * time.Second

// iamTransport is the one keep-alive pool of every IAM call in the process (proxies from
// the environment, TLS verified), built at first use.
var iamTransport = sync.OnceValue(func() http.RoundTripper {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
})

// newClient is an HTTP client for credential services: no redirects, TLS verified. A nil
// rt uses the shared IAM transport.
func newClient(rt http.RoundTripper, timeout time.Duration) *http.Client {
	if rt == nil {
		rt = iamTransport()
	}
	return &http.Client{Transport: rt, Timeout: timeout, CheckRedirect: noRedirect}
}

// do sends req, reads at most maxBody of the answer and reports the call to o. A call
// that got no complete answer fails as unavailable (timeout or network); a 5xx answer is
// returned, for the caller to judge.
func do(ctx context.Context, c *http.Client, req *http.Request, op string, o Observer, now func() time.Time) (*http.Response, []byte, error) {
	start := time.Now()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		Observe(o, op, nil, time.Since(start), now(), time.Time{})
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, nil, unavailable(transportReason(err), fmt.Errorf("%s: %w", op, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	Observe(o, op, resp, time.Since(start), now(), time.Time{})
	switch {
	case err != nil:
		return nil, nil, unavailable(transportReason(err), fmt.Errorf("%s: HTTP %d: reading body: %w", op, resp.StatusCode, err))
	case len(body) > maxBody:
		return nil, nil, unavailable(ReasonServer, fmt.Errorf("%s: HTTP %d: body larger than %d bytes", op, resp.StatusCode, maxBody))
	}
	return resp, body, nil
}

// serviceError describes a failed answer of IAM or the metadata service with what its
// body says ({"error":{"message"}}, {"error_code","error_msg"}, or short text), never
// repeating secret, which the caller sent.
func serviceError(op string, resp *http.Response, body []byte, secret string) error {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		ErrorCode string `json:"error_code"`
		ErrorMsg  string `json:"error_msg"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil {
		msg = strings.TrimSpace(e.ErrorCode + " " + firstNonEmpty(e.ErrorMsg, e.Error.Message))
	} else if text := strings.TrimSpace(string(body)); len(text) <= 200 && !strings.ContainsAny(text, "<{") {
		msg = text
	}
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "<secret>")
	}
	if len(msg) > 256 {
		msg = strings.ToValidUTF8(msg[:256], "") + "…"
	}
	if msg == "" {
		return fmt.Errorf("%s: HTTP %d", op, resp.StatusCode)
	}
	return fmt.Errorf("%s: HTTP %d: %s", op, resp.StatusCode, msg)
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
