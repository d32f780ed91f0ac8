// Package metastudio is a small client for the MetaStudio import/export task API
// (ShowTask, SearchTask). It decodes every field leniently, turns every failure into an
// *APIError or a plain error with context, and never follows a redirect.
package metastudio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

// MaxBodyBytes caps how much of an answer is read: a task is a few hundred bytes, and a
// broken proxy must not make the exporter buffer gigabytes.
const MaxBodyBytes = 1 << 20

// Operation names, as they appear in the operation label of the API metrics.
const (
	OpShowTask   = "ShowTask"
	OpSearchTask = "SearchTask"
)

// Options configures a Client.
type Options struct {
	Endpoint  string // scheme://host[:port]
	ProjectID string
	Auth      auth.Authenticator
	// MaxConns sizes the keep-alive pool; it should equal the scrape concurrency.
	MaxConns  int
	Observer  auth.Observer // may be nil
	UserAgent string
	Now       func() time.Time // the exporter's clock (default time.Now)
	// Clock, if set, is fed the Date header of answers (every 401, else at most once per
	// auth.SkewSampleInterval), so that credentials signing with it correct the skew.
	Clock *auth.Clock
	// Transport replaces the default transport (tests); nil builds one from MaxConns.
	Transport http.RoundTripper
}

// Client calls the MetaStudio API. It is safe for concurrent use.
type Client struct {
	endpoint  *url.URL
	projectID string
	auth      auth.Authenticator
	rt        http.RoundTripper
	observer  auth.Observer
	userAgent string
	now       func() time.Time
	clock     *auth.Clock
}

// NewClient builds a Client. The transport honours HTTPS_PROXY/NO_PROXY, verifies TLS
// (private CAs come through SSL_CERT_FILE/SSL_CERT_DIR) and keeps MaxConns idle
// connections per host.
func NewClient(o Options) (*Client, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("endpoint %q is not scheme://host[:port]", o.Endpoint)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	rt := o.Transport
	if rt == nil {
		rt = NewTransport(o.MaxConns)
	}
	return &Client{
		endpoint:  u,
		projectID: o.ProjectID,
		auth:      o.Auth,
		// The transport itself, without an http.Client: a call is one request, and a
		// redirect is handed back, never followed (it would re-send the signature
		// elsewhere, and every rejected signature counts toward the gateway's AK lock).
		rt:        rt,
		observer:  o.Observer,
		userAgent: o.UserAgent,
		now:       o.Now,
		clock:     o.Clock,
	}, nil
}

// NewTransport is the exporter's HTTP transport: proxies from the environment, standard
// TLS verification, and a keep-alive pool of maxConns connections per host.
func NewTransport(maxConns int) *http.Transport {
	if maxConns < 1 {
		maxConns = 1
	}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
	}
}

// CloseIdleConnections releases the keep-alive pool (on reload or shutdown).
func (c *Client) CloseIdleConnections() {
	if t, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// ShowTask fetches one task: GET /v2/{project_id}/ies/task/{id}.
func (c *Client) ShowTask(ctx context.Context, id string) (*Task, error) {
	var t Task
	if err := c.get(ctx, OpShowTask, "/v2/"+url.PathEscape(c.projectID)+"/ies/task/"+url.PathEscape(id), nil,
		func(body []byte) error { return decodeTask(body, &t) }); err != nil {
		return nil, err
	}
	return &t, nil
}

// SearchTask lists one page of tasks: GET /v2/{project_id}/ies/task.
func (c *Client) SearchTask(ctx context.Context, p SearchParams) (*TaskPage, error) {
	q := query{}
	for _, r := range p.Resources {
		q.Add("resource", r)
	}
	if p.BusinessID != "" {
		q.Set("business_id", p.BusinessID)
	}
	if p.BeginTime > 0 {
		q.Set("begin_time", strconv.FormatInt(p.BeginTime, 10))
	}
	if p.EndTime > 0 {
		q.Set("end_time", strconv.FormatInt(p.EndTime, 10))
	}
	if p.Limit > 0 {
		q.Set("offset", strconv.Itoa(p.Offset))
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	var page TaskPage
	if err := c.get(ctx, OpSearchTask, "/v2/"+url.PathEscape(c.projectID)+"/ies/task", q,
		func(body []byte) error { return decodeObject(body, &page) }); err != nil {
		return nil, err
	}
	return &page, nil
}

// get sends one authenticated GET and decodes a 2xx answer, which must be a JSON object
// without an error code, with decode. Everything else becomes an error; the call is
// observed either way. A call is one request: nothing is retried here, not even after a
// 401 (the exporter's AK guard decides, since every refused signature counts toward the
// gateway's AK lock).
func (c *Client) get(ctx context.Context, op, path string, q query, decode func(body []byte) error) error {
	u := *c.endpoint
	u.Path = path
	u.RawQuery = q.encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%s: building request: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json") // as the SDK sends it, even on GET
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	req.Header.Set(auth.HeaderProjectID, c.projectID)
	if err := c.auth.Authenticate(ctx, req, nil); err != nil {
		return &APIError{Operation: op, Err: fmt.Errorf("%w: %w", ErrCredentials, err)}
	}

	start := time.Now()
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		auth.Observe(c.observer, op, nil, time.Since(start), c.now(), time.Time{})
		return &APIError{Operation: op, Err: transportError(ctx, err)}
	}
	defer resp.Body.Close()
	buf := bodyPool.Get().(*bytes.Buffer)
	defer putBody(buf)
	_, readErr := buf.ReadFrom(io.LimitReader(resp.Body, MaxBodyBytes+1))
	body := buf.Bytes() // decoding copies what it keeps; errors copy their text
	received := c.now()
	auth.Observe(c.observer, op, resp, time.Since(start), received, c.sampleDate(resp, received))

	apiErr := &APIError{Operation: op, StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	switch {
	case readErr != nil:
		apiErr.Err = fmt.Errorf("%w: %w", errRead, transportError(ctx, readErr))
		return apiErr
	case len(body) > MaxBodyBytes:
		apiErr.Err = ErrBodyTooLarge
		return apiErr
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		apiErr.fillFromBody(body)
		if apiErr.Throttled() {
			apiErr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		}
		return apiErr
	}
	// A 2xx that still carries an error code is an error (some gateways answer 200).
	if code, msg, reqID, ok := errorFields(body); ok {
		apiErr.Code, apiErr.Message = code, msg
		if reqID != "" {
			apiErr.RequestID = reqID
		}
		return apiErr
	}
	err = decode(body)
	if err != nil {
		apiErr.Err = err
		return apiErr
	}
	return nil
}

// bodyPool holds the buffers answers are read into: a task is a few hundred bytes, read
// once per call.
var bodyPool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}

// putBody returns a buffer to the pool, unless an odd answer made it large.
func putBody(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 {
		b.Reset()
		bodyPool.Put(b)
	}
}

// sampleDate reads the answer's Date header for the clock skew when it is due: on every
// 401 (a skewed X-Sdk-Date is answered with one) and at most once per
// auth.SkewSampleInterval otherwise. It feeds the Clock and returns the date, or zero.
func (c *Client) sampleDate(resp *http.Response, received time.Time) time.Time {
	if c.clock == nil {
		if resp.StatusCode != http.StatusUnauthorized {
			return time.Time{}
		}
	} else if resp.StatusCode != http.StatusUnauthorized && !c.clock.Due(received) {
		return time.Time{}
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	if c.clock != nil {
		c.clock.Sample(date, received)
	}
	return date
}

// query is a request's query. It is sent exactly as the signature covers it: keys
// sorted, each key's values sorted, keys and values escaped with auth.Escape (a space is
// %20, never "+"), so that the bytes sent and the bytes signed are the same for any value.
type query map[string][]string

// Add appends a value to key.
func (q query) Add(key, value string) { q[key] = append(q[key], value) }

// Set replaces the values of key.
func (q query) Set(key, value string) { q[key] = []string{value} }

func (q query) encode() string { return auth.CanonicalQuery(q) }

// transportError reports a call cut by the scrape's deadline as just that.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// decodeObject requires a JSON object and decodes it into v.
func decodeObject(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("answer is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	return nil
}
