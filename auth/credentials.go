package auth

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// Authenticator adds credentials to an outgoing API request. body is the exact request
// body, which AK/SK signing hashes.
type Authenticator interface {
	Authenticate(req *http.Request, body []byte) error
}

// New builds the Authenticator that config.Load validated: X-Auth-Token from token_file,
// or an AK/SK signer whose keys come inline, from files or from the environment.
func New(c config.Credentials) Authenticator {
	if c.TokenFile != "" {
		return &TokenAuth{Token: NewFileSecret(c.TokenFile)}
	}
	s := &Signer{Now: time.Now}
	s.AccessKey = staticOrFile(c.AccessKey, c.AccessKeyFile)
	s.SecretKey = staticOrFile(string(c.SecretKey), c.SecretKeyFile)
	s.SecurityToken = staticOrFile(string(c.SecurityToken), c.SecurityTokenFile)
	return s
}

func staticOrFile(value, path string) Source {
	if path != "" {
		return NewFileSecret(path)
	}
	return Static(value)
}

// Source yields the current value of one credential.
type Source interface {
	Get() (string, error)
}

// Static is a credential that never changes.
type Static string

// Get returns the value.
func (s Static) Get() (string, error) { return string(s), nil }

// FileSecret is a credential kept in a file that a secret manager may rewrite at any time.
// It is re-read whenever the file's identity, size or modification time changes, so a
// rotation needs no restart; between changes it costs one stat.
type FileSecret struct {
	path string

	mu    sync.Mutex
	info  os.FileInfo
	value string
}

// NewFileSecret returns a FileSecret for path; nothing is read until Get.
func NewFileSecret(path string) *FileSecret { return &FileSecret{path: path} }

// Get returns the file's trimmed content, re-reading it if the file changed.
func (f *FileSecret) Get() (string, error) {
	info, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("reading credential file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.info != nil && os.SameFile(f.info, info) && f.info.Size() == info.Size() && f.info.ModTime().Equal(info.ModTime()) {
		return f.value, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("reading credential file: %w", err)
	}
	value := strings.TrimSpace(string(data))
	if value == "" {
		return "", fmt.Errorf("credential file %s is empty", f.path)
	}
	f.info, f.value = info, value
	return value, nil
}

// Signer signs requests with SDK-HMAC-SHA256. SecurityToken may yield "" for permanent keys.
type Signer struct {
	AccessKey, SecretKey, SecurityToken Source
	Now                                 func() time.Time
}

// Authenticate signs req.
func (s *Signer) Authenticate(req *http.Request, body []byte) error {
	var keys Keys
	var err error
	if keys.AccessKey, err = s.AccessKey.Get(); err != nil {
		return fmt.Errorf("access key: %w", err)
	}
	if keys.SecretKey, err = s.SecretKey.Get(); err != nil {
		return fmt.Errorf("secret key: %w", err)
	}
	if s.SecurityToken != nil {
		if keys.SecurityToken, err = s.SecurityToken.Get(); err != nil {
			return fmt.Errorf("security token: %w", err)
		}
	}
	if keys.AccessKey == "" || keys.SecretKey == "" {
		return errors.New("access key or secret key is empty")
	}
	Sign(req, body, keys, s.Now())
	return nil
}

// TokenAuth sends an IAM token as X-Auth-Token.
type TokenAuth struct {
	Token Source
}

// Authenticate sets X-Auth-Token.
func (t *TokenAuth) Authenticate(req *http.Request, _ []byte) error {
	token, err := t.Token.Get()
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	req.Header.Set(HeaderAuthToken, token)
	return nil
}
