package config

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func noEnv(string) string { return "" }

func envOf(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestBadConfigs(t *testing.T) {
	want := map[string]string{
		"ak-without-sk.bad.yml":        `line 3: credentials.secret_key_file: required with an access key (or secret_key)`,
		"bad-endpoint.bad.yml":         `line 3: endpoint: "metastudio.example.com" is not scheme://host[:port] (for example https://metastudio.cn-north-4.myhuaweicloud.com)`,
		"bad-task-id.bad.yml":          `line 6: tasks[1]: "../../etc/passwd" is not a task id (want 1 to 64 of A-Z a-z 0-9 - _)`,
		"bad-timeout.bad.yml":          `line 6: scrape.timeout: "10" is not a duration (want e.g. 10s, 1m30s)`,
		"credentials-typo.bad.yml":     `line 4: credentials.secret_key_flie: unknown key (valid: access_key, access_key_file, secret_key, secret_key_file, security_token_file, token_file, iam_password, ecs_metadata, failure_backoff)`,
		"duplicate-task.bad.yml":       `line 7: tasks[2]: duplicate task id "a" (also tasks[0])`,
		"empty-file.bad.yml":           `line 4: credentials.token_file: testdata/empty.txt is empty`,
		"empty-tasks.bad.yml":          `line 4: tasks: empty: list at least one task id, or enable discovery`,
		"insecure-endpoint.bad.yml":    `line 3: endpoint: "http://metastudio-proxy.internal:8080" is plain http to a host that is not loopback: use https, or set allow_insecure_endpoint: true`,
		"zero-lookback.bad.yml":        `line 6: discovery.lookback: must be positive, got 0s`,
		"negative-max-tasks.bad.yml":   `line 6: discovery.max_tasks: must be positive, got -5`,
		"zero-refresh.bad.yml":         `line 5: discovery.refresh_interval: must be positive, got 0s`,
		"negative-rate.bad.yml":        `line 5: scrape.max_requests_per_second: must be 0 (no limit) or positive, got -1`,
		"discovery-typo.bad.yml":       `line 6: discovery.resource: unknown key (valid: enabled, resources, business_id, lookback, refresh_interval, max_tasks)`,
		"long-task-id.bad.yml":         `line 5: tasks[0]: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is not a task id (want 1 to 64 of A-Z a-z 0-9 - _)`,
		"long-timeout.bad.yml":         `line 6: scrape.timeout: at most 2m0s, got 5m0s`,
		"missing-file.bad.yml":         `line 5: credentials.secret_key_file: open testdata/does-not-exist.txt: no such file or directory`,
		"missing-project.bad.yml":      `project_id: required with token_file (the project id of the region, from "My Credentials" in the console)`,
		"missing-region.bad.yml":       `region: required (for example cn-north-4)`,
		"negative-concurrency.bad.yml": `line 6: scrape.concurrency: must be positive, got -1`,
		"nested-typo.bad.yml":          `line 3: scrape.concurency: unknown key (valid: timeout, concurrency, max_requests_per_second, min_requests_per_second, min_refresh_interval)`,
		"no-credentials.bad.yml":       `credentials: none usable: set access_key_file and secret_key_file, token_file, iam_password or ecs_metadata, or CLOUD_SDK_AK and CLOUD_SDK_SK in the environment`,
		"not-yaml.bad.yml":             `line 1: did not find expected ',' or ']'`,
		"repeated-key.bad.yml":         `line 3: region: repeated key (first at line 1)`,
		"tasks-not-list.bad.yml":       `line 4: tasks: want a list, got "a"`,
		"two-sources.bad.yml":          `line 3: credentials: 2 sources are set, AK/SK (access_key, secret_key_file) and token_file: use one`,
		"three-sources.bad.yml":        `line 3: credentials: 3 sources are set, AK/SK (access_key_file, secret_key_file) and iam_password and ecs_metadata: use one`,
		"bare-source.bad.yml":          `line 4: credentials.ecs_metadata: needs a value: write {} for the defaults`,
		"iam-no-user.bad.yml":          `line 3: credentials.iam_password.user_name: required (the IAM user)`,
		"iam-no-password.bad.yml":      `line 3: credentials.iam_password.password_file: required (or HUAWEICLOUD_SDK_IAM_PASSWORD in the environment)`,
		"zero-backoff.bad.yml":         `line 6: credentials.failure_backoff: must be positive, got 0s`,
		"metadata-typo.bad.yml":        `line 3: credentials.ecs_metadata.endpont: unknown key (valid: endpoint)`,
		"unknown-key.bad.yml":          `line 3: projectid: unknown key (valid: projects, region, project_id, endpoint, iam_endpoint, credentials, tasks, scrape, status_names, discovery, cache, probe, allow_insecure_endpoint)`,
		"zero-timeout.bad.yml":         `line 6: scrape.timeout: must be positive, got 0s`,
		// A secret in the wrong place is never shown, nor a scalar where credentials
		// or one of its sections wants a mapping; file paths are.
		"secret-as-credentials.bad.yml":  `line 4: credentials: want a mapping of keys, got a single value (not shown: it may be a secret)`,
		"secret-as-iam-password.bad.yml": `line 4: credentials.iam_password: want a mapping of keys, got a single value (not shown: it may be a secret)`,
		"secret-as-metadata.bad.yml":     `line 5: credentials.ecs_metadata: want a mapping of keys, got a single value (not shown: it may be a secret)`,
		"secret-as-backoff.bad.yml":      `line 7: credentials.failure_backoff: the value (not shown: it may be a secret) is not a duration (want e.g. 10s, 1m30s)`,
		"secret-as-key.bad.yml":          `line 5: credentials.<key not shown: it may be a secret>: unknown key (valid: access_key, access_key_file, secret_key, secret_key_file, security_token_file, token_file, iam_password, ecs_metadata, failure_backoff)`,
		"placeholder-secret.bad.yml":     `line 6: credentials.secret_key: "<secret>" is the placeholder that /config shows in place of a secret, not the secret itself: write the real value (better: secret_key_file)`,
		"placeholder-file.bad.yml":       `line 5: credentials.token_file: "<secret>" is the placeholder that /config shows in place of a secret, not the secret itself: write the real value (in testdata/placeholder.txt)`,
		"empty-resource.bad.yml":         `line 6: discovery.resources[1]: "" is empty (want 1 to 256 bytes of printable UTF-8 text; spaces, + and other punctuation are fine)`,
		"control-business-id.bad.yml":    `line 6: discovery.business_id: "line\nbreak" contains a control character (want 1 to 256 bytes of printable UTF-8 text; spaces, + and other punctuation are fine)`,
		// Several projects: each error names its line and the project's path.
		"duplicate-project.bad.yml":             `line 6: projects[1].name: duplicate project name "team-a" (also projects[0])`,
		"project-name-space.bad.yml":            `line 2: projects[0].name: "team a" is not a project name (want 1 to 32 of a-z 0-9 - _)`,
		"project-name-upper.bad.yml":            `line 6: projects[1].name: "Team-B" is not a project name (want 1 to 32 of a-z 0-9 - _)`,
		"project-name-long.bad.yml":             `line 2: projects[0].name: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is not a project name (want 1 to 32 of a-z 0-9 - _)`,
		"project-no-name.bad.yml":               `line 2: projects[0].name: required (1 to 32 of a-z 0-9 - _)`,
		"project-no-credentials.bad.yml":        `line 6: projects[1].credentials: none usable: set access_key_file and secret_key_file, token_file, iam_password or ecs_metadata, or CLOUD_SDK_AK and CLOUD_SDK_SK in the environment`,
		"both-forms.bad.yml":                    `line 7: tasks: projects (line 1) and the top-level key tasks cannot be used together: move tasks into a project`,
		"empty-projects.bad.yml":                `line 1: projects: empty: list at least one project, or write the keys of one project at the top level`,
		"project-typo.bad.yml":                  `line 5: projects[0].taks: unknown key (valid: name, region, project_id, endpoint, iam_endpoint, credentials, tasks, status_names, discovery, allow_insecure_endpoint)`,
		"project-missing-file.bad.yml":          `line 10: projects[1].credentials.secret_key_file: open testdata/does-not-exist.txt: no such file or directory`,
		"project-bad-task.bad.yml":              `line 9: projects[1].tasks[1]: "b c" is not a task id (want 1 to 64 of A-Z a-z 0-9 - _)`,
		"project-no-region.bad.yml":             `line 2: projects[0].region: required (for example cn-north-4)`,
		"project-secret-as-credentials.bad.yml": `line 4: projects[0].credentials: want a mapping of keys, got a single value (not shown: it may be a secret)`,
	}
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil || len(files) != len(want) {
		t.Fatalf("found %d bad configs, the table has %d: every file needs its message (%v)", len(files), len(want), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			msg, ok := want[filepath.Base(f)]
			if !ok {
				t.Fatalf("no expected message for %s", f)
			}
			_, _, err := Load(f, noEnv)
			if err == nil {
				t.Fatalf("Load accepted %s", f)
			}
			if err.Error() != msg {
				t.Errorf("error:\n%s\nwant:\n%s", err, msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestScalarErrors checks the error of a value of each scalar kind that is not one, or
// not a scalar at all.
func TestScalarErrors(t *testing.T) {
	const head = "region: cn-north-4\nproject_id: p1\ncredentials: {access_key: AK, secret_key: SK}\ntasks: [a]\n"
	for name, c := range map[string]struct{ yaml, want string }{
		"integer":        {"scrape: {concurrency: 1.5}", `line 5: scrape.concurrency: "1.5" is not an integer`},
		"number":         {"scrape: {max_requests_per_second: fast}", `line 5: scrape.max_requests_per_second: "fast" is not a number`},
		"infinite":       {"scrape: {max_requests_per_second: inf}", `line 5: scrape.max_requests_per_second: "inf" is not a number`},
		"not a number":   {"scrape: {max_requests_per_second: NaN}", `line 5: scrape.max_requests_per_second: "NaN" is not a number`},
		"bool":           {"probe: {allow_unlisted: maybe}", `line 5: probe.allow_unlisted: "maybe" is not true or false`},
		"duration":       {"scrape: {timeout: 5}", `line 5: scrape.timeout: "5" is not a duration (want e.g. 10s, 1m30s)`},
		"string list":    {"endpoint: [a]", `line 5: endpoint: want a string, got a list`},
		"integer list":   {"scrape: {concurrency: [1]}", `line 5: scrape.concurrency: want an integer, got a list`},
		"number mapping": {"scrape: {max_requests_per_second: {a: 1}}", `line 5: scrape.max_requests_per_second: want a number, got a mapping`},
		"bool list":      {"probe: {allow_unlisted: [true]}", `line 5: probe.allow_unlisted: want true or false, got a list`},
		"duration list":  {"scrape: {timeout: [5s]}", `line 5: scrape.timeout: want a duration such as 10s, got a list`},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Parse([]byte(head+c.yaml+"\n"), noEnv)
			if err == nil || err.Error() != c.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, c.want)
			}
		})
	}
}

func TestGoodConfig(t *testing.T) {
	cfg, warnings, err := Load("testdata/good.yml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("unexpected warnings %q", warnings)
	}
	if cfg.Region != "cn-north-4" || cfg.ProjectID != "0123456789abcdef0123456789abcdef" {
		t.Errorf("region/project: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.Tasks, []string{"fd1c56acbb2c4b1aa24ba37df99f3129", "task_2-b"}) {
		t.Errorf("tasks %q", cfg.Tasks)
	}
	if cfg.Scrape.Timeout != 15*time.Second || cfg.Scrape.Concurrency != 4 {
		t.Errorf("scrape %+v", cfg.Scrape)
	}
	if !reflect.DeepEqual(cfg.StatusNames, map[string]string{"0": "pending", "1": "running"}) {
		t.Errorf("status_names %q", cfg.StatusNames)
	}
	if got, want := cfg.Credentials.SecretKeyFile, filepath.Join("testdata", "sk.txt"); got != want {
		t.Errorf("secret_key_file %q, want it relative to the config file: %q", got, want)
	}
	if got := cfg.MetaStudioEndpoint(); got != "https://metastudio.cn-north-4.myhuaweicloud.com" {
		t.Errorf("endpoint %q", got)
	}
}

func TestDefaults(t *testing.T) {
	cfg, _, err := Parse([]byte("region: cn-east-3\nproject_id: p\ntasks: [t]\nendpoint: http://127.0.0.1:8080/\n"),
		envOf(map[string]string{"CLOUD_SDK_AK": "AK", "CLOUD_SDK_SK": "SK"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scrape.Timeout != DefaultScrapeTimeout || cfg.Scrape.Concurrency != DefaultScrapeConcurrency {
		t.Errorf("defaults not applied: %+v", cfg.Scrape)
	}
	if got := cfg.MetaStudioEndpoint(); got != "http://127.0.0.1:8080" {
		t.Errorf("endpoint override %q", got)
	}
}

func TestEnvironmentCredentials(t *testing.T) {
	const base = "region: cn-north-4\nproject_id: p\ntasks: [t]\n"
	cases := []struct {
		name, extra string
		env         map[string]string
		wantAK      string
		wantSK      Secret
		wantToken   Secret
		wantFrom    string
		wantErr     string
	}{
		{name: "CLOUD_SDK first", env: map[string]string{
			"CLOUD_SDK_AK": "a1", "CLOUD_SDK_SK": "s1", "CLOUD_SDK_SECURITY_TOKEN": "t1",
			"HUAWEICLOUD_SDK_AK": "a2", "HUAWEICLOUD_SDK_SK": "s2", "HUAWEICLOUD_SDK_SECURITY_TOKEN": "t2"},
			wantAK: "a1", wantSK: "s1", wantToken: "t1", wantFrom: "CLOUD_SDK_AK/CLOUD_SDK_SK"},
		{name: "HUAWEICLOUD_SDK when CLOUD_SDK is incomplete", env: map[string]string{
			"CLOUD_SDK_AK": "a1", "CLOUD_SDK_SECURITY_TOKEN": "t1",
			"HUAWEICLOUD_SDK_AK": "a2", "HUAWEICLOUD_SDK_SK": "s2"},
			wantAK: "a2", wantSK: "s2", wantFrom: "HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK"},
		{name: "file source wins, environment ignored", extra: "credentials: {access_key: fileAK, secret_key: fileSK}\n",
			env:    map[string]string{"CLOUD_SDK_AK": "a1", "CLOUD_SDK_SK": "s1", "CLOUD_SDK_SECURITY_TOKEN": "t1"},
			wantAK: "fileAK", wantSK: "fileSK"},
		{name: "nothing anywhere", env: map[string]string{"CLOUD_SDK_AK": "a1"},
			wantErr: "credentials: none usable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse([]byte(base+tc.extra), envOf(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Credentials
			if c.AccessKey != tc.wantAK || c.SecretKey != tc.wantSK || c.SecurityToken != tc.wantToken || c.FromEnv != tc.wantFrom {
				t.Errorf("got AK %q SK %q token %q from %q", c.AccessKey, string(c.SecretKey), string(c.SecurityToken), c.FromEnv)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	const secret = "s3cr3t-sk-value"
	_, warnings, err := Parse([]byte("region: eu-west-101\nproject_id: p\ntasks: [t]\ncredentials: {access_key: AK, secret_key: "+secret+"}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{`region "eu-west-101" is not one where MetaStudio is documented`, "credentials.secret_key is written inline"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings %q lack %q", warnings, want)
		}
	}
	if strings.Contains(joined, secret) || strings.Contains(joined, "s3cr3t") {
		t.Errorf("a warning shows the secret: %q", warnings)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c := Credentials{AccessKey: "AK", SecretKey: "hunter2", SecurityToken: "tok3n"}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("[%s]", c.SecretKey), string(out), string(js)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "tok3n") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if !strings.Contains(string(out), "<secret>") {
		t.Errorf("YAML does not show <secret>: %s", out)
	}
}

func TestInsecureEndpoint(t *testing.T) {
	env := envOf(map[string]string{"CLOUD_SDK_AK": "AK", "CLOUD_SDK_SK": "SK"})
	base := "region: cn-north-4\nproject_id: p\ntasks: [t]\n"
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://proxy.example.com"} {
		if _, _, err := Parse([]byte(base+"endpoint: "+ok+"\niam_endpoint: "+ok+"\n"), env); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	_, warnings, err := Parse([]byte(base+"endpoint: http://10.1.2.3\nallow_insecure_endpoint: true\n"), env)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "plain http") {
		t.Errorf("allow_insecure_endpoint: %v %q", err, warnings)
	}
	if _, _, err := Parse([]byte(base+"iam_endpoint: http://iam.example.com\n"), env); err == nil {
		t.Error("a plain http iam_endpoint must be refused")
	}
}

func TestErrorsStayOnOneLine(t *testing.T) {
	_, _, err := Parse([]byte("region: cn-north-4\ntasks: [a]\n\"tab\\nhere\": 1\n"), noEnv)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `"tab\nhere": unknown key`) {
		t.Errorf("an unknown key with a line break: %q", err)
	}
}

// TestNoSecretInErrors puts a secret where every credential key, and every credentials
// section, expects something else: as a scalar where a mapping belongs, as a key, in a
// list, in a mapping. No error shows any part of it.
func TestNoSecretInErrors(t *testing.T) {
	const secret = "Zq8hunter2Secret"
	base := "region: cn-north-4\nproject_id: p1\ntasks: [a]\n"
	var texts []string
	for _, section := range []string{"credentials", "credentials.iam_password", "credentials.ecs_metadata"} {
		for _, v := range []string{secret, "[" + secret + "]", "{" + secret + ": x}", "{" + strings.ToLower(secret) + ": x}", `"` + secret + `\n"`} {
			texts = append(texts, nest(section, v))
		}
	}
	for _, key := range []string{"access_key", "access_key_file", "secret_key", "secret_key_file", "security_token_file",
		"token_file", "failure_backoff", "iam_password.domain_name", "iam_password.user_name", "iam_password.password_file",
		"ecs_metadata.endpoint"} {
		for _, v := range []string{"[" + secret + "]", "{" + secret + ": x}", "{k: " + secret + "}", "[{k: " + secret + "}]"} {
			texts = append(texts, nest("credentials."+key, v))
		}
	}
	texts = append(texts, "credentials:\n  failure_backoff: "+secret+"\n", secret+"\n", "- "+secret+"\n")
	for _, text := range texts {
		files := []string{base + text}
		if text == secret+"\n" || text == "- "+secret+"\n" {
			files = []string{text}
		} else {
			// The same text in the second project of a list.
			item := "    " + strings.ReplaceAll(strings.TrimSuffix(base+text, "\n"), "\n", "\n    ") + "\n"
			files = append(files, "projects:\n  - {name: a, region: cn-north-4, tasks: [a], credentials: {access_key: AK, secret_key_file: sk}}\n  - name: b\n"+item)
		}
		for _, file := range files {
			_, _, err := Parse([]byte(file), noEnv)
			if err == nil {
				t.Errorf("accepted:\n%s", file)
				continue
			}
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(secret[:6])) {
				t.Errorf("the error shows the secret: %v\nfor\n%s", err, file)
			}
			if strings.HasPrefix(file, "projects:") && !strings.Contains(err.Error(), "projects[1].credentials") {
				t.Errorf("the error is not about the second project's credentials: %v\nfor\n%s", err, file)
			}
		}
	}
}

// nest writes value at a dotted path as flow-style YAML.
func nest(path, value string) string {
	parts := strings.Split(path, ".")
	out := value
	for i := len(parts) - 1; i > 0; i-- {
		out = "{" + parts[i] + ": " + out + "}"
	}
	return parts[0] + ": " + out + "\n"
}

// TestShow: /config's text. Environment credentials are a comment, not inline keys, and
// the text loads back with the same environment as the same config; an inline secret
// shows as <secret>, which does not load back as a secret.
func TestShow(t *testing.T) {
	env := envOf(map[string]string{"CLOUD_SDK_AK": "ENVAK", "CLOUD_SDK_SK": "env-secret-key", "HUAWEICLOUD_SDK_IAM_PASSWORD": "env-password"})
	base := "region: cn-north-4\nproject_id: p\ntasks: [t]\n"
	for _, tc := range []struct {
		name, extra, comment string
	}{
		{"environment AK/SK", "", "credentials: # AK/SK from the environment: CLOUD_SDK_AK/CLOUD_SDK_SK\n"},
		{"environment password", "credentials: {iam_password: {domain_name: d, user_name: u}}\n", "iam_password: # password from the environment: HUAWEICLOUD_SDK_IAM_PASSWORD\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse([]byte(base+tc.extra), env)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cfg.Show()
			if err != nil {
				t.Fatal(err)
			}
			text := string(out)
			if !strings.Contains(text, tc.comment) || strings.Contains(text, "ENVAK") || strings.Contains(text, "<secret>") || strings.Contains(text, "env-") {
				t.Errorf("/config shows:\n%s", text)
			}
			again, _, err := Parse(out, env)
			if err != nil {
				t.Fatalf("the shown config does not load back: %v", err)
			}
			if again.Credentials.AccessKey != cfg.Credentials.AccessKey || again.Credentials.SecretKey != cfg.Credentials.SecretKey ||
				(cfg.Credentials.IAMPassword != nil && again.Credentials.IAMPassword.Password != cfg.Credentials.IAMPassword.Password) {
				t.Error("the shown config loads back with other credentials")
			}
		})
	}
	cfg, _, err := Parse([]byte(base+"credentials: {access_key: AK, secret_key: inline-secret}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := cfg.Show()
	if !strings.Contains(string(out), "secret_key: <secret>") || strings.Contains(string(out), "inline-secret") {
		t.Errorf("an inline secret shows as:\n%s", out)
	}
	if _, _, err := Parse(out, noEnv); err == nil || !strings.Contains(err.Error(), "is the placeholder that /config shows") {
		t.Errorf("the placeholder loads back as a secret: %v", err)
	}
}
