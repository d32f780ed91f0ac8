package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// Operation names of the IAM calls, for the API metrics.
const (
	OpIAMToken    = "IAMToken"
	OpIAMProjects = "IAMProjects"
)

// tokenRefreshAhead is how long before expiry an IAM token is replaced (tokens live 24 h).
const tokenRefreshAhead = time.Hour

// IAMToken gets X-Auth-Tokens from IAM with an IAM user's password, caches them and
// refreshes them ahead of expiry, one refresh at a time.
type IAMToken struct {
	endpoint, domain, user string
	password               *fileSet
	projectID, region      string
	client                 *http.Client
	observer               Observer
	now                    func() time.Time
	refresh                refreshLock

	mu      sync.Mutex
	token   string
	expires time.Time
	project string
	gen     uint64
}

func newIAMToken(p *config.IAMPassword, o Options) *IAMToken {
	return &IAMToken{
		endpoint: o.IAMEndpoint, domain: p.DomainName, user: p.UserName,
		password:  newFileSet(part{value: string(p.Password), path: p.PasswordFile}),
		projectID: o.ProjectID, region: o.Region,
		client:   newClient(o.Transport, 30*time.Second),
		observer: o.Observer, now: o.Now, refresh: make(refreshLock, 1),
	}
}

// Authenticate sets X-Auth-Token, getting a token first if none is fresh.
func (t *IAMToken) Authenticate(ctx context.Context, req *http.Request, _ []byte) error {
	token, err := t.get(ctx, "")
	if err != nil {
		return err
	}
	req.Header.Set(HeaderAuthToken, token)
	return nil
}

// Refresh replaces the token that refused carried, unless it was replaced already.
func (t *IAMToken) Refresh(ctx context.Context, refused *http.Request) error {
	_, err := t.get(ctx, refused.Header.Get(HeaderAuthToken))
	return err
}

// Generation changes with every new token.
func (t *IAMToken) Generation() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gen
}

// ProjectID is the project the token is scoped to, from token.project.id.
func (t *IAMToken) ProjectID(ctx context.Context) (string, error) {
	if _, err := t.get(ctx, ""); err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.project == "" {
		return "", errors.New("IAM's token names no project")
	}
	return t.project, nil
}

// current returns the cached token unless it is missing, near expiry, or refused.
func (t *IAMToken) current(refused string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == "" || t.token == refused || t.expires.Sub(t.now()) < tokenRefreshAhead {
		return "", false
	}
	return t.token, true
}

// get returns a fresh token, fetching one (one caller at a time) if the cached one is not.
func (t *IAMToken) get(ctx context.Context, refused string) (string, error) {
	if token, ok := t.current(refused); ok {
		return token, nil
	}
	if err := t.refresh.lock(ctx); err != nil {
		return "", err
	}
	defer t.refresh.unlock()
	if token, ok := t.current(refused); ok { // another caller refreshed while we waited
		return token, nil
	}
	token, expires, project, err := t.fetch(ctx)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.token, t.expires, t.project = token, expires, project
	t.gen++
	return token, nil
}

// fetch calls POST /v3/auth/tokens with the password method.
func (t *IAMToken) fetch(ctx context.Context) (token string, expires time.Time, project string, err error) {
	pw, _, err := t.password.get()
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("IAM password: %w", err)
	}
	password := pw[0]
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
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			err = fmt.Errorf("%w: %w", ErrRejected, err)
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
		return "", time.Time{}, "", fmt.Errorf("%s: HTTP %d without a token (X-Subject-Token and token.expires_at)", OpIAMToken, resp.StatusCode)
	}
	expires, err = time.Parse(time.RFC3339Nano, parsed.Token.ExpiresAt)
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("%s: token.expires_at %q is not a time", OpIAMToken, parsed.Token.ExpiresAt)
	}
	return token, expires, parsed.Token.Project.ID, nil
}

// ResolveProject finds the project id of region for credentials that have none
// configured: from the IAM token's scope, or with IAM's GET /v3/projects?name={region},
// signed with the AK/SK. Exactly one project must come back.
func ResolveProject(ctx context.Context, a Authenticator, o Options) (string, error) {
	if t, ok := a.(*IAMToken); ok {
		return t.ProjectID(ctx)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	req, err := http.NewRequest(http.MethodGet, o.IAMEndpoint+"/v3/projects?name="+url.QueryEscape(o.Region), nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", OpIAMProjects, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := a.Authenticate(ctx, req, nil); err != nil {
		return "", err
	}
	resp, body, err := do(ctx, newClient(o.Transport, 30*time.Second), req, OpIAMProjects, o.Observer, o.Now)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
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
