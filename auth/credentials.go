package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// Authenticator adds credentials to an outgoing API request. body is the exact request
// body, which AK/SK signing hashes.
type Authenticator interface {
	Authenticate(ctx context.Context, req *http.Request, body []byte) error
}

// Options carries what the credential sources need besides the config.
type Options struct {
	Now         func() time.Time  // the local clock, for expiries and gates (default time.Now)
	Clock       *Clock            // the time to sign with (X-Sdk-Date); nil signs with Now
	IAMEndpoint string            // scheme://host[:port]
	Region      string            // scopes IAM tokens when ProjectID is empty
	ProjectID   string            // scopes IAM tokens
	Transport   http.RoundTripper // for IAM calls (default: one shared pool, proxies from the environment)
	Observer    Observer          // told about IAM and metadata calls; may be nil
	// FetchFailures counts IAM and metadata fetches that got no usable answer; may be nil.
	FetchFailures *FetchFailures
}

// signingTime is the clock that X-Sdk-Date follows.
func (o Options) signingTime() func() time.Time {
	if o.Clock != nil {
		return o.Clock.Now
	}
	return o.Now
}

// New builds the Authenticator for credentials that config.Load validated.
func New(c config.Credentials, o Options) Authenticator {
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case c.TokenFile != "":
		return &TokenAuth{token: newFileSet(part{path: c.TokenFile})}
	case c.IAMPassword != nil:
		return newIAMToken(c.IAMPassword, o)
	case c.ECSMetadata != nil:
		return newMetadata(c.ECSMetadata.Endpoint, o)
	}
	return &Signer{Now: o.signingTime(), keys: newFileSet(
		part{value: c.AccessKey, path: c.AccessKeyFile},
		part{value: string(c.SecretKey), path: c.SecretKeyFile},
		part{value: string(c.SecurityToken), path: c.SecurityTokenFile, optional: true},
	)}
}

// NewSigner signs with fixed keys (tests, benchmarks).
func NewSigner(keys Keys, now func() time.Time) *Signer {
	return &Signer{Now: now, keys: newFileSet(
		part{value: keys.AccessKey}, part{value: keys.SecretKey}, part{value: keys.SecurityToken, optional: true})}
}

// part is one credential: a fixed value, or a file to read it from.
type part struct {
	value, path string
	optional    bool // may be empty (the security token of permanent keys)
}

// settleTime is how long files must stay unchanged before a changed set is adopted: a
// secret manager that writes a new AK and then a new SK must not have its new AK used
// with the old SK in between.
const settleTime = time.Second

// fileSet holds credentials that belong together (an AK, its SK and its security token)
// and re-reads their files when any of them changes, adopting the new values together
// once the files have settled. Between changes it costs one stat per file.
type fileSet struct {
	parts  []part
	files  bool          // some part is read from a file
	settle time.Duration // file modification times are real time, so this is too

	mu     sync.Mutex
	infos  []os.FileInfo
	values []string
	gen    uint64 // changes when values change
	reread bool   // read the files at the next get even if they look unchanged
}

func newFileSet(parts ...part) *fileSet {
	files := slices.ContainsFunc(parts, func(p part) bool { return p.path != "" })
	return &fileSet{parts: parts, files: files, settle: settleTime}
}

// get returns the current values and their generation.
func (f *fileSet) get() ([]string, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	infos, err := f.stat()
	if err != nil {
		if f.values != nil {
			return f.values, f.gen, nil // keep the last good set while a file is replaced
		}
		return nil, 0, err
	}
	if f.values != nil && !f.reread && sameFiles(f.infos, infos) {
		return f.values, f.gen, nil
	}
	if f.values != nil && f.settling(infos) {
		return f.values, f.gen, nil
	}
	values, err := f.read()
	if err != nil {
		if f.values != nil {
			return f.values, f.gen, nil
		}
		return nil, 0, err
	}
	if after, err := f.stat(); err != nil || !sameFiles(infos, after) {
		if f.values != nil {
			return f.values, f.gen, nil // changed while we read: try again next time
		}
	}
	if f.values == nil || !equal(f.values, values) {
		f.gen++
	}
	f.infos, f.values, f.reread = infos, values, false
	return values, f.gen, nil
}

// readAgain makes the next get read the files even if they look unchanged (a file
// rewritten within the same second, with the same size, has the same stat).
func (f *fileSet) readAgain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reread = true
}

func (f *fileSet) stat() ([]os.FileInfo, error) {
	if !f.files {
		return nil, nil // fixed values: nothing to look at
	}
	infos := make([]os.FileInfo, len(f.parts))
	for i, p := range f.parts {
		if p.path == "" {
			continue
		}
		info, err := os.Stat(p.path)
		if err != nil {
			return nil, fmt.Errorf("reading credential file: %w", err)
		}
		infos[i] = info
	}
	return infos, nil
}

// settling reports whether a file changed too recently to trust that its partners are
// already written.
func (f *fileSet) settling(infos []os.FileInfo) bool {
	for _, info := range infos {
		if info != nil && time.Since(info.ModTime()) < f.settle {
			return true
		}
	}
	return false
}

func (f *fileSet) read() ([]string, error) {
	values := make([]string, len(f.parts))
	for i, p := range f.parts {
		values[i] = p.value
		if p.path != "" {
			data, err := os.ReadFile(p.path)
			if err != nil {
				return nil, fmt.Errorf("reading credential file: %w", err)
			}
			values[i] = strings.TrimSpace(string(data))
		}
		if values[i] == "" && !p.optional {
			if p.path != "" {
				return nil, fmt.Errorf("credential file %s is empty", p.path)
			}
			return nil, errors.New("a credential is empty")
		}
	}
	return values, nil
}

func sameFiles(a, b []os.FileInfo) bool {
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) {
			return false
		}
		if a[i] != nil && (!os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime())) {
			return false
		}
	}
	return true
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// Signer signs requests with SDK-HMAC-SHA256, with keys that are fixed or read from files.
type Signer struct {
	Now  func() time.Time // the time to sign with
	keys *fileSet
}

// Keys returns the current AK/SK (and security token) as one consistent set.
func (s *Signer) Keys() (Keys, error) {
	v, _, err := s.keys.get()
	if err != nil {
		return Keys{}, err
	}
	return Keys{AccessKey: v[0], SecretKey: v[1], SecurityToken: v[2]}, nil
}

// Authenticate signs req.
func (s *Signer) Authenticate(_ context.Context, req *http.Request, body []byte) error {
	keys, err := s.Keys()
	if err != nil {
		return err
	}
	Sign(req, body, keys, s.Now())
	return nil
}

// Generation changes when a rotated key file is adopted.
func (s *Signer) Generation() uint64 {
	_, gen, _ := s.keys.get()
	return gen
}

// TokenAuth sends an X-Auth-Token read from a file that is re-read when it changes.
type TokenAuth struct {
	token *fileSet
}

// Authenticate sets X-Auth-Token.
func (t *TokenAuth) Authenticate(_ context.Context, req *http.Request, _ []byte) error {
	v, _, err := t.token.get()
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	req.Header.Set(HeaderAuthToken, v[0])
	return nil
}

// Refresh reads the file again: the API refused the token, and whatever keeps the file
// fresh may have written a new one.
func (t *TokenAuth) Refresh(context.Context) error {
	t.token.readAgain()
	_, _, err := t.token.get()
	return err
}

// Generation changes when a new token is read from the file.
func (t *TokenAuth) Generation() uint64 {
	_, gen, _ := t.token.get()
	return gen
}
