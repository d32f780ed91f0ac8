package main

// Checks of the build. No Docker engine runs here, so the Dockerfile is read as text and
// held to the points that matter; the binary `make build` produces is opened as ELF.

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// instructions splits a Dockerfile into "INSTRUCTION args" lines, continuations joined and
// comments dropped.
func instructions(text string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		line = strings.Join(strings.Fields(line), " ")
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// ldflagNames returns the -X variable names and the other flags of an -ldflags value.
func ldflagNames(s string) []string {
	var names []string
	fields := strings.Fields(s)
	for i := 0; i < len(fields); i++ {
		if fields[i] == "-X" && i+1 < len(fields) {
			i++
			name, _, _ := strings.Cut(fields[i], "=")
			names = append(names, "-X "+name)
		} else if strings.HasPrefix(fields[i], "-") {
			names = append(names, fields[i])
		}
	}
	slices.Sort(names)
	return names
}

func TestDockerfile(t *testing.T) {
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]string
	for _, in := range instructions(string(dockerfile)) {
		if strings.HasPrefix(in, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("the Dockerfile has %d stage(s), want a build stage and a small final stage", len(stages))
	}
	build := strings.Join(slices.Concat(stages[:len(stages)-1]...), "\n")
	final := stages[len(stages)-1]

	if !regexp.MustCompile(`CGO_ENABLED=0\S* .*go build`).MatchString(build) {
		t.Error("the build stage must run go build with CGO_ENABLED=0 (a static binary)")
	}
	if !regexp.MustCompile(`^FROM (gcr\.io/distroless/static\S*|busybox\S*)$`).MatchString(final[0]) {
		t.Errorf("final stage %q: want a small base, distroless static or busybox", final[0])
	}
	for _, want := range []string{"USER 65534", "EXPOSE 39107", `ENTRYPOINT ["/bin/metastudio_exporter"]`,
		"COPY --from=build /out/metastudio_exporter /bin/metastudio_exporter"} {
		if !slices.Contains(final, want) {
			t.Errorf("the final stage lacks %q", want)
		}
	}

	m := regexp.MustCompile(`-ldflags "([^"]*)"`).FindStringSubmatch(build)
	if m == nil {
		t.Fatal("the build stage has no -ldflags \"...\"")
	}
	dockerFlags := ldflagNames(m[1])
	makeVars := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(string(makefile), "\\\n", " "), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, "\t:?") {
			makeVars[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	ldflags := strings.ReplaceAll(makeVars["LDFLAGS"], "$(VERSION_PKG)", makeVars["VERSION_PKG"])
	makeFlags := ldflagNames(ldflags)
	if len(makeFlags) < 7 || !slices.Equal(dockerFlags, makeFlags) {
		t.Errorf("ldflags differ:\nDockerfile %q\nMakefile   %q", dockerFlags, makeFlags)
	}
}

func TestBinaryIsStatic(t *testing.T) {
	if testing.Short() || runtime.GOOS != "linux" {
		t.Skip("builds the binary; Linux only")
	}
	testkit.Need(t, "make")
	dir := t.TempDir()
	bin := filepath.Join(dir, "metastudio_exporter")
	cmd := exec.Command("make", "-s", "build", "BIN="+bin, "SIM_BIN="+filepath.Join(dir, "metastudio-sim"))
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MAKELEVEL=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %q", libs)
	}
	version, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if want := "version " + strings.TrimSpace(string(version)); err != nil || !strings.Contains(string(out), want) {
		t.Errorf("--version printed %q (%v), want %q: the version ldflags did not take", out, err, want)
	}
}
