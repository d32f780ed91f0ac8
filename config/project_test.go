package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestProjects(t *testing.T) {
	cfg, warnings, err := Load("testdata/projects.yml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("unexpected warnings %q", warnings)
	}
	if len(cfg.Projects) != 2 {
		t.Fatalf("%d projects, want 2", len(cfg.Projects))
	}
	a, b := cfg.Projects[0], cfg.Projects[1]
	if a.Name != "beijing" || b.Name != "shanghai_team-2" {
		t.Errorf("names %q %q", a.Name, b.Name)
	}
	if a.MetaStudioEndpoint() != "https://metastudio.cn-north-4.myhuaweicloud.com" || b.MetaStudioEndpoint() != "https://metastudio.cn-east-3.myhuaweicloud.com" {
		t.Errorf("endpoints %q %q", a.MetaStudioEndpoint(), b.MetaStudioEndpoint())
	}
	if a.IAMEndpointURL() != "https://iam.cn-north-4.myhuaweicloud.com" || b.IAMEndpointURL() != "https://iam.cn-east-3.myhuaweicloud.com" {
		t.Errorf("IAM endpoints %q %q", a.IAMEndpointURL(), b.IAMEndpointURL())
	}
	if a.ProjectID != "0123456789abcdef0123456789abcdef" || b.ProjectID != "" {
		t.Errorf("project ids %q %q", a.ProjectID, b.ProjectID)
	}
	if got, want := b.Credentials.SecretKeyFile, filepath.Join("testdata", "sk.txt"); got != want {
		t.Errorf("the second project's secret_key_file %q, want it relative to the config file: %q", got, want)
	}
	// Each project has its own defaults: what one sets does not reach the other.
	if a.Credentials.FailureBackoff != DefaultFailureBackoff || b.Credentials.FailureBackoff != 2*time.Minute {
		t.Errorf("failure_backoff %s %s", a.Credentials.FailureBackoff, b.Credentials.FailureBackoff)
	}
	wantA := Discovery{Lookback: DefaultLookback, RefreshInterval: DefaultRefreshInterval, MaxTasks: DefaultMaxTasks}
	wantB := Discovery{Enabled: true, Lookback: time.Hour, RefreshInterval: DefaultRefreshInterval, MaxTasks: DefaultMaxTasks}
	if !reflect.DeepEqual(a.Discovery, wantA) || !reflect.DeepEqual(b.Discovery, wantB) {
		t.Errorf("discovery %+v %+v", a.Discovery, b.Discovery)
	}
	if !reflect.DeepEqual(a.StatusNames, map[string]string{"0": "pending"}) || b.StatusNames != nil {
		t.Errorf("status_names %q %q", a.StatusNames, b.StatusNames)
	}
	if cfg.Scrape.Timeout != 15*time.Second || cfg.Cache.FinishedTTL != 0 || cfg.Scrape.Concurrency != DefaultScrapeConcurrency {
		t.Errorf("shared sections %+v %+v", cfg.Scrape, cfg.Cache)
	}
	// The top-level keys mirror the first project, for the code that knows one.
	if got := cfg.shorthand(); !reflect.DeepEqual(got, withName(a, DefaultProjectName)) {
		t.Errorf("the top-level keys are\n%+v\nwant the first project's\n%+v", got, a)
	}
	if cfg.MetaStudioEndpoint() != a.MetaStudioEndpoint() {
		t.Errorf("Config.MetaStudioEndpoint %q", cfg.MetaStudioEndpoint())
	}
	if p := cfg.Project("shanghai_team-2"); p == nil || p.Region != "cn-east-3" {
		t.Errorf("Project(shanghai_team-2) = %+v", p)
	}
	if p := cfg.Project("default"); p != nil {
		t.Errorf("Project(default) = %+v, want none in a projects list without it", p)
	}
}

func withName(p Project, name string) Project {
	p.Name = name
	return p
}

// TestShorthandIsOneProject: the top-level keys make one project named default, the same
// as the keys.
func TestShorthandIsOneProject(t *testing.T) {
	cfg, _, err := Load("testdata/good.yml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Projects) != 1 || cfg.Projects[0].Name != DefaultProjectName {
		t.Fatalf("projects %+v, want one named default", cfg.Projects)
	}
	if got := cfg.shorthand(); !reflect.DeepEqual(got, cfg.Projects[0]) {
		t.Errorf("the project is\n%+v\nthe top-level keys\n%+v", cfg.Projects[0], got)
	}
	if got, want := cfg.Projects[0].Credentials.SecretKeyFile, filepath.Join("testdata", "sk.txt"); got != want {
		t.Errorf("the project's secret_key_file %q, want %q", got, want)
	}
	if cfg.Project(DefaultProjectName) != &cfg.Projects[0] {
		t.Error("Project(default) is not the shorthand's project")
	}
}

// TestProjectsEnvironmentCredentials: every project that configures no credentials takes
// the environment's, and only those.
func TestProjectsEnvironmentCredentials(t *testing.T) {
	env := envOf(map[string]string{"CLOUD_SDK_AK": "ENVAK", "CLOUD_SDK_SK": "env-sk", "CLOUD_SDK_SECURITY_TOKEN": "env-token"})
	cfg, _, err := Parse([]byte(`projects:
  - {name: a, region: cn-north-4, tasks: [t]}
  - {name: b, region: cn-east-3, tasks: [t], credentials: {access_key: FILEAK, secret_key_file: sk}}
  - {name: c, region: ap-southeast-3, tasks: [t]}
`), env)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Credentials{
		{AccessKey: "ENVAK", SecretKey: "env-sk", SecurityToken: "env-token", FromEnv: "CLOUD_SDK_AK/CLOUD_SDK_SK", FailureBackoff: DefaultFailureBackoff},
		{AccessKey: "FILEAK", SecretKeyFile: "sk", FailureBackoff: DefaultFailureBackoff},
		{AccessKey: "ENVAK", SecretKey: "env-sk", SecurityToken: "env-token", FromEnv: "CLOUD_SDK_AK/CLOUD_SDK_SK", FailureBackoff: DefaultFailureBackoff},
	} {
		if got := cfg.Projects[i].Credentials; !reflect.DeepEqual(got, want) {
			t.Errorf("projects[%d].credentials %+v, want %+v", i, got, want)
		}
	}
}

// TestBothForms: each top-level project key beside projects is refused, naming both.
func TestBothForms(t *testing.T) {
	const list = "projects: [{name: a, region: cn-north-4, tasks: [t], credentials: {access_key: AK, secret_key: SK}}]\n"
	for _, kv := range []string{"region: cn-east-3", "project_id: p", "endpoint: https://x.example.com", "iam_endpoint: https://iam.example.com",
		"credentials: {access_key: AK}", "tasks: [t]", "status_names: {a: b}", "discovery: {enabled: true}", "allow_insecure_endpoint: false"} {
		key, _, _ := strings.Cut(kv, ":")
		want := "line 2: " + key + ": projects (line 1) and the top-level key " + key + " cannot be used together: move " + key + " into a project"
		if _, _, err := Parse([]byte(list+kv+"\n"), noEnv); err == nil || err.Error() != want {
			t.Errorf("%s beside projects: %v\nwant %s", key, err, want)
		}
	}
	// The shared sections are no project's: they go beside the list.
	if _, _, err := Parse([]byte(list+"scrape: {timeout: 5s}\ncache: {finished_ttl: 1m}\nprobe: {allow_unlisted: true}\n"), noEnv); err != nil {
		t.Errorf("scrape, cache and probe beside projects: %v", err)
	}
}

// TestProjectWarnings: a project's warnings name it.
func TestProjectWarnings(t *testing.T) {
	_, warnings, err := Parse([]byte(`projects:
  - {name: a, region: cn-north-4, tasks: [t], credentials: {access_key: AK, secret_key: s3cr3t}}
  - {name: b, region: eu-west-101, tasks: [t], credentials: {access_key: AK, secret_key_file: sk}}
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"project a: credentials.secret_key is written inline in the config file; prefer secret_key_file or CLOUD_SDK_SK",
		`project b: region "eu-west-101" is not one where MetaStudio is documented (cn-north-4, cn-east-3, ap-southeast-3); using it anyway`,
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings %q, want %q", warnings, want)
	}
}

// TestShowProjects: /config shows the list as written, secrets as <secret> and
// environment credentials as a comment on each project that took them; the text loads
// back, with the same environment, as the same config.
func TestShowProjects(t *testing.T) {
	env := envOf(map[string]string{"CLOUD_SDK_AK": "ENVAK", "CLOUD_SDK_SK": "env-secret-key"})
	cfg, _, err := Parse([]byte(`projects:
  - {name: a, region: cn-north-4, tasks: [t]}
  - {name: b, region: cn-east-3, tasks: [t], credentials: {access_key: AK, secret_key: inline-secret}}
scrape: {timeout: 5s}
`), env)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Show()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"projects:\n", "    - name: a\n", "      credentials: # AK/SK from the environment: CLOUD_SDK_AK/CLOUD_SDK_SK\n",
		"    - name: b\n", "secret_key: <secret>\n", "scrape:\n    timeout: 5s\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("/config lacks %q:\n%s", want, text)
		}
	}
	if strings.Count(text, "AK/SK from the environment") != 1 || strings.Contains(text, "ENVAK") || strings.Contains(text, "env-secret") ||
		strings.Contains(text, "inline-secret") || strings.Contains(text, "\nregion:") {
		t.Errorf("/config shows:\n%s", text)
	}
	if _, _, err := Parse(out, env); err == nil || err.Error() != `line 34: projects[1].credentials.secret_key: "<secret>" is the placeholder that /config shows in place of a secret, not the secret itself: write the real value (better: secret_key_file)` {
		t.Errorf("the shown config with a placeholder loads back: %v", err)
	}
	// Without the inline secret, the shown text loads back as the same config.
	cfg.Projects = cfg.Projects[:1]
	out, err = cfg.Show()
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := Parse(out, env)
	if err != nil {
		t.Fatalf("the shown config does not load back: %v\n%s", err, out)
	}
	out2, err := again.Show()
	if err != nil || string(out2) != string(out) || again.Projects[0].Credentials.SecretKey != "env-secret-key" {
		t.Errorf("loads back as\n%s\nwant\n%s (%v)", out2, out, err)
	}
}
