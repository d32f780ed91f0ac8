package e2e

// A small implementation of Prometheus' target relabelling (the actions the examples use),
// so that tests can derive the labels each deployment mode gives the series from the
// example files themselves. It follows Prometheus' documented semantics: the regex is
// anchored, the default regex is (.*), the replacement $1, the separator ";"; hashmod is
// the MD5 of the joined values, its last 8 bytes as a big-endian number, modulo the
// modulus. After relabelling, instance defaults to __address__ and labels starting with
// "__" are dropped.

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"
)

// relabelRule is one relabel_configs entry (ServiceMonitor relabelings convert to it).
type relabelRule struct {
	SourceLabels []string `yaml:"source_labels"`
	Separator    *string  `yaml:"separator"`
	Regex        *string  `yaml:"regex"`
	Modulus      uint64   `yaml:"modulus"`
	TargetLabel  string   `yaml:"target_label"`
	Replacement  *string  `yaml:"replacement"`
	Action       string   `yaml:"action"`
}

// relabel applies rules to a copy of labels; it returns nil when a rule drops the target.
func relabel(labels map[string]string, rules []relabelRule) (map[string]string, error) {
	out := maps.Clone(labels)
	for i, r := range rules {
		sep, expr, repl := ";", "(.*)", "$1"
		if r.Separator != nil {
			sep = *r.Separator
		}
		if r.Regex != nil {
			expr = *r.Regex
		}
		if r.Replacement != nil {
			repl = *r.Replacement
		}
		re, err := regexp.Compile("^(?s:" + expr + ")$")
		if err != nil {
			return nil, fmt.Errorf("rule %d: %v", i, err)
		}
		values := make([]string, len(r.SourceLabels))
		for j, l := range r.SourceLabels {
			values[j] = out[l]
		}
		val := strings.Join(values, sep)
		switch action := r.Action; action {
		case "", "replace":
			m := re.FindStringSubmatchIndex(val)
			if m == nil {
				continue
			}
			target := string(re.ExpandString(nil, r.TargetLabel, val, m))
			res := string(re.ExpandString(nil, repl, val, m))
			if res == "" {
				delete(out, target)
			} else {
				out[target] = res
			}
		case "keep":
			if !re.MatchString(val) {
				return nil, nil
			}
		case "drop":
			if re.MatchString(val) {
				return nil, nil
			}
		case "hashmod":
			if r.Modulus == 0 {
				return nil, fmt.Errorf("rule %d: hashmod without a modulus", i)
			}
			sum := md5.Sum([]byte(val))
			out[r.TargetLabel] = fmt.Sprint(binary.BigEndian.Uint64(sum[8:]) % r.Modulus)
		case "labeldrop":
			for k := range out {
				if re.MatchString(k) {
					delete(out, k)
				}
			}
		case "labelkeep":
			for k := range out {
				if !re.MatchString(k) {
					delete(out, k)
				}
			}
		default:
			return nil, fmt.Errorf("rule %d: action %q is not implemented by this test", i, action)
		}
	}
	return out, nil
}

// targetLabels is what Prometheus keeps of a target after relabelling: instance defaults
// to __address__, and the labels that start with "__" go.
func targetLabels(labels map[string]string) map[string]string {
	if labels == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range labels {
		if !strings.HasPrefix(k, "__") && v != "" {
			out[k] = v
		}
	}
	if _, ok := out["instance"]; !ok {
		out["instance"] = labels["__address__"]
	}
	return out
}

func ptr(s string) *string { return &s }

func TestRelabel(t *testing.T) {
	rules := []relabelRule{
		{SourceLabels: []string{"__address__"}, TargetLabel: "__param_task"},
		{SourceLabels: []string{"__param_task"}, Modulus: 2, TargetLabel: "__tmp_hash", Action: "hashmod"},
		{SourceLabels: []string{"a", "b"}, Regex: ptr("x;(.*)"), TargetLabel: "ab", Replacement: ptr("got-$1")},
		{TargetLabel: "__address__", Replacement: ptr("exporter:1")},
		{Regex: ptr("dropme"), Action: "labeldrop"},
	}
	got, err := relabel(map[string]string{"__address__": "t1", "a": "x", "b": "y", "dropme": "1"}, rules)
	if err != nil {
		t.Fatal(err)
	}
	// The hash, computed a second way: the last 8 bytes of the MD5, shifted in one by one.
	sum := md5.Sum([]byte("t1"))
	var low uint64
	for _, b := range sum[8:] {
		low = low<<8 | uint64(b)
	}
	want := map[string]string{"__address__": "exporter:1", "__param_task": "t1", "__tmp_hash": fmt.Sprint(low % 2), "a": "x", "b": "y", "ab": "got-y"}
	if !maps.Equal(got, want) {
		t.Errorf("relabel = %v, want %v", got, want)
	}
	if got, _ := relabel(map[string]string{"x": "1"}, []relabelRule{{SourceLabels: []string{"x"}, Regex: ptr("0"), Action: "keep"}}); got != nil {
		t.Errorf("keep of a non-matching value kept %v", got)
	}
	if tl := targetLabels(map[string]string{"__address__": "h:1", "job": "j"}); !maps.Equal(tl, map[string]string{"instance": "h:1", "job": "j"}) {
		t.Errorf("targetLabels = %v", tl)
	}
}
