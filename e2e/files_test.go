package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// decodeYAML decodes the YAML file at path into v; with strict, a key v has no field for
// is an error, as it is for the tools that read the file.
func decodeYAML(path string, v any, strict bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readYAML is decodeYAML that fails the test on an error.
func readYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	if err := decodeYAML(path, v, strict); err != nil {
		t.Fatal(err)
	}
}

// writeYAML writes v as YAML to dir/name and returns the file's path.
func writeYAML(t *testing.T, dir, name string, v any) string {
	t.Helper()
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestYAMLFiles: what writeYAML writes, decodeYAML reads back; strict refuses an unknown key.
func TestYAMLFiles(t *testing.T) {
	t.Parallel()
	type known struct {
		A int `yaml:"a"`
	}
	path := writeYAML(t, t.TempDir(), "x.yml", map[string]int{"a": 1, "b": 2})
	var lenient known
	if err := decodeYAML(path, &lenient, false); err != nil || lenient.A != 1 {
		t.Errorf("lenient: %+v %v", lenient, err)
	}
	var strict known
	if err := decodeYAML(path, &strict, true); err == nil || !strings.Contains(err.Error(), "field b not found") ||
		!strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("strict: %v, want the path and the unknown key b", err)
	}
}
