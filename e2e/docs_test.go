package e2e

// The documentation is complete and its links hold: every flag of --help is in
// docs/configuration.md, and so is every key of the config file (read from the config
// package's own schema); every relative link of README.md and docs/ points at a file that
// exists, and at a heading of it when it names one.

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/metastudio-exporter/metastudio_exporter/config"
)

var configDoc = filepath.Join(root, "docs", "configuration.md")

func TestDocsListEveryFlag(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range helpFlags(t, exporterBinary(t)) {
		if !strings.Contains(string(doc), "`--"+flag+"`") {
			t.Errorf("flag --%s of --help is not in %s", flag, configDoc)
		}
	}
}

// configKeys returns the YAML keys of a config struct, nested ones as path.key (the keys
// of a list's items too, as list.key).
func configKeys(typ reflect.Type, prefix string) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		keys = append(keys, prefix+name)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() {
			keys = append(keys, configKeys(ft, prefix+name+".")...)
		}
	}
	return keys
}

func TestDocsListEveryConfigKey(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	keys := configKeys(reflect.TypeOf(config.Config{}), "")
	if len(keys) < 20 {
		t.Fatalf("read only %d keys from config.Config: %q", len(keys), keys)
	}
	for _, k := range keys {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(leaf) + `\b`).Match(doc) {
			t.Errorf("config key %s is not in %s", k, configDoc)
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func TestDocsLinksResolve(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "examples", "kubernetes", "README.md"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(raw), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := f
			if path != "" {
				file = filepath.Join(filepath.Dir(f), path)
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
				continue
			}
			if anchor != "" {
				text, err := os.ReadFile(file)
				if err != nil {
					t.Errorf("%s links to %s: %v", f, target, err)
				} else if !githubAnchors(string(text))[anchor] {
					t.Errorf("%s links to %s, which has no heading #%s", f, target, anchor)
				}
			}
		}
	}
}

// TestReadmeStartsWithTheTwoCommands: a newcomer's first lines are make demo and make test.
func TestReadmeStartsWithTheTwoCommands(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var first []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" && l != "```sh" {
			first = append(first, l)
		}
		if len(first) == 2 {
			break
		}
	}
	if len(first) != 2 || !strings.HasPrefix(first[0], "make demo") || !strings.HasPrefix(first[1], "make test") {
		t.Errorf("README.md must start with `make demo` and `make test`, it starts with %q", first)
	}
	if n := len(lines); n > 150 {
		t.Errorf("README.md has %d lines: reference material belongs in docs/", n)
	}
}
