package config_test

// Fuzz target of the configuration loader. `go test` runs the seeds (the f.Add calls, the
// bad and good configs of testdata/ and testdata/fuzz/FuzzParse/); `make fuzz` explores
// from them. See docs/reliability.md.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

// fuzzEnv is an environment with every variable the loader reads, or none.
func fuzzEnv(set bool) config.Getenv {
	env := map[string]string{}
	if set {
		env = map[string]string{
			"CLOUD_SDK_AK": "FUZZAK", "CLOUD_SDK_SK": "fuzz-sk", "CLOUD_SDK_SECURITY_TOKEN": "fuzz-token",
			"HUAWEICLOUD_SDK_AK": "FUZZAK2", "HUAWEICLOUD_SDK_SK": "fuzz-sk2",
			"HUAWEICLOUD_SDK_IAM_PASSWORD": "fuzz-password",
		}
	}
	return func(k string) string { return env[k] }
}

// FuzzParse feeds any bytes to config.Parse, with and without credentials in the
// environment. It must not panic; an error or a warning is one line (it is printed as the
// one-line message of --config.check and of a failed start, and logged); a config that
// parses must marshal (as /config shows it), re-validating that text must not panic, and
// with its null keys dropped it must parse again to the same config.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data, false)
			f.Add(data, true)
		}
	}
	for _, s := range []string{
		"region: cn-north-4\nproject_id: p1\ntasks: [a, b]\n",
		"region: cn-north-4\ntasks: [a]\ncredentials:\n  iam_password: {domain_name: d, user_name: u}\n",
		"region: cn-east-3\ntasks: [a]\ncredentials:\n  ecs_metadata: {endpoint: \"http://127.0.0.1:1\"}\n",
		"region: ap-southeast-3\nproject_id: p\ntasks: [a]\ncredentials: {token_file: t}\n",
		"region: cn-north-4\ndiscovery: {enabled: true, resources: [qa_pair], lookback: 2h, refresh_interval: 1m, max_tasks: 10}\n" +
			"cache: {finished_ttl: 0s}\nprobe: {allow_unlisted: true}\nscrape: {max_requests_per_second: 2.5, timeout: 2m}\n",
		"region: cn-north-4\ntasks: [a]\nendpoint: http://example.com\nallow_insecure_endpoint: true\n",
		"region: cn-north-4\ntasks: [a]\nstatus_names: {0: waiting, \"1\": running, ~: x}\n",
		"base: &b {region: cn-north-4}\n",
		"region: &r cn-north-4\nproject_id: *r\ntasks: [*r]\n",
		"region: cn-north-4\ntasks:\n  - !!binary aGVsbG8=\n",
		"region: cn-north-4\ntasks: [a]\nscrape: {timeout: 9223372036854775807ns, concurrency: 99999999999999999999}\n",
		"region: cn-north-4\ntasks: [a]\nscrape: {max_requests_per_second: .nan}\n",
		"region: cn-north-4\ntasks: [a]\n\"tab\\there\": 1\n",
		"region: \"cn-north-4\\nX\"\ntasks: [a]\n",
		"---\nregion: cn-north-4\n---\nregion: cn-east-3\n",
		"%YAML 1.2\n---\n{region: cn-north-4, tasks: [a]}\n",
		"\ufeffregion: cn-north-4\ntasks: [a]\n",
		"projects:\n  - {name: a, region: cn-north-4, tasks: [t]}\n  - {name: b, region: cn-east-3, tasks: [u], credentials: {access_key: AK, secret_key: SK}}\n",
		"projects:\n  - name: a\n    region: cn-north-4\n    discovery: {enabled: true}\n    credentials: {iam_password: {domain_name: d, user_name: u}}\nscrape: {timeout: 5s}\n",
		"projects: []\n", "projects:\n", "projects: [~]\n", "projects: [{name: a}]\nregion: cn-north-4\n",
		"\x00", "[", "- a\n- b\n", "just a string", "? complex key\n: value\n", "",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}

	f.Fuzz(func(t *testing.T, data []byte, withEnv bool) {
		getenv := fuzzEnv(withEnv)
		cfg, warnings, err := config.Parse(data, getenv)
		if err != nil {
			if cfg != nil || warnings != nil {
				t.Errorf("Parse failed (%v) but returned a config or warnings", err)
			}
			checkOneLine(t, "error", err.Error())
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		for _, w := range warnings {
			checkOneLine(t, "warning", w)
		}

		// /config shows exactly this text.
		out, err := cfg.Show()
		if err != nil {
			t.Fatalf("Show of a parsed config: %v", err)
		}
		// Re-validating it must not panic, and fails in one line if it fails: it does
		// fail today, since an unset credential source marshals as null, which the
		// strict decoder refuses ("needs a value"); see docs/reliability.md.
		if _, warnings, err := config.Parse(out, getenv); err != nil {
			checkOneLine(t, "error", err.Error())
		} else {
			for _, w := range warnings {
				checkOneLine(t, "warning", w)
			}
		}
		// Without those nulls, the marshalled config must parse back to itself, unless
		// it shows an inline secret as <secret>, which is refused as a secret.
		pruned := dropNulls(t, out)
		again, warnings, err := config.Parse(pruned, getenv)
		if err != nil && inlineSecret(cfg) && strings.Contains(err.Error(), "is the placeholder that /config shows") {
			return
		}
		if err != nil {
			t.Fatalf("the marshalled config, nulls dropped, does not parse: %v\n%s", err, pruned)
		}
		for _, w := range warnings {
			checkOneLine(t, "warning", w)
		}
		out2, err := again.Show()
		if err != nil {
			t.Fatalf("Show of the re-parsed config: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("the config changed through marshal and parse:\n%s\nbecame\n%s", out, out2)
		}
	})
}

// inlineSecret reports whether a project of cfg has an SK written in the file, which
// /config shows as <secret>.
func inlineSecret(cfg *config.Config) bool {
	for _, p := range cfg.Projects {
		if p.Credentials.SecretKey != "" && p.Credentials.FromEnv == "" {
			return true
		}
	}
	return false
}

// dropNulls removes the keys whose value is null from YAML text.
func dropNulls(t *testing.T, data []byte) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the marshalled config is not YAML: %v\n%s", err, data)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			kept := n.Content[:0]
			for i := 0; i+1 < len(n.Content); i += 2 {
				if v := n.Content[i+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
					continue
				}
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
			n.Content = kept
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatalf("yaml.Marshal of the pruned config: %v", err)
	}
	return out
}

// checkOneLine fails unless s is one non-empty line.
func checkOneLine(t *testing.T, what, s string) {
	t.Helper()
	if s == "" {
		t.Errorf("empty %s", what)
	}
	if strings.ContainsAny(s, "\n\r") {
		t.Errorf("%s is not one line: %q", what, s)
	}
}
