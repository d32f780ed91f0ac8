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

// Config is the whole configuration file: the projects, and what all of them share (the
// scrape, the cache and /probe).
//
// A file lists its projects under projects, or writes the keys of one project at the top
// level: the shorthand for one project named "default". After Parse, Projects holds at
// least one project in either form, and the top-level project keys (Region to
// AllowInsecureEndpoint) mirror Projects[0], for code that knows one project only. They
// are a shallow copy: setting a field of one does not change the other, while Tasks,
// StatusNames and the credential sections are shared.
type Config struct {
	Projects    []Project         `yaml:"projects,omitempty"`
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
	// shorthandForm is set when the file wrote its one project at the top level.
	shorthandForm bool
}

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

// IAMEndpointURL returns the IAM endpoint of the top-level project keys (see Project).
func (c *Config) IAMEndpointURL() string {
	p := c.shorthand()
	return p.IAMEndpointURL()
}

// MetaStudioEndpoint returns the MetaStudio endpoint of the top-level project keys (see
// Project).
func (c *Config) MetaStudioEndpoint() string {
	p := c.shorthand()
	return p.MetaStudioEndpoint()
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
	for i := range cfg.Projects {
		p := &cfg.Projects[i]
		p.Credentials.resolvePaths(filepath.Dir(path))
		if err := p.Credentials.checkFiles(cfg.projectAt(i)); err != nil {
			return nil, nil, err
		}
	}
	cfg.mirror(cfg.Projects[0])
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
	var defaults Project
	defaults.setDefaults()
	cfg := &Config{
		lines: map[string]int{},
		Scrape: Scrape{Timeout: DefaultScrapeTimeout, Concurrency: DefaultScrapeConcurrency,
			MaxRequestsPerSecond: DefaultMaxRequestsPerSecond},
		Cache: Cache{FinishedTTL: DefaultFinishedTTL},
	}
	cfg.mirror(defaults)
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

// validate checks the projects, then what they share, and mirrors the first project
// into the top-level keys.
func (c *Config) validate(getenv Getenv) ([]string, error) {
	if err := c.gatherProjects(); err != nil {
		return nil, err
	}
	warnings, err := c.validateProjects(getenv)
	if err != nil {
		return nil, err
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
	case c.Cache.FinishedTTL < 0:
		return nil, fmt.Errorf("%s: must be 0 (no cache) or positive, got %s", c.at("cache.finished_ttl"), c.Cache.FinishedTTL)
	}
	c.mirror(c.Projects[0])
	return warnings, nil
}

// projectAt returns the function that gives a key of the i-th project with its full
// path and line, for errors.
func (c *Config) projectAt(i int) func(string) string {
	prefix := ""
	if !c.shorthandForm {
		prefix = fmt.Sprintf("projects[%d].", i)
	}
	return func(key string) string { return c.at(prefix + key) }
}

// MaxFilterLength bounds discovery.resources and discovery.business_id, in bytes.
const MaxFilterLength = 256

// validate checks discovery's durations and limits, and the SearchTask filters: they go into the signed query, where any text
// is escaped, so what is refused is what cannot be meant: an empty resource, control
// characters, bytes that are not UTF-8, and more than MaxFilterLength bytes.
func (d Discovery) validate(at func(string) string) error {
	switch {
	case d.Lookback <= 0:
		return fmt.Errorf("%s: must be positive, got %s", at("discovery.lookback"), d.Lookback)
	case d.RefreshInterval <= 0:
		return fmt.Errorf("%s: must be positive, got %s", at("discovery.refresh_interval"), d.RefreshInterval)
	case d.MaxTasks <= 0:
		return fmt.Errorf("%s: must be positive, got %d", at("discovery.max_tasks"), d.MaxTasks)
	}
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
