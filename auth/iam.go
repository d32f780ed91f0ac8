package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// Operation names of the IAM calls, for the API metrics.
const (
	OpIAMToken    = "IAMToken"
	OpIAMProjects = "IAMProjects"
)

const (
	// tokenRefreshAhead is how long before expiry an IAM token is replaced (tokens live
	// 24 h). Until it expires, the old token is used while the new one is fetched.
	tokenRefreshAhead = time.Hour
	// passwordWindow and passwordAttempts: IAM locks a user after 5 wrong passwords in 15
	// minutes. After IAM refuses a password, one more attempt is allowed in the window.
	passwordWindow   = 15 * time.Minute
	passwordAttempts = 2
)

// IAMToken gets X-Auth-Tokens from IAM with an IAM user's password, caches them and
// refreshes them ahead of expiry. Fetches run detached from the callers (see flight),
// one at a time. It never risks locking the user: after IAM refuses the password, at
// most one more attempt goes out in the next 15 minutes, unless the password file
// changes.
type IAMToken struct {
	endpoint, domain, user string
	password               *fileSet
	projectID, region      string
	client                 *http.Client
	observer               Observer
	failures               *FetchFailures
	now                    func() time.Time
	flight                 flight

	mu         sync.Mutex
	token      string
	expires    time.Time
	project    string
	refusedGen uint64      // the password generation that refusals counts for
	refusals   []time.Time // when IAM refused it, within passwordWindow
	refusal    string      // IAM's last refusal, for the gate's error
}

func newIAMToken(p *config.IAMPassword, o Options) *IAMToken {
	return &IAMToken{
		endpoint: o.IAMEndpoint, domain: p.DomainName, user: p.UserName,
		password:  newFileSet(part{value: string(p.Password), path: p.PasswordFile}),
		projectID: o.ProjectID, region: o.Region,
		client:   newClient(o.Transport, iamTimeout),
		observer: o.Observer, failures: o.FetchFailures, now: o.Now,
	}
}

// Authenticate sets X-Auth-Token, getting a token first if none is valid.
func (t *IAMToken) Authenticate(ctx context.Context, req *http.Request, _ []byte) error {
	token, _, err := t.get(ctx)
	if err != nil {
		return err
	}
	req.Header.Set(HeaderAuthToken, token)
	return nil
}

// Refresh discards the token the API refused and fetches a new one.
func (t *IAMToken) Refresh(ctx context.Context) error {
	t.mu.Lock()
	t.token = ""
	t.mu.Unlock()
	_, _, err := t.get(ctx)
	return err
}

// Generation changes when a new password is read from the password file; a new token
// does not change it.
func (t *IAMToken) Generation() uint64 {
	_, gen, _ := t.password.get()
	return gen
}

// ProjectID is the project the token is scoped to, from token.project.id.
func (t *IAMToken) ProjectID(ctx context.Context) (string, error) {
	_, project, err := t.get(ctx)
	if err == nil && project == "" {
		err = errors.New("IAM's token names no project")
	}
	return project, err
}

// get returns a valid token and its project. A token that nears its expiry is still
// returned while a new one is fetched in the background; with none valid, the caller
// waits for the fetch.
func (t *IAMToken) get(ctx context.Context) (token, project string, err error) {
	t.mu.Lock()
	token, project, left := t.token, t.project, t.expires.Sub(t.now())
	t.mu.Unlock()
	if token != "" && left > 0 {
		if left < tokenRefreshAhead {
			t.flight.start(t.fetchAndStore)
		}
		return token, project, nil
	}
	if err := t.flight.do(ctx, "an IAM token", t.fetchAndStore); err != nil {
		return "", "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == "" {
		return "", "", errors.New("the IAM token was discarded as soon as it came: try again")
	}
	return t.token, t.project, nil
}

// fetchAndStore gets a token from IAM, if the password gate allows, and caches it.
func (t *IAMToken) fetchAndStore() error {
	pw, gen, err := t.password.get()
	if err != nil {
		return fmt.Errorf("IAM password: %w", err)
	}
	if err := t.gate(gen); err != nil {
		return err
	}
	token, expires, project, err := t.fetch(context.Background(), pw[0])
	if err != nil {
		t.failures.count(SourceIAM, err)
		var refused *passwordRefused
		if errors.As(err, &refused) {
			t.mu.Lock()
			t.refusals = append(t.refusals, t.now())
			t.refusal = err.Error()
			t.mu.Unlock()
		}
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.token, t.expires, t.project = token, expires, project
	return nil
}

// gate refuses an attempt with the password of generation gen when IAM refused it
// passwordAttempts times within passwordWindow: IAM would lock the user soon. A new
// password (a new generation) opens the gate.
func (t *IAMToken) gate(gen uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.refusedGen {
		t.refusedGen, t.refusals, t.refusal = gen, nil, ""
	}
	now := t.now()
	for len(t.refusals) > 0 && now.Sub(t.refusals[0]) >= passwordWindow {
		t.refusals = t.refusals[1:]
	}
	if len(t.refusals) < passwordAttempts {
		return nil
	}
	next := t.refusals[0].Add(passwordWindow)
	return fmt.Errorf("%w: IAM refused this password %d times in the last %s; no new attempt before %s, so that IAM does not lock the user (5 wrong passwords in 15 minutes); a new password file is tried at once (last answer: %s)",
		ErrRejected, len(t.refusals), passwordWindow, next.UTC().Format(time.RFC3339), t.refusal)
}

// passwordRefused is IAM refusing the user's password (a 401 or 403 of the token call).
type passwordRefused struct{ err error }

func (e *passwordRefused) Error() string { return e.err.Error() }
func (e *passwordRefused) Unwrap() error { return e.err }

// fetch calls POST /v3/auth/tokens with the password method. A 400 is ErrRejected, a
// 401 or 403 also a passwordRefused; a 5xx or an unusable answer is unavailable.
func (t *IAMToken) fetch(ctx context.Context, password string) (token string, expires time.Time, project string, err error) {
	type name struct {
		Name string `json:"name,omitempty"`
		ID   string `json:"id,omitempty"`
	}
	var body struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						Name     string `json:"name"`
						Password string `json:"password"`
						Domain   name   `json:"domain"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope struct {
				Project name `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	body.Auth.Identity.Methods = []string{"password"}
	body.Auth.Identity.Password.User.Name = t.user
	body.Auth.Identity.Password.User.Password = password
	body.Auth.Identity.Password.User.Domain.Name = t.domain
	if t.projectID != "" {
		body.Auth.Scope.Project.ID = t.projectID
	} else {
		body.Auth.Scope.Project.Name = t.region
	}
	data, err := json.Marshal(body)
	if err != nil {
		return "", time.Time{}, "", err
	}
	req, err := http.NewRequest(http.MethodPost, t.endpoint+"/v3/auth/tokens?nocatalog=true", bytes.NewReader(data))
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("%s: %w", OpIAMToken, err)
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	resp, answer, err := do(ctx, t.client, req, OpIAMToken, t.observer, t.now)
	if err != nil {
		return "", time.Time{}, "", err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		err := serviceError(OpIAMToken, resp, answer, password)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			err = &passwordRefused{fmt.Errorf("%w: %w", ErrRejected, err)}
		case http.StatusBadRequest:
			err = fmt.Errorf("%w: %w", ErrRejected, err)
		default:
			err = unavailable(ReasonServer, err)
		}
		return "", time.Time{}, "", err
	}
	var parsed struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			Project   struct {
				ID string `json:"id"`
			} `json:"project"`
		} `json:"token"`
	}
	token = resp.Header.Get("X-Subject-Token")
	if err := json.Unmarshal(answer, &parsed); err != nil || token == "" {
		return "", time.Time{}, "", unavailable(ReasonServer, fmt.Errorf("%s: HTTP %d without a token (X-Subject-Token and token.expires_at)", OpIAMToken, resp.StatusCode))
	}
	expires, err = time.Parse(time.RFC3339Nano, parsed.Token.ExpiresAt)
	if err != nil {
		return "", time.Time{}, "", unavailable(ReasonServer, fmt.Errorf("%s: token.expires_at %q is not a time", OpIAMToken, parsed.Token.ExpiresAt))
	}
	return token, expires, parsed.Token.Project.ID, nil
}

// ResolveProject finds the project id of region for credentials that have none
// configured: from the IAM token's scope, or with IAM's GET /v3/projects?name={region},
// signed with the AK/SK. Exactly one project must come back. It is one attempt: the
// caller paces retries (a wrong SK counts toward the gateway's AK lock; a wrong password
// is gated by IAMToken).
func ResolveProject(ctx context.Context, a Authenticator, o Options) (string, error) {
	if t, ok := a.(*IAMToken); ok {
		return t.ProjectID(ctx)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	req, err := http.NewRequest(http.MethodGet, o.IAMEndpoint+"/v3/projects?name="+Escape(o.Region), nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", OpIAMProjects, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := a.Authenticate(ctx, req, nil); err != nil {
		return "", err
	}
	resp, body, err := do(ctx, newClient(o.Transport, iamTimeout), req, OpIAMProjects, o.Observer, o.Now)
	if err == nil && resp.StatusCode >= 500 {
		err = unavailable(ReasonServer, serviceError(OpIAMProjects, resp, body, ""))
	}
	if err != nil {
		o.FetchFailures.count(SourceIAM, err)
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return "", fmt.Errorf("%w: %w", ErrRejected, serviceError(OpIAMProjects, resp, body, ""))
	default:
		return "", serviceError(OpIAMProjects, resp, body, "")
	}
	var parsed struct {
		Projects []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"projects"`
	}
	if err := json.Unmarshal(body, &parsed); err != nil {
		return "", fmt.Errorf("%s: the answer is not a project list: %w", OpIAMProjects, err)
	}
	switch n := len(parsed.Projects); {
	case n == 0:
		return "", fmt.Errorf("%s: IAM lists no project named %q for these credentials: check region, or set project_id", OpIAMProjects, o.Region)
	case n > 1:
		return "", fmt.Errorf("%s: IAM lists %d projects named %q, expected exactly one: set project_id", OpIAMProjects, n, o.Region)
	case parsed.Projects[0].ID == "":
		return "", fmt.Errorf("%s: IAM's project %q has no id", OpIAMProjects, o.Region)
	}
	return parsed.Projects[0].ID, nil
}

// Inherit carries the password gate of prev over to next when both are IAM tokens of the
// same user with the same password: a reload that changed the IAM endpoint or the region,
// but not the credentials, must not let a refused password be tried again early. Other
// credentials carry nothing.
func Inherit(next, prev Authenticator) {
	n, ok := next.(*IAMToken)
	p, ok2 := prev.(*IAMToken)
	if !ok || !ok2 || n == p || n.domain != p.domain || n.user != p.user {
		return
	}
	pw, gen, err := p.password.get()
	npw, ngen, nerr := n.password.get()
	if err != nil || nerr != nil || !equal(pw, npw) {
		return
	}
	p.mu.Lock()
	refusals, refusal, refusedGen := slices.Clone(p.refusals), p.refusal, p.refusedGen
	p.mu.Unlock()
	if refusedGen != gen {
		return
	}
	n.mu.Lock()
	n.refusedGen, n.refusals, n.refusal = ngen, refusals, refusal
	n.mu.Unlock()
}
