package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestListMatchesTheCode: every mutant's pattern occurs exactly once in today's code, so a
// refactoring that leaves a mutant behind is caught by make test, not only by make mutants.
func TestListMatchesTheCode(t *testing.T) {
	mutants, err := Load("mutants.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(mutants) < 10 {
		t.Fatalf("%d mutants, the list was cut", len(mutants))
	}
	for _, m := range mutants {
		src, err := os.ReadFile(filepath.Join("..", "..", m.File))
		if err != nil {
			t.Errorf("%s: %v", m.Name, err)
			continue
		}
		if _, err := m.Apply(string(src)); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
	}
}

func TestApplyRefusesAmbiguousPatterns(t *testing.T) {
	m := Mutant{Name: "x", File: "f.go", From: "a", To: "b"}
	if got, err := m.Apply("xay"); err != nil || got != "xby" {
		t.Errorf("Apply(xay) = %q, %v", got, err)
	}
	for _, src := range []string{"none here", "a and a"} {
		if _, err := m.Apply(src); err == nil {
			t.Errorf("Apply(%q) succeeded; a pattern must occur exactly once", src)
		}
	}
}
