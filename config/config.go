// Package config owns the exporter's YAML configuration: its schema, defaults, strict
// decoding and validation. It imports none of the exporter's other packages.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits and defaults of the scrape section.
const (
	DefaultScrapeTimeout     = 10 * time.Second
	DefaultScrapeConcurrency = 8
	MaxScrapeTimeout         = 120 * time.Second
)

// Secret is a string that never prints: String and MarshalYAML give "<secret>", so a
// secret cannot reach a log line, an error or a page by accident.
type Secret string

// String hides the value.
func (s Secret) String() string { return "<secret>" }

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `"<secret>"` }

// MarshalYAML hides the value when a config is shown.
func (s Secret) MarshalYAML() (any, error) {
	if s == "" {
		return "", nil
	}
	return "<secret>", nil
}

// MarshalJSON hides the value when a config is shown.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte(`""`), nil
	}
	return []byte(`"<secret>"`), nil
}

// Config is the whole configuration file.
type Config struct {
	Region      string            `yaml:"region"`
	ProjectID   string            `yaml:"project_id"`
	Endpoint    string            `yaml:"endpoint"`
	IAMEndpoint string            `yaml:"iam_endpoint"`
	Credentials Credentials       `yaml:"credentials"`
	Tasks       []string          `yaml:"tasks"`
	Scrape      Scrape            `yaml:"scrape"`
	StatusNames map[string]string `yaml:"status_names"`
	Discovery   Discovery         `yaml:"discovery"`
	Cache       Cache             `yaml:"cache"`
	Probe       Probe             `yaml:"probe"`
	// AllowInsecureEndpoint permits a plain http:// endpoint or iam_endpoint that is not
	// loopback: credentials and signatures would cross the network in clear text.
	AllowInsecureEndpoint bool `yaml:"allow_insecure_endpoint"`

	// lines remembers where each key and list item was written, for error messages.
	lines map[string]int
}

// Credentials selects how requests are authenticated: AK/SK (inline, from files, or from
// the environment), optionally temporary with a security token, an X-Auth-Token file, an
// IAM user's password, or the temporary keys of an ECS agency from the metadata service.
type Credentials struct {
	AccessKey         string        `yaml:"access_key"`
	AccessKeyFile     string        `yaml:"access_key_file"`
	SecretKey         Secret        `yaml:"secret_key"`
	SecretKeyFile     string        `yaml:"secret_key_file"`
	SecurityTokenFile string        `yaml:"security_token_file"`
	TokenFile         string        `yaml:"token_file"`
	IAMPassword       *IAMPassword  `yaml:"iam_password,omitempty"`
	ECSMetadata       *ECSMetadata  `yaml:"ecs_metadata,omitempty"`
	FailureBackoff    time.Duration `yaml:"failure_backoff"`

	// SecurityToken is set from the environment only (CLOUD_SDK_SECURITY_TOKEN or
	// HUAWEICLOUD_SDK_SECURITY_TOKEN), when the file configures no source.
	SecurityToken Secret `yaml:"-"`
	// FromEnv names the environment variables the AK/SK came from, or is empty.
	FromEnv string `yaml:"-"`
}

// IAMPassword gets X-Auth-Tokens from IAM with an IAM user's password.
type IAMPassword struct {
	DomainName   string `yaml:"domain_name"`
	UserName     string `yaml:"user_name"`
	PasswordFile string `yaml:"password_file"`
	// Password is set from HUAWEICLOUD_SDK_IAM_PASSWORD when password_file is not.
	Password Secret `yaml:"-"`
}

// ECSMetadata gets temporary AK/SK from the ECS/BMS metadata service (an agency).
type ECSMetadata struct {
	Endpoint string `yaml:"endpoint"`
}

// Defaults of the credential sources.
const (
	DefaultFailureBackoff   = time.Minute
	DefaultMetadataEndpoint = "http://169.254.169.254"
)

// Scrape bounds the work of one scrape.
type Scrape struct {
	Timeout     time.Duration `yaml:"timeout"`
	Concurrency int           `yaml:"concurrency"`
	// MaxRequestsPerSecond is the ceiling of the process-wide adaptive rate of MetaStudio
	// calls; 0 turns the limit off (a 429 still lowers the rate for a while).
	MaxRequestsPerSecond float64 `yaml:"max_requests_per_second"`
	// MinRequestsPerSecond is the floor the adaptive rate never falls below after a 429
	// (a Retry-After still pauses every call). Default: the smaller of 1 and the maximum.
	MinRequestsPerSecond float64 `yaml:"min_requests_per_second"`
	// MinRefreshInterval lets a scrape serve values younger than this instead of asking for
	// a call: set it just under the scrape interval so that an HA pair of Prometheus
	// servers costs the API one call per task and interval, not two. 0: every scrape shows
	// values fetched for it.
	MinRefreshInterval time.Duration `yaml:"min_refresh_interval"`
}

// Discovery watches the tasks that SearchTask lists, besides the configured ones.
type Discovery struct {
	Enabled         bool          `yaml:"enabled"`
	Resources       []string      `yaml:"resources"`
	BusinessID      string        `yaml:"business_id"`
	Lookback        time.Duration `yaml:"lookback"`
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	MaxTasks        int           `yaml:"max_tasks"`
}

// Cache keeps finished tasks, whose counts no longer change.
type Cache struct {
	// FinishedTTL is how long a finished task's values are served before it is fetched
	// again; 0 fetches every task on every scrape.
	FinishedTTL time.Duration `yaml:"finished_ttl"`
}

// Probe sets what /probe may fetch.
type Probe struct {
	// AllowUnlisted lets /probe fetch ids that are neither configured nor discovered.
	AllowUnlisted bool `yaml:"allow_unlisted"`
}

// Defaults of discovery, the cache and the rate limit.
const (
	DefaultLookback             = 24 * time.Hour
	DefaultRefreshInterval      = 5 * time.Minute
	DefaultMaxTasks             = 5000
	DefaultFinishedTTL          = 10 * time.Minute
	DefaultMaxRequestsPerSecond = 10
	DefaultMinRequestsPerSecond = 1
)

// UsesToken reports whether requests carry an X-Auth-Token instead of an AK/SK signature.
func (c Credentials) UsesToken() bool { return c.TokenFile != "" || c.IAMPassword != nil }

// Source names the configured credential source, for logs.
func (c Credentials) Source() string {
	switch {
	case c.TokenFile != "":
		return "token_file"
	case c.IAMPassword != nil:
		return "iam_password"
	case c.ECSMetadata != nil:
		return "ecs_metadata"
	case c.FromEnv != "":
		return "environment " + c.FromEnv
	case c.SecurityTokenFile != "":
		return "temporary AK/SK"
	}
	return "AK/SK"
}

// IAMEndpointURL returns the IAM endpoint: iam_endpoint, or the region's.
func (c *Config) IAMEndpointURL() string {
	if c.IAMEndpoint != "" {
		return strings.TrimSuffix(c.IAMEndpoint, "/")
	}
	return "https://iam." + c.Region + ".myhuaweicloud.com"
}

// MetaStudioEndpoint returns the MetaStudio endpoint: the override, or the region's public one.
func (c *Config) MetaStudioEndpoint() string {
	if c.Endpoint != "" {
		return strings.TrimSuffix(c.Endpoint, "/")
	}
	return "https://metastudio." + c.Region + ".myhuaweicloud.com"
}

// KnownRegions are the regions where MetaStudio is documented. Others are accepted with a
// warning, since Huawei adds regions.
var KnownRegions = []string{"cn-north-4", "cn-east-3", "ap-southeast-3"}

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	regionPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// ValidID reports whether id can be a task id: 1 to 64 of A-Z a-z 0-9 - _ (it goes into a
// signed URL path).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Getenv looks up an environment variable; tests pass a map's lookup instead of os.Getenv.
type Getenv func(string) string

// Load reads, decodes and validates a configuration file exactly as start-up does,
// environment credentials included, without any network call. Relative credential file
// paths are taken relative to the config file's directory. It returns warnings (such as
// an inline secret or an unknown region) for the caller to log.
func Load(path string, getenv Getenv) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, warnings, err := Parse(data, getenv)
	if err != nil {
		return nil, nil, err
	}
	cfg.Credentials.resolvePaths(filepath.Dir(path))
	if err := cfg.Credentials.checkFiles(); err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
}

// Parse decodes and validates configuration text. Credential files are not opened.
func Parse(data []byte, getenv Getenv) (*Config, []string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 {
		return nil, nil, errors.New("the file is empty: it needs at least region, project_id and tasks")
	}
	cfg := &Config{
		lines: map[string]int{},
		Scrape: Scrape{Timeout: DefaultScrapeTimeout, Concurrency: DefaultScrapeConcurrency,
			MaxRequestsPerSecond: DefaultMaxRequestsPerSecond},
		Credentials: Credentials{FailureBackoff: DefaultFailureBackoff},
		Discovery:   Discovery{Lookback: DefaultLookback, RefreshInterval: DefaultRefreshInterval, MaxTasks: DefaultMaxTasks},
		Cache:       Cache{FinishedTTL: DefaultFinishedTTL},
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, nil, errorf(doc, "config", "want a mapping of keys, got %s", describe(doc, "config"))
	}
	if err := decodeStrict(doc, cfg, cfg.lines); err != nil {
		return nil, nil, err
	}
	if _, set := cfg.lines["scrape.min_requests_per_second"]; !set {
		cfg.Scrape.MinRequestsPerSecond = DefaultMinRequestsPerSecond
		if m := cfg.Scrape.MaxRequestsPerSecond; m > 0 && m < DefaultMinRequestsPerSecond {
			cfg.Scrape.MinRequestsPerSecond = m
		}
	}
	warnings, err := cfg.validate(getenv)
	if err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
}

// at prefixes an error about path with the line where path was written, or where its
// section was written when the key itself is missing.
func (c *Config) at(path string) string {
	for p := path; p != ""; {
		if line, ok := c.lines[p]; ok {
			return fmt.Sprintf("line %d: %s", line, path)
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return path
}

func (c *Config) validate(getenv Getenv) ([]string, error) {
	var warnings []string
	switch {
	case c.Region == "":
		return nil, errors.New("region: required (for example cn-north-4)")
	case !regionPattern.MatchString(c.Region):
		return nil, fmt.Errorf("%s: %q is not a region name (for example cn-north-4)", c.at("region"), c.Region)
	}
	known := false
	for _, r := range KnownRegions {
		known = known || r == c.Region
	}
	if !known {
		warnings = append(warnings, fmt.Sprintf("region %q is not one where MetaStudio is documented (%s); using it anyway",
			c.Region, strings.Join(KnownRegions, ", ")))
	}
	switch {
	case c.ProjectID == "":
		// Resolved at start-up through IAM, except with a bare token (checked below).
	case !idPattern.MatchString(c.ProjectID):
		return nil, fmt.Errorf("%s: %q is not a project id (want 1 to 64 of A-Z a-z 0-9 - _)", c.at("project_id"), c.ProjectID)
	}
	for _, e := range []struct{ key, value string }{{"endpoint", c.Endpoint}, {"iam_endpoint", c.IAMEndpoint}} {
		if err := checkEndpoint(c.at(e.key), e.value); err != nil {
			return nil, err
		}
		if !insecure(e.value) {
			continue
		}
		if !c.AllowInsecureEndpoint {
			return nil, fmt.Errorf("%s: %q is plain http to a host that is not loopback: use https, or set allow_insecure_endpoint: true", c.at(e.key), e.value)
		}
		warnings = append(warnings, fmt.Sprintf("%s %s is plain http: tokens and signed requests cross the network in clear text", e.key, e.value))
	}
	if len(c.Tasks) == 0 && !c.Discovery.Enabled {
		return nil, fmt.Errorf("%s: empty: list at least one task id, or enable discovery", c.at("tasks"))
	}
	first := map[string]int{}
	for i, id := range c.Tasks {
		if !idPattern.MatchString(id) {
			return nil, fmt.Errorf("%s: %q is not a task id (want 1 to 64 of A-Z a-z 0-9 - _)", c.at(fmt.Sprintf("tasks[%d]", i)), id)
		}
		if j, dup := first[id]; dup {
			return nil, fmt.Errorf("%s: duplicate task id %q (also tasks[%d])", c.at(fmt.Sprintf("tasks[%d]", i)), id, j)
		}
		first[id] = i
	}
	switch {
	case c.Scrape.Timeout <= 0:
		return nil, fmt.Errorf("%s: must be positive, got %s", c.at("scrape.timeout"), c.Scrape.Timeout)
	case c.Scrape.Timeout > MaxScrapeTimeout:
		return nil, fmt.Errorf("%s: at most %s, got %s", c.at("scrape.timeout"), MaxScrapeTimeout, c.Scrape.Timeout)
	case c.Scrape.Concurrency <= 0:
		return nil, fmt.Errorf("%s: must be positive, got %d", c.at("scrape.concurrency"), c.Scrape.Concurrency)
	case c.Scrape.MaxRequestsPerSecond < 0:
		return nil, fmt.Errorf("%s: must be 0 (no limit) or positive, got %g", c.at("scrape.max_requests_per_second"), c.Scrape.MaxRequestsPerSecond)
	case c.Scrape.MinRequestsPerSecond <= 0:
		return nil, fmt.Errorf("%s: must be positive (the floor of the adaptive rate), got %g", c.at("scrape.min_requests_per_second"), c.Scrape.MinRequestsPerSecond)
	case c.Scrape.MaxRequestsPerSecond > 0 && c.Scrape.MinRequestsPerSecond > c.Scrape.MaxRequestsPerSecond:
		return nil, fmt.Errorf("%s: at most scrape.max_requests_per_second (%g), got %g", c.at("scrape.min_requests_per_second"),
			c.Scrape.MaxRequestsPerSecond, c.Scrape.MinRequestsPerSecond)
	case c.Scrape.MinRefreshInterval < 0:
		return nil, fmt.Errorf("%s: must be 0 (every scrape asks for fresh values) or positive, got %s", c.at("scrape.min_refresh_interval"), c.Scrape.MinRefreshInterval)
	case c.Discovery.Lookback <= 0:
		return nil, fmt.Errorf("%s: must be positive, got %s", c.at("discovery.lookback"), c.Discovery.Lookback)
	case c.Discovery.RefreshInterval <= 0:
		return nil, fmt.Errorf("%s: must be positive, got %s", c.at("discovery.refresh_interval"), c.Discovery.RefreshInterval)
	case c.Discovery.MaxTasks <= 0:
		return nil, fmt.Errorf("%s: must be positive, got %d", c.at("discovery.max_tasks"), c.Discovery.MaxTasks)
	case c.Cache.FinishedTTL < 0:
		return nil, fmt.Errorf("%s: must be 0 (no cache) or positive, got %s", c.at("cache.finished_ttl"), c.Cache.FinishedTTL)
	}
	if err := c.Discovery.validate(c.at); err != nil {
		return nil, err
	}
	credWarnings, err := c.Credentials.validate(getenv, c.at)
	if err != nil {
		return nil, err
	}
	if c.ProjectID == "" && c.Credentials.TokenFile != "" {
		return nil, errors.New("project_id: required with token_file (the project id of the region, from \"My Credentials\" in the console)")
	}
	if m := c.Credentials.ECSMetadata; m != nil {
		if m.Endpoint == "" {
			m.Endpoint = DefaultMetadataEndpoint
		}
		if err := checkEndpoint(c.at("credentials.ecs_metadata.endpoint"), m.Endpoint); err != nil {
			return nil, err
		}
	}
	return append(warnings, credWarnings...), nil
}

// MaxFilterLength bounds discovery.resources and discovery.business_id, in bytes.
const MaxFilterLength = 256

// validate checks the SearchTask filters: they go into the signed query, where any text
// is escaped, so what is refused is what cannot be meant: an empty resource, control
// characters, bytes that are not UTF-8, and more than MaxFilterLength bytes.
func (d Discovery) validate(at func(string) string) error {
	for i, r := range d.Resources {
		if err := checkFilter(r); err != nil {
			return fmt.Errorf("%s: %q %s", at(fmt.Sprintf("discovery.resources[%d]", i)), r, err)
		}
	}
	if d.BusinessID != "" {
		if err := checkFilter(d.BusinessID); err != nil {
			return fmt.Errorf("%s: %q %s", at("discovery.business_id"), d.BusinessID, err)
		}
	}
	return nil
}

func checkFilter(v string) error {
	const want = "(want 1 to 256 bytes of printable UTF-8 text; spaces, + and other punctuation are fine)"
	switch {
	case v == "":
		return errors.New("is empty " + want)
	case !utf8.ValidString(v):
		return errors.New("is not UTF-8 " + want)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return errors.New("contains a control character " + want)
	case len(v) > MaxFilterLength:
		return errors.New("is too long " + want)
	}
	return nil
}

// placeholder is what /config shows in place of a secret. A config that /config printed
// and someone saved carries it as its secret: refused, rather than signing with it.
const placeholder = "<secret>"

func placeholderError(key, better string) error {
	return fmt.Errorf("%s: %q is the placeholder that /config shows in place of a secret, not the secret itself: write the real value (%s)", key, placeholder, better)
}

func checkEndpoint(key, value string) error {
	if value == "" {
		return nil
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%s: %q is not scheme://host[:port] (for example https://metastudio.cn-north-4.myhuaweicloud.com)", key, value)
	}
	return nil
}

// insecure reports whether an endpoint is plain http to a host that is not loopback.
func insecure(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// Environment variable families, in order of preference, as Huawei's SDKs and examples name them.
var envFamilies = [][3]string{
	{"CLOUD_SDK_AK", "CLOUD_SDK_SK", "CLOUD_SDK_SECURITY_TOKEN"},
	{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN"},
}

func (c *Credentials) validate(getenv Getenv, at func(string) string) ([]string, error) {
	if c.FailureBackoff <= 0 {
		return nil, fmt.Errorf("%s: must be positive, got %s", at("credentials.failure_backoff"), c.FailureBackoff)
	}
	var akskKeys []string
	for _, k := range []struct{ name, value string }{
		{"access_key", c.AccessKey}, {"access_key_file", c.AccessKeyFile}, {"secret_key", string(c.SecretKey)},
		{"secret_key_file", c.SecretKeyFile}, {"security_token_file", c.SecurityTokenFile},
	} {
		if k.value != "" {
			akskKeys = append(akskKeys, k.name)
		}
	}
	var sources []string
	if len(akskKeys) > 0 {
		sources = append(sources, "AK/SK ("+strings.Join(akskKeys, ", ")+")")
	}
	for _, s := range []struct {
		name string
		set  bool
	}{{"token_file", c.TokenFile != ""}, {"iam_password", c.IAMPassword != nil}, {"ecs_metadata", c.ECSMetadata != nil}} {
		if s.set {
			sources = append(sources, s.name)
		}
	}
	switch {
	case len(sources) > 1:
		return nil, fmt.Errorf("credentials: %d sources are set, %s: use one", len(sources), strings.Join(sources, " and "))
	case c.IAMPassword != nil:
		return nil, c.IAMPassword.validate(getenv, at)
	case c.TokenFile != "" || c.ECSMetadata != nil:
		return nil, nil
	case len(sources) == 0:
		for _, f := range envFamilies {
			if getenv(f[0]) != "" && getenv(f[1]) != "" {
				for _, name := range f[1:] {
					if getenv(name) == placeholder {
						return nil, placeholderError(name, "in the environment")
					}
				}
				c.AccessKey, c.SecretKey, c.SecurityToken = getenv(f[0]), Secret(getenv(f[1])), Secret(getenv(f[2]))
				c.FromEnv = f[0] + "/" + f[1]
				return nil, nil
			}
		}
		return nil, errors.New("credentials: none usable: set access_key_file and secret_key_file, token_file, " +
			"iam_password or ecs_metadata, or CLOUD_SDK_AK and CLOUD_SDK_SK in the environment")
	}
	switch {
	case c.AccessKey != "" && c.AccessKeyFile != "":
		return nil, errors.New("credentials: both access_key and access_key_file are set: use one")
	case c.SecretKey != "" && c.SecretKeyFile != "":
		return nil, errors.New("credentials: both secret_key and secret_key_file are set: use one")
	case c.AccessKey == "" && c.AccessKeyFile == "":
		return nil, errors.New("credentials.access_key: required with a secret key (or access_key_file)")
	case c.SecretKey == "" && c.SecretKeyFile == "":
		return nil, errors.New("credentials.secret_key_file: required with an access key (or secret_key)")
	}
	if c.SecretKey == placeholder {
		return nil, placeholderError(at("credentials.secret_key"), "better: secret_key_file")
	}
	if c.SecretKey != "" {
		return []string{"credentials.secret_key is written inline in the config file; prefer secret_key_file or CLOUD_SDK_SK"}, nil
	}
	return nil, nil
}

func (p *IAMPassword) validate(getenv Getenv, at func(string) string) error {
	switch {
	case p.DomainName == "":
		return fmt.Errorf("%s: required (the account name that owns the IAM user)", at("credentials.iam_password.domain_name"))
	case p.UserName == "":
		return fmt.Errorf("%s: required (the IAM user)", at("credentials.iam_password.user_name"))
	case p.PasswordFile == "":
		if p.Password = Secret(getenv("HUAWEICLOUD_SDK_IAM_PASSWORD")); p.Password == "" {
			return fmt.Errorf("%s: required (or HUAWEICLOUD_SDK_IAM_PASSWORD in the environment)", at("credentials.iam_password.password_file"))
		}
		if p.Password == placeholder {
			return placeholderError("HUAWEICLOUD_SDK_IAM_PASSWORD", "in the environment")
		}
	}
	return nil
}

func (c *Credentials) resolvePaths(dir string) {
	paths := []*string{&c.AccessKeyFile, &c.SecretKeyFile, &c.SecurityTokenFile, &c.TokenFile}
	if c.IAMPassword != nil {
		paths = append(paths, &c.IAMPassword.PasswordFile)
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// checkFiles makes sure every configured credential file can be read and is not empty,
// so a typo in a path fails at start-up (and in --config.check), not at the first scrape.
func (c *Credentials) checkFiles() error {
	files := []struct{ key, path string }{
		{"access_key_file", c.AccessKeyFile}, {"secret_key_file", c.SecretKeyFile},
		{"security_token_file", c.SecurityTokenFile}, {"token_file", c.TokenFile},
	}
	if c.IAMPassword != nil {
		files = append(files, struct{ key, path string }{"iam_password.password_file", c.IAMPassword.PasswordFile})
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("credentials.%s: %w", f.key, err)
		}
		switch strings.TrimSpace(string(data)) {
		case "":
			return fmt.Errorf("credentials.%s: %s is empty", f.key, f.path)
		case placeholder:
			return placeholderError("credentials."+f.key, "in "+f.path)
		}
	}
	return nil
}
