package main

// One log style: every line of a start-up, the exporter-toolkit's included, has the keys
// level, ts, caller and msg first and in that order, in logfmt and in JSON.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logfmt/logfmt"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
)

// startUpLog runs the exporter until it serves, stops it, and returns what it logged.
func startUpLog(t *testing.T, format string) string {
	t.Helper()
	cfg := writeFile(t, t.TempDir(), "c.yml", "region: cn-north-4\nproject_id: p1\nendpoint: http://127.0.0.1:1\ntasks: [t1]\n")
	addr := testkit.FreeAddr(t)
	var stderr testkit.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config.file=" + cfg, "--web.listen-address=" + addr, "--log.format=" + format, "--log.level=debug"},
			io.Discard, &stderr, testEnv)
	}()
	// The toolkit logs "Listening on" before it accepts: once a connection is accepted, the
	// start-up lines are written.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the exporter did not listen: %v\n%s", err, stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling a port, not guessing a duration
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	return stderr.String()
}

var (
	wantFirstKeys = []string{"level", "ts", "caller", "msg"}
	callerRE      = regexp.MustCompile(`^[\w.-]+\.go:\d+$`)
)

// checkLine holds the keys and values of one line to the style. In logfmt the four keys come
// first and in order; a JSON object has no order (go-kit sorts its keys), only the keys.
func checkLine(t *testing.T, format, line string, keys, values []string) {
	t.Helper()
	got := map[string]string{}
	for i, k := range keys {
		if _, dup := got[k]; dup {
			t.Errorf("%s line %q: key %q twice", format, line, k)
		}
		got[k] = values[i]
		if k == "time" || k == "source" {
			t.Errorf("%s line %q: key %q is another style's", format, line, k)
		}
	}
	if format == "logfmt" && (len(keys) < len(wantFirstKeys) || !slices.Equal(keys[:len(wantFirstKeys)], wantFirstKeys)) {
		t.Errorf("%s line %q: keys %q, want %q first", format, line, keys, wantFirstKeys)
	}
	for _, k := range wantFirstKeys {
		if _, ok := got[k]; !ok {
			t.Errorf("%s line %q: no key %q", format, line, k)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, got["level"]) {
		t.Errorf("%s line %q: level %q", format, line, got["level"])
	}
	if ts, err := time.Parse(time.RFC3339Nano, got["ts"]); err != nil || !strings.HasSuffix(got["ts"], "Z") || time.Since(ts) > time.Hour {
		t.Errorf("%s line %q: ts %q is not a recent UTC RFC 3339 time (%v)", format, line, got["ts"], err)
	}
	if !callerRE.MatchString(got["caller"]) {
		t.Errorf("%s line %q: caller %q is not file.go:line", format, line, got["caller"])
	}
}

func TestOneLogStyle(t *testing.T) {
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			text := startUpLog(t, format)
			var msgs []string
			for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
				var keys, values []string
				switch format {
				case "logfmt":
					d := logfmt.NewDecoder(strings.NewReader(line))
					for d.ScanRecord() {
						for d.ScanKeyval() {
							keys, values = append(keys, string(d.Key())), append(values, string(d.Value()))
						}
					}
					if err := d.Err(); err != nil {
						t.Errorf("line %q is not logfmt: %v", line, err)
					}
				case "json":
					keys, values = jsonKeys(t, line)
				}
				if i := slices.Index(keys, "msg"); i >= 0 {
					msgs = append(msgs, values[i])
				}
				checkLine(t, format, line, keys, values)
			}
			// The exporter's lines and the toolkit's.
			for _, want := range []string{"Starting metastudio_exporter", "Listening on", "Shutting down"} {
				if !slices.Contains(msgs, want) {
					t.Errorf("no line with msg %q in:\n%s", want, text)
				}
			}
		})
	}
}

// jsonKeys returns a JSON object's keys in their order, with their values as text.
func jsonKeys(t *testing.T, line string) (keys, values []string) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Errorf("line %q is not a JSON object", line)
		return nil, nil
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Errorf("line %q: %v", line, err)
			return nil, nil
		}
		var v any
		if err := d.Decode(&v); err != nil {
			t.Errorf("line %q: %v", line, err)
			return nil, nil
		}
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		keys, values = append(keys, k.(string)), append(values, s)
	}
	return keys, values
}
