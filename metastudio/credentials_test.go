package metastudio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// refreshing is token credentials that count their refreshes.
type refreshing struct {
	refreshes atomic.Int32
	err       error // what Authenticate fails with, if set
}

func (r *refreshing) Authenticate(_ context.Context, req *http.Request, _ []byte) error {
	if r.err != nil {
		return r.err
	}
	req.Header.Set(auth.HeaderAuthToken, "revoked")
	return nil
}

func (r *refreshing) Refresh(context.Context) error { r.refreshes.Add(1); return nil }

// TestOneRequestPerCall: a 401 is answered by no retry and no refresh in the client; the
// exporter's AK guard decides what comes next.
func TestOneRequestPerCall(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: decrypt token fail"}`)
	}))
	defer srv.Close()
	creds := &refreshing{}
	c, err := NewClient(Options{Endpoint: srv.URL, ProjectID: "p1", Auth: creds})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ShowTask(context.Background(), "t1")
	var e *APIError
	if !errors.As(err, &e) || !e.AuthFailed() || e.Verifies() {
		t.Fatalf("want an auth failure, got %v", err)
	}
	if hits.Load() != 1 || creds.refreshes.Load() != 0 {
		t.Errorf("%d requests and %d refreshes for one call, want 1 and 0", hits.Load(), creds.refreshes.Load())
	}
}

// TestCredentialErrors: credentials refused by their source fail as an auth failure;
// credentials that could not be had otherwise are unavailable, which is no refusal.
func TestCredentialErrors(t *testing.T) {
	for _, tc := range []struct {
		name                string
		err                 error
		authFailed, unavail bool
	}{
		{"IAM refused the password", fmt.Errorf("%w: IAMToken: HTTP 401: IAM.0004", auth.ErrRejected), true, false},
		{"IAM timed out", fmt.Errorf("IAMToken: %w", context.DeadlineExceeded), false, true},
		{"a caller left", errors.New("waiting for an IAM token: context deadline exceeded"), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
			defer srv.Close()
			c, _ := NewClient(Options{Endpoint: srv.URL, ProjectID: "p1", Auth: &refreshing{err: tc.err}})
			_, err := c.ShowTask(context.Background(), "t1")
			var e *APIError
			if !errors.As(err, &e) || !errors.Is(err, ErrCredentials) {
				t.Fatalf("want ErrCredentials, got %v", err)
			}
			if e.AuthFailed() != tc.authFailed || e.CredentialsUnavailable() != tc.unavail || e.Verifies() {
				t.Errorf("AuthFailed %v CredentialsUnavailable %v Verifies %v", e.AuthFailed(), e.CredentialsUnavailable(), e.Verifies())
			}
			if hits.Load() != 0 {
				t.Error("a call went out without credentials")
			}
		})
	}
}

const (
	simAK      = "SIMAK"
	simSK      = "sim-secret-key"
	simProject = "0123456789abcdef0123456789abcdef"
)

// TestQuerySentAsSigned: SearchTask with values that url.Values would send differently
// from what is signed passes the simulator's verifier, which is written independently of
// the signer and reads "+" on the wire as a plus sign.
func TestQuerySentAsSigned(t *testing.T) {
	sim := simulator.New(simulator.Options{Credentials: map[string]string{simAK: simSK}, ProjectID: simProject})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := NewClient(Options{Endpoint: srv.URL, ProjectID: simProject,
		Auth: auth.NewSigner(auth.Keys{AccessKey: simAK, SecretKey: simSK}, time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []SearchParams{
		{BusinessID: "b+1 2~"},
		{BusinessID: "业务 ID/é?&=#%"},
		{Resources: []string{"qa pair", "a+b", "知识库"}, BusinessID: " leading and trailing "},
	} {
		if _, err := c.SearchTask(context.Background(), p); err != nil {
			t.Errorf("SearchTask %+v: %v", p, err)
		}
	}
}

// TestSkewCorrectedSigning: with the local clock 20 minutes behind the API's, a hundred
// calls cost at most one signature failure (the 401 whose Date header shows the skew).
func TestSkewCorrectedSigning(t *testing.T) {
	sim := simulator.New(simulator.Options{Credentials: map[string]string{simAK: simSK}, ProjectID: simProject, Tasks: 1})
	sim.SetSkew(20 * time.Minute) // the API's clock is 20 minutes ahead of ours
	srv := httptest.NewServer(sim)
	defer srv.Close()
	clock := auth.NewClock(time.Now)
	c, err := NewClient(Options{Endpoint: srv.URL, ProjectID: simProject, Clock: clock,
		Auth: auth.New(config.Credentials{AccessKey: simAK, SecretKey: simSK}, auth.Options{Clock: clock})})
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	for range 100 {
		_, err := c.ShowTask(context.Background(), sim.TaskIDs()[0])
		var e *APIError
		switch {
		case errors.As(err, &e) && e.AuthFailed():
			failures++
		case err != nil:
			t.Fatal(err)
		}
	}
	if failures > 1 {
		t.Errorf("%d auth failures in 100 calls with a 20-minute skew, want at most 1", failures)
	}
	if got := clock.Correction(); got < 19*time.Minute || got > 21*time.Minute {
		t.Errorf("correction %s, want about 20m", got)
	}
}

// TestDateSampling: the Date header is read on the first answer, on every 401, and
// otherwise at most once per auth.SkewSampleInterval, not on every call.
func TestDateSampling(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Thu, 26 Nov 2026 08:00:00 GMT")
		w.WriteHeader(int(status.Load()))
		fmt.Fprint(w, `{"task_id":"t1"}`)
	}))
	defer srv.Close()
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	clock := auth.NewClock(func() time.Time { return now })
	rec := &dates{}
	c, _ := NewClient(Options{Endpoint: srv.URL, ProjectID: "p1", Observer: rec, Clock: clock, Now: func() time.Time { return now },
		Auth: auth.NewSigner(testKeys, time.Now)})
	call := func() { _, _ = c.ShowTask(context.Background(), "t1") }
	call()
	call()
	status.Store(401)
	call()
	status.Store(200)
	call()
	now = now.Add(auth.SkewSampleInterval)
	call()
	if got, want := fmt.Sprint(rec.sampled), "[true false true false true]"; got != want {
		t.Errorf("Date read on calls %s, want %s", got, want)
	}
}

type dates struct{ sampled []bool }

func (d *dates) ObserveCall(c auth.Call) { d.sampled = append(d.sampled, !c.ServerDate.IsZero()) }
