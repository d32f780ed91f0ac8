package e2e

// The examples for several projects: examples/config-projects.yml loads as start-up loads
// it (its key files put in place), with two projects in two regions, and
// examples/prometheus-projects.yml scrapes exactly those projects through /probe?project=.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var (
	configProjectsFile     = filepath.Join(root, "examples", "config-projects.yml")
	prometheusProjectsFile = filepath.Join(root, "examples", "prometheus-projects.yml")
)

// projectsExample returns the projects of examples/config-projects.yml.
func projectsExample(t *testing.T) []struct {
	Name        string            `yaml:"name"`
	Region      string            `yaml:"region"`
	Credentials map[string]string `yaml:"credentials"`
} {
	t.Helper()
	var cfg struct {
		Projects []struct {
			Name        string            `yaml:"name"`
			Region      string            `yaml:"region"`
			Credentials map[string]string `yaml:"credentials"`
		} `yaml:"projects"`
	}
	readYAML(t, configProjectsFile, &cfg, false)
	return cfg.Projects
}

func TestProjectsConfigExample(t *testing.T) {
	projects := projectsExample(t)
	regions := map[string]bool{}
	for _, p := range projects {
		regions[p.Region] = true
	}
	if len(projects) != 2 || len(regions) != 2 {
		t.Fatalf("%s: %d projects in %d regions, want 2 in 2", configProjectsFile, len(projects), len(regions))
	}
	raw, err := os.ReadFile(configProjectsFile)
	if err != nil {
		t.Fatal(err)
	}
	// Each project's key files, moved under a temporary directory.
	dir := t.TempDir()
	text := string(raw)
	for _, p := range projects {
		if len(p.Credentials) == 0 {
			t.Errorf("project %s has no credentials of its own", p.Name)
		}
		for key, path := range p.Credentials {
			if !strings.HasSuffix(key, "_file") || !filepath.IsAbs(path) {
				t.Errorf("project %s: credentials.%s %q: want an absolute key file", p.Name, key, path)
				continue
			}
			moved := filepath.Join(dir, path)
			text = strings.ReplaceAll(text, path, moved)
			if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(moved, []byte("CHECK"+strings.ToUpper(p.Name)+"0000000000"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	file := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exporterBinary(t), "--config.check", "--config.file="+file)
	cmd.Env = staticEnv() // no credentials in the environment: each project has its own
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s fails --config.check: %v\n%s", configProjectsFile, err, out)
	}
}

func TestProjectsPrometheusExample(t *testing.T) {
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := run(t, promtool, "check", "config", prometheusProjectsFile)
		if err != nil || !strings.Contains(out, "SUCCESS") {
			t.Errorf("promtool check config %s: %v\n%s", prometheusProjectsFile, err, out)
		}
	}
	raw, err := os.ReadFile(prometheusProjectsFile)
	if err != nil {
		t.Fatal(err)
	}
	jobs := readScrapeConfigs(t, prometheusProjectsFile, raw)
	var names []string
	for _, p := range projectsExample(t) {
		names = append(names, p.Name)
	}
	found := false
	for _, j := range jobs {
		if j.MetricsPath != "/probe" {
			continue
		}
		found = true
		var targets []string
		for _, sc := range j.StaticConfigs {
			targets = append(targets, sc.Targets...)
		}
		if !slices.Equal(targets, names) {
			t.Errorf("%s: job %s probes %q, want the projects of %s, %q", prometheusProjectsFile, j.JobName, targets, configProjectsFile, names)
		}
		if !slices.ContainsFunc(j.RelabelConfigs, func(r relabelRule) bool { return r.TargetLabel == "__param_project" }) {
			t.Errorf("%s: job %s does not hand the project to /probe as ?project=", prometheusProjectsFile, j.JobName)
		}
	}
	if !found {
		t.Errorf("%s: no /probe job", prometheusProjectsFile)
	}
}
