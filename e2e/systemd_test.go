package e2e

// The systemd unit: its ExecStart flags are flags the binary accepts (and the binary takes
// them, values included), it is hardened, and it gets credentials from systemd.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// unit is a parsed systemd unit file: section -> key -> values, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, text string) unit {
	t.Helper()
	u := unit{}
	section := ""
	text = regexp.MustCompile(`\\\n[ \t]*`).ReplaceAllString(text, " ")
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %d: %q is not key=value inside a section", i+1, line)
			}
			key = strings.TrimSpace(key)
			u[section][key] = append(u[section][key], strings.TrimSpace(value))
		}
	}
	return u
}

// helpFlags returns the long flags that `binary --help` lists.
func helpFlags(t *testing.T, binary string) []string {
	t.Helper()
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", binary, err, out)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9.\-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	if !slices.Contains(flags, "config.file") || !slices.Contains(flags, "web.listen-address") {
		t.Fatalf("could not read the flags of %s --help (found %q):\n%s", binary, flags, out)
	}
	return flags
}

func TestSystemdUnit(t *testing.T) {
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u := parseUnit(t, string(text))
	svc := u["Service"]
	if svc == nil || u["Unit"] == nil || u["Install"] == nil {
		t.Fatalf("want [Unit], [Service] and [Install] sections, got %v", u)
	}

	for key, want := range map[string]string{
		"DynamicUser":            "yes",
		"ProtectSystem":          "strict",
		"ProtectHome":            "yes",
		"NoNewPrivileges":        "yes",
		"PrivateTmp":             "yes",
		"PrivateDevices":         "yes",
		"CapabilityBoundingSet":  "",
		"RestrictSUIDSGID":       "yes",
		"MemoryDenyWriteExecute": "yes",
		"ProtectKernelTunables":  "yes",
		"ProtectKernelModules":   "yes",
		"ProtectControlGroups":   "yes",
		"RestrictNamespaces":     "yes",
	} {
		if got, ok := svc[key]; !ok || got[len(got)-1] != want {
			t.Errorf("[Service] %s = %q, want %q", key, got, want)
		}
	}
	if len(svc["EnvironmentFile"]) == 0 && len(svc["LoadCredential"]) == 0 {
		t.Error("the unit takes credentials neither from an EnvironmentFile nor through LoadCredential")
	}
	if strings.Contains(string(text), "CLOUD_SDK_SK=") && !strings.Contains(string(text), "#      CLOUD_SDK_SK=") {
		t.Error("a secret key must not be written into the unit itself")
	}

	// systemctl reload sends SIGHUP, on which the exporter reloads its config file.
	if got := svc["ExecReload"]; !slices.Equal(got, []string{"/bin/kill -HUP $MAINPID"}) {
		t.Errorf("[Service] ExecReload = %q, want [/bin/kill -HUP $MAINPID]", got)
	}

	execStart := svc["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("want one ExecStart, got %q", execStart)
	}
	args := strings.Fields(execStart[0])
	if !filepath.IsAbs(args[0]) || filepath.Base(args[0]) != "metastudio_exporter" {
		t.Errorf("ExecStart runs %q, want an absolute path to metastudio_exporter", args[0])
	}
	binary := exporterBinary(t)
	known := helpFlags(t, binary)
	var flags []string
	for _, a := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") {
			t.Errorf("ExecStart argument %q: write flags as --name=value", a)
			continue
		}
		flags = append(flags, name)
		if !slices.Contains(known, name) {
			t.Errorf("ExecStart flag --%s is not a flag of metastudio_exporter (it has %q)", name, known)
		}
	}
	if !slices.Contains(flags, "config.file") {
		t.Error("ExecStart does not say --config.file")
	}

	// The binary takes the unit's flags and values: run them with --config.check, with the
	// shipped config and credentials from the environment, as EnvironmentFile gives them.
	checkArgs := []string{"--config.check"}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "--config.file=") {
			a = "--config.file=" + filepath.Join(root, "examples", "config.yml")
		}
		checkArgs = append(checkArgs, a)
	}
	cmd := exec.Command(binary, checkArgs...)
	cmd.Env = append(os.Environ(), "CLOUD_SDK_AK=UNITTESTAK0000000000", "CLOUD_SDK_SK=unit-test-secret")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("metastudio_exporter %s: %v\n%s", strings.Join(checkArgs, " "), err, out)
	}
}

// TestSystemdAnalyzeVerify asks systemd itself, when it is installed, whether the unit is
// valid (with ExecStart pointing at the built binary).
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := need(t, "systemd-analyze")
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	binary := exporterBinary(t)
	copyPath := filepath.Join(t.TempDir(), "metastudio_exporter.service")
	unitText := strings.Replace(string(text), "ExecStart=/usr/local/bin/metastudio_exporter", "ExecStart="+binary, 1)
	if err := os.WriteFile(copyPath, []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, analyze, "verify", copyPath)
	if err != nil || strings.Contains(out, "metastudio_exporter.service:") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdReloadReloads runs the unit's ExecReload command, with $MAINPID set to a running
// exporter's pid, and waits until the exporter serves the changed config file.
func TestSystemdReloadReloads(t *testing.T) {
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	reload := parseUnit(t, string(text))["Service"]["ExecReload"]
	if len(reload) != 1 {
		t.Fatalf("want one ExecReload, got %q", reload)
	}
	binary := exporterBinary(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfgPath := filepath.Join(dir, "config.yml")
	const base = "region: cn-north-4\nproject_id: 0123456789abcdef0123456789abcdef\nendpoint: http://127.0.0.1:9\n" +
		"credentials: {access_key: UNITTESTAK0000000000, secret_key: unit-test-secret}\n"
	if err := os.WriteFile(cfgPath, []byte(base+"tasks: [before-reload]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	p := start(t, ctx, dir, binary, "--config.file="+cfgPath, "--web.listen-address="+addr)
	if err := waitHTTP(ctx, p, "http://"+addr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(base+"tasks: [after-reload]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	line := strings.ReplaceAll(reload[0], "$MAINPID", strconv.Itoa(p.cmd.Process.Pid))
	args := strings.Fields(line)
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %s: %v\n%s", line, err, out)
	}
	if err := poll(ctx, 100*time.Millisecond, func() error {
		resp, err := http.Get("http://" + addr + "/config")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "after-reload") {
			return fmt.Errorf("/config does not show the changed file yet:\n%s", body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
