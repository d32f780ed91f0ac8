package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Operation names of the metadata calls, for the API metrics.
const (
	OpMetadataToken       = "MetadataToken"
	OpMetadataSecurityKey = "MetadataSecurityKey"
)

const (
	// keysRefreshAhead: the SDKs replace temporary keys when fewer than 40 minutes remain.
	keysRefreshAhead = 40 * time.Minute
	// metadataTimeout is the SDKs' timeout for the metadata service.
	metadataTimeout = 3 * time.Second
	// sessionTTL is the lifetime asked for a metadata session token.
	sessionTTL = 21600 * time.Second
)

// Metadata signs with the temporary AK/SK/security token of the ECS or BMS agency, got
// from the metadata service as Huawei's SDKs get them, and refreshed ahead of expiry.
// Fetches run detached from the callers (see flight), one at a time. The keys it fetches
// itself do not make a new Generation: it does not implement Versioned.
type Metadata struct {
	endpoint string
	client   *http.Client
	observer Observer
	failures *FetchFailures
	now      func() time.Time // expiries
	signNow  func() time.Time // X-Sdk-Date
	flight   flight

	mu             sync.Mutex
	keys           Keys
	expires        time.Time
	session        string // the metadata session token: a secret
	sessionExpires time.Time
}

func newMetadata(endpoint string, o Options) *Metadata {
	// The metadata service is link-local: reached directly, never through a proxy.
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: metadataTimeout}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Metadata{
		endpoint: strings.TrimSuffix(endpoint, "/"),
		client:   newClient(transport, metadataTimeout),
		observer: o.Observer, failures: o.FetchFailures, now: o.Now, signNow: o.signingTime(),
	}
}

// Authenticate signs req with the current temporary keys.
func (m *Metadata) Authenticate(ctx context.Context, req *http.Request, body []byte) error {
	keys, err := m.get(ctx)
	if err != nil {
		return err
	}
	Sign(req, body, keys, m.signNow())
	return nil
}

// Refresh discards the keys the API refused and fetches new ones.
func (m *Metadata) Refresh(ctx context.Context) error {
	m.mu.Lock()
	m.keys = Keys{}
	m.mu.Unlock()
	_, err := m.get(ctx)
	return err
}

// get returns valid keys. Keys that near their expiry are still returned while new ones
// are fetched in the background; with none valid, the caller waits for the fetch.
func (m *Metadata) get(ctx context.Context) (Keys, error) {
	m.mu.Lock()
	keys, left := m.keys, m.expires.Sub(m.now())
	m.mu.Unlock()
	if keys.AccessKey != "" && left > 0 {
		if left < keysRefreshAhead {
			m.flight.start(m.fetchAndStore)
		}
		return keys, nil
	}
	if err := m.flight.do(ctx, "temporary keys from the metadata service", m.fetchAndStore); err != nil {
		return Keys{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys.AccessKey == "" {
		return Keys{}, errors.New("the temporary keys were discarded as soon as they came: try again")
	}
	return m.keys, nil
}

// fetchAndStore gets new keys and caches them.
func (m *Metadata) fetchAndStore() error {
	keys, expires, err := m.fetch(context.Background())
	if err != nil {
		m.failures.count(SourceMetadata, err)
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys, m.expires = keys, expires
	return nil
}

// fetch gets a session token if needed, then the security key. A 401 means the session
// token is no longer good: it gets one new session token and tries once more.
func (m *Metadata) fetch(ctx context.Context) (Keys, time.Time, error) {
	for attempt := 0; ; attempt++ {
		session, err := m.sessionToken(ctx, attempt > 0)
		if err != nil {
			return Keys{}, time.Time{}, err
		}
		req, err := http.NewRequest(http.MethodGet, m.endpoint+"/openstack/latest/securitykey", nil)
		if err != nil {
			return Keys{}, time.Time{}, fmt.Errorf("%s: %w", OpMetadataSecurityKey, err)
		}
		if session != "" {
			req.Header.Set("X-Metadata-Token", session)
		}
		resp, body, err := do(ctx, m.client, req, OpMetadataSecurityKey, m.observer, m.now)
		if err != nil {
			return Keys{}, time.Time{}, fmt.Errorf("metadata service at %s: %w", m.endpoint, err)
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(body), "Agency"):
			return Keys{}, time.Time{}, fmt.Errorf("%w: %w (bind an agency to this ECS in the console)", ErrRejected,
				serviceError(OpMetadataSecurityKey, resp, body, session))
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			continue // a stale session token: one new one, one more try
		case resp.StatusCode >= 500:
			return Keys{}, time.Time{}, unavailable(ReasonServer, serviceError(OpMetadataSecurityKey, resp, body, session))
		case resp.StatusCode != http.StatusOK:
			return Keys{}, time.Time{}, serviceError(OpMetadataSecurityKey, resp, body, session)
		}
		keys, expires, err := parseSecurityKey(body)
		if err != nil {
			err = unavailable(ReasonServer, err)
		}
		return keys, expires, err
	}
}

// sessionToken returns a metadata session token, or "" where the service has none.
func (m *Metadata) sessionToken(ctx context.Context, renew bool) (string, error) {
	m.mu.Lock()
	session, valid := m.session, m.now().Before(m.sessionExpires)
	m.mu.Unlock()
	if session != "" && valid && !renew {
		return session, nil
	}
	req, err := http.NewRequest(http.MethodPut, m.endpoint+"/meta-data/latest/api/token", nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", OpMetadataToken, err)
	}
	req.Header.Set("X-Metadata-Token-Ttl-Seconds", fmt.Sprint(int(sessionTTL.Seconds())))
	resp, body, err := do(ctx, m.client, req, OpMetadataToken, m.observer, m.now)
	if err != nil {
		return "", fmt.Errorf("metadata service at %s: %w", m.endpoint, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusServiceUnavailable:
		return "", nil // an older metadata service: go on without a session token
	default:
		err := serviceError(OpMetadataToken, resp, body, "")
		if resp.StatusCode >= 500 {
			err = unavailable(ReasonServer, err)
		}
		return "", err
	}
	session = strings.TrimSpace(string(body))
	m.mu.Lock()
	// Renew a little before the service forgets it.
	m.session, m.sessionExpires = session, m.now().Add(sessionTTL-time.Minute)
	m.mu.Unlock()
	return session, nil
}

func parseSecurityKey(body []byte) (Keys, time.Time, error) {
	var parsed struct {
		Credential struct {
			Access         string `json:"access"`
			Secret         string `json:"secret"`
			SecurityToken  string `json:"securitytoken"`
			SecurityToken2 string `json:"securityToken"`
			ExpiresAt      string `json:"expires_at"`
			ExpiresAt2     string `json:"expiresAt"`
		} `json:"credential"`
	}
	if err := json.Unmarshal(body, &parsed); err != nil {
		return Keys{}, time.Time{}, fmt.Errorf("%s: the answer is not a credential object", OpMetadataSecurityKey)
	}
	c := parsed.Credential
	keys := Keys{AccessKey: c.Access, SecretKey: c.Secret, SecurityToken: firstNonEmpty(c.SecurityToken, c.SecurityToken2)}
	if keys.AccessKey == "" || keys.SecretKey == "" || keys.SecurityToken == "" {
		return Keys{}, time.Time{}, errors.New(OpMetadataSecurityKey + ": the answer lacks access, secret or securitytoken")
	}
	expires, err := time.Parse(time.RFC3339Nano, firstNonEmpty(c.ExpiresAt, c.ExpiresAt2))
	if err != nil {
		return Keys{}, time.Time{}, fmt.Errorf("%s: expires_at is not a time", OpMetadataSecurityKey)
	}
	return keys, expires, nil
}
