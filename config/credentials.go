package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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

// placeholder is what /config shows in place of a secret. A config that /config printed
// and someone saved carries it as its secret: refused, rather than signing with it.
const placeholder = "<secret>"

func placeholderError(key, better string) error {
	return fmt.Errorf("%s: %q is the placeholder that /config shows in place of a secret, not the secret itself: write the real value (%s)", key, placeholder, better)
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
		return nil, fmt.Errorf("%s: %d sources are set, %s: use one", at("credentials"), len(sources), strings.Join(sources, " and "))
	case c.IAMPassword != nil:
		return nil, c.IAMPassword.validate(getenv, at)
	case c.TokenFile != "" || c.ECSMetadata != nil:
		return nil, nil
	case len(sources) == 0:
		for _, f := range envFamilies {
			if getenv(f[0]) != "" && getenv(f[1]) != "" {
				for _, name := range f[1:] {
					if getenv(name) == placeholder {
						return nil, placeholderError(at("credentials")+": "+name, "in the environment")
					}
				}
				c.AccessKey, c.SecretKey, c.SecurityToken = getenv(f[0]), Secret(getenv(f[1])), Secret(getenv(f[2]))
				c.FromEnv = f[0] + "/" + f[1]
				return nil, nil
			}
		}
		return nil, errors.New(at("credentials") + ": none usable: set access_key_file and secret_key_file, token_file, " +
			"iam_password or ecs_metadata, or CLOUD_SDK_AK and CLOUD_SDK_SK in the environment")
	}
	switch {
	case c.AccessKey != "" && c.AccessKeyFile != "":
		return nil, errors.New(at("credentials") + ": both access_key and access_key_file are set: use one")
	case c.SecretKey != "" && c.SecretKeyFile != "":
		return nil, errors.New(at("credentials") + ": both secret_key and secret_key_file are set: use one")
	case c.AccessKey == "" && c.AccessKeyFile == "":
		return nil, errors.New(at("credentials.access_key") + ": required with a secret key (or access_key_file)")
	case c.SecretKey == "" && c.SecretKeyFile == "":
		return nil, errors.New(at("credentials.secret_key_file") + ": required with an access key (or secret_key)")
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
			return placeholderError(at("credentials.iam_password")+": HUAWEICLOUD_SDK_IAM_PASSWORD", "in the environment")
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
func (c *Credentials) checkFiles(at func(string) string) error {
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
			return fmt.Errorf("%s: %w", at("credentials."+f.key), err)
		}
		switch strings.TrimSpace(string(data)) {
		case "":
			return fmt.Errorf("%s: %s is empty", at("credentials."+f.key), f.path)
		case placeholder:
			return placeholderError(at("credentials."+f.key), "in "+f.path)
		}
	}
	return nil
}
