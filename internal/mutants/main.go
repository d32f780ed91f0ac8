// Command mutants checks that the tests catch the bugs users would feel: it applies each
// mutation of mutants.yml (a deliberate small bug) to a copy of the repository, runs the
// tests that should notice, and reports the mutants that survive. It exits 1 when a mutant
// survives, when a pattern no longer matches exactly once, or when a mutant does not
// compile: each of those means the list or the tests need attention.
//
//	go run ./internal/mutants            # every mutant, from the repository's root
//	go run ./internal/mutants -only NAME # one
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Mutant is one deliberate bug and the tests that must catch it.
type Mutant struct {
	Name    string `yaml:"name"`
	File    string `yaml:"file"`    // relative to the repository's root
	From    string `yaml:"from"`    // must occur exactly once in File
	To      string `yaml:"to"`      // what it becomes
	Package string `yaml:"package"` // go test's package pattern
	Run     string `yaml:"run"`     // go test's -run pattern
}

// perMutant bounds one mutant's test run; a mutant that makes a test hang is killed by it.
const perMutant = 5 * time.Minute

func main() {
	list := flag.String("list", "internal/mutants/mutants.yml", "the list of mutants")
	only := flag.String("only", "", "run only the mutant of this name")
	flag.Parse()
	mutants, err := Load(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "mutants-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	if err := copyTree(dir); err != nil {
		fmt.Fprintln(os.Stderr, "mutants: copying the repository:", err)
		os.Exit(1)
	}
	bad, ran := 0, 0
	for _, m := range mutants {
		if *only != "" && m.Name != *only {
			continue
		}
		ran++
		verdict := m.Try(dir)
		fmt.Printf("%-9s %s (%s, go test -run '%s' %s)\n", verdict, m.Name, m.File, m.Run, m.Package)
		if verdict != "killed" {
			bad++
		}
	}
	if bad > 0 {
		fmt.Printf("%d of %d mutants not killed\n", bad, ran)
		os.Exit(1)
	}
	if ran == 0 {
		fmt.Fprintln(os.Stderr, "mutants: no mutant of that name")
		os.Exit(1)
	}
	fmt.Printf("every mutant killed (%d)\n", ran)
}

// Load reads and checks the list.
func Load(path string) ([]Mutant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var mutants []Mutant
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&mutants); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, m := range mutants {
		switch {
		case m.Name == "" || m.File == "" || m.From == "" || m.Package == "" || m.Run == "":
			return nil, fmt.Errorf("%s: mutant %d needs name, file, from, package and run", path, i+1)
		case m.From == m.To:
			return nil, fmt.Errorf("%s: mutant %q changes nothing", path, m.Name)
		case seen[m.Name]:
			return nil, fmt.Errorf("%s: two mutants are named %q", path, m.Name)
		}
		seen[m.Name] = true
	}
	return mutants, nil
}

// Apply returns src with the mutation, or an error when its pattern does not occur
// exactly once.
func (m Mutant) Apply(src string) (string, error) {
	if n := strings.Count(src, m.From); n != 1 {
		return "", fmt.Errorf("the pattern occurs %d times in %s, want once", n, m.File)
	}
	return strings.Replace(src, m.From, m.To, 1), nil
}

// Try applies the mutant in the copy at dir, runs its tests and restores the file. The
// verdict is killed, SURVIVED, UNMATCHED (the pattern no longer fits the code) or BROKEN
// (the mutant does not compile).
func (m Mutant) Try(dir string) string {
	path := filepath.Join(dir, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return "UNMATCHED"
	}
	mutated, err := m.Apply(string(orig))
	if err != nil {
		fmt.Println("  ", err)
		return "UNMATCHED"
	}
	if err := os.WriteFile(path, []byte(mutated), 0o644); err != nil {
		return "BROKEN"
	}
	defer os.WriteFile(path, orig, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), perMutant)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", m.Run, m.Package)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil:
		return "SURVIVED"
	case bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")):
		fmt.Printf("   %s\n", firstLines(out, 5))
		return "BROKEN"
	}
	return "killed"
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n   ")
}

// copyTree copies the repository's files (tracked, and new ones not ignored) into dir.
func copyTree(dir string) error {
	out, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if err := copyFile(name, filepath.Join(dir, name)); err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree
			}
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if info, err := in.Stat(); err != nil || info.IsDir() {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	outFile, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(outFile, in); err != nil {
		outFile.Close()
		return err
	}
	return outFile.Close()
}
