//go:build linux

package soak

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// resources is one reading of the exporter's /proc entries.
type resources struct {
	rss, threads float64
	fds          int
}

func readResources(pid int) (resources, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return resources{}, err
	}
	st, err := procStatus(string(data), "VmRSS", "Threads")
	if err != nil {
		return resources{}, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return resources{}, err
	}
	return resources{rss: st["VmRSS"], threads: st["Threads"], fds: len(fds)}, nil
}

// logSummary counts the exporter's log lines by level (logfmt level=...), the lines that
// mention a panic, and the warnings and errors by message and error_code (or err).
type logSummary struct {
	levels map[string]int
	panics int
	warns  map[string]int // "level  msg (error_code)", warn and error lines
}

func summarizeLog(path string) (logSummary, error) {
	s := logSummary{levels: map[string]int{}, warns: map[string]int{}}
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		lvl := logValue(line, "level")
		if lvl == "" {
			lvl = "other"
		}
		s.levels[lvl]++
		if strings.Contains(line, "panic") {
			s.panics++
		}
		if lvl == "warn" || lvl == "error" {
			key := lvl + "  " + logValue(line, "msg")
			if code := logValue(line, "error_code"); code != "" {
				key += " (" + code + ")"
			} else if err := logValue(line, "err"); err != "" {
				key += " (err=" + err[:min(len(err), 60)] + ")"
			}
			s.warns[key]++
		}
	}
	return s, nil
}

// logValue is the value of key in a logfmt line (quoted or not), or "".
func logValue(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		if !strings.HasPrefix(line, key+"=") {
			return ""
		}
		i = -1
	}
	rest := line[i+len(key)+2:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			u, _ := strconv.Unquote(v)
			return u
		}
		return ""
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// loadAverage is the machine's one-minute load average, to say how busy it was.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
