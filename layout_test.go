package main

// Checks of the source tree's shape: the refresher stays a package of its own, and no
// file grows into several jobs.

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxLines is the most lines a Go file outside tests may have: a longer one does more
// than one job, and is split by job.
const maxLines = 600

func TestLayout(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata"):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go"):
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if n := strings.Count(string(src), "\n"); n > maxLines && !strings.HasSuffix(path, "_test.go") {
			t.Errorf("%s has %d lines, more than %d: split it by job", path, n, maxLines)
		}
		if filepath.Dir(path) != "refresh" {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasSuffix(p, "/collector") {
				t.Errorf("%s imports %s: the refresher knows nothing of the collector", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
