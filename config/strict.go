package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// decodeStrict decodes n into v (a pointer) field by field, following the yaml struct tags.
// yaml.v3 loses KnownFields as soon as a type has a custom unmarshaler, so this walker
// owns strictness instead: every unknown or repeated key, and every value of the wrong
// type, is an error that names the key's full path and its line.
// It records the line of every key and list item in lines, for validation errors.
func decodeStrict(n *yaml.Node, v any, lines map[string]int) error {
	d := decoder{lines: lines}
	return d.value(n, reflect.ValueOf(v).Elem(), "")
}

type decoder struct {
	lines map[string]int
}

// A defaulter is a list item with defaults (a project): they are set before the item is
// decoded, as a section's are before the file is.
type defaulter interface{ setDefaults() }

var durationType = reflect.TypeFor[time.Duration]()

// A scalarType reads one Go type from a scalar. want is what a key of the type takes, in
// the error of a value that is no scalar; notA ends the error of a text that parse refuses.
type scalarType struct {
	want, notA string
	parse      func(s string) (any, error)
}

// durationScalar reads a time.Duration; scalarKinds read the other scalar kinds.
var durationScalar = scalarType{"a duration such as 10s", "a duration (want e.g. 10s, 1m30s)",
	func(s string) (any, error) { return time.ParseDuration(s) }}

var scalarKinds = map[reflect.Kind]scalarType{
	reflect.String:  {"a string", "", func(s string) (any, error) { return s, nil }},
	reflect.Int:     {"an integer", "an integer", func(s string) (any, error) { return strconv.Atoi(s) }},
	reflect.Float64: {"a number", "a number", parseFinite},
	reflect.Bool:    {"true or false", "true or false", func(s string) (any, error) { return strconv.ParseBool(s) }},
}

// parseFinite parses a float that is neither NaN nor infinite.
func parseFinite(s string) (any, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = fmt.Errorf("not finite")
	}
	return f, err
}

func (d decoder) value(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == durationType {
		return setScalar(n, v, path, durationScalar)
	}
	if st, ok := scalarKinds[v.Kind()]; ok {
		return setScalar(n, v, path, st)
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.structure(n, v, path)
	case reflect.Slice:
		return d.slice(n, v, path)
	case reflect.Map:
		return d.mapping(n, v, path)
	case reflect.Pointer:
		if isNull(n) {
			return errorf(n, path, "needs a value: write {} for the defaults")
		}
		elem := reflect.New(v.Type().Elem())
		if err := d.value(n, elem.Elem(), path); err != nil {
			return err
		}
		v.Set(elem)
		return nil
	}
	return errorf(n, path, "unsupported type %s", v.Type())
}

// setScalar sets v to the scalar n read as st.
func setScalar(n *yaml.Node, v reflect.Value, path string, st scalarType) error {
	s, err := scalar(n, path, st.want)
	if err != nil {
		return err
	}
	x, err := st.parse(s)
	if err != nil {
		return errorf(n, path, "%s is not %s", quote(s, path), st.notA)
	}
	v.Set(reflect.ValueOf(x).Convert(v.Type()))
	return nil
}

func (d decoder) structure(n *yaml.Node, v reflect.Value, path string) error {
	if isNull(n) {
		return nil // "section:" with nothing under it keeps the defaults
	}
	if n.Kind != yaml.MappingNode {
		return errorf(n, path, "want a mapping of keys, got %s", describe(n, path))
	}
	fields := map[string]int{}
	var names []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		keyPath := join(path, printable(key.Value))
		idx, ok := fields[key.Value]
		if !ok {
			if path != "" && secretive(path) && !keyPattern.MatchString(key.Value) {
				keyPath = join(path, "<key not shown: it may be a secret>")
			}
			return fmt.Errorf("line %d: %s: unknown key (valid: %s)", key.Line, keyPath, strings.Join(names, ", "))
		}
		if first, dup := seen[key.Value]; dup {
			return fmt.Errorf("line %d: %s: repeated key (first at line %d)", key.Line, keyPath, first)
		}
		seen[key.Value] = key.Line
		d.lines[keyPath] = key.Line
		if err := d.value(value, v.Field(idx), keyPath); err != nil {
			return err
		}
	}
	return nil
}

func (d decoder) slice(n *yaml.Node, v reflect.Value, path string) error {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return errorf(n, path, "want a list, got %s", describe(n, path))
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		itemPath := fmt.Sprintf("%s[%d]", path, i)
		d.lines[itemPath] = item.Line
		if item, ok := out.Index(i).Addr().Interface().(defaulter); ok {
			item.setDefaults()
		}
		if err := d.value(item, out.Index(i), itemPath); err != nil {
			return err
		}
	}
	v.Set(out)
	return nil
}

func (d decoder) mapping(n *yaml.Node, v reflect.Value, path string) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return errorf(n, path, "want a mapping, got %s", describe(n, path))
	}
	if v.Type().Key().Kind() != reflect.String {
		return errorf(n, path, "unsupported map key type %s", v.Type().Key())
	}
	out := reflect.MakeMap(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		k, err := scalar(key, path, "a scalar key")
		if err != nil {
			return err
		}
		keyPath := fmt.Sprintf("%s[%q]", path, k)
		if first, dup := seen[k]; dup {
			return fmt.Errorf("line %d: %s: repeated key (first at line %d)", key.Line, keyPath, first)
		}
		seen[k] = key.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		if err := d.value(value, elem, keyPath); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), elem)
	}
	v.Set(out)
	return nil
}

// scalar returns a scalar node's text; null is the empty string.
func scalar(n *yaml.Node, path, want string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errorf(n, path, "want %s, got %s", want, describe(n, path))
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	return n.Value, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node is; it shows a scalar's value, except where a secret may
// have been written (see secretive).
func describe(n *yaml.Node, path string) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if secretive(path) {
		return "a single value (not shown: it may be a secret)"
	}
	return fmt.Sprintf("%q", n.Value)
}

// quote shows a scalar in an error, unless a secret may have been written there.
func quote(s, path string) string {
	if secretive(path) {
		return "the value (not shown: it may be a secret)"
	}
	return fmt.Sprintf("%q", s)
}

// secretive reports whether a value found at path may be a secret written in the wrong
// place: anywhere under credentials (a project's too), and the whole file. Errors there
// never show it.
func secretive(path string) bool {
	if path == "" || path == "config" {
		return true
	}
	for _, part := range strings.Split(path, ".") {
		if part == "credentials" {
			return true
		}
	}
	return false
}

// keyPattern is what a mistyped key looks like; another unknown key under credentials is
// not shown, since a secret may have been written where a key belongs.
var keyPattern = regexp.MustCompile(`^[a-z][a-z_]{0,39}$`)

// printable quotes a key that holds control or other unprintable characters, so that an
// error stays on one line.
func printable(key string) string {
	if strings.IndexFunc(key, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(key)
	}
	return key
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func errorf(n *yaml.Node, path, format string, args ...any) error {
	return fmt.Errorf("line %d: %s: %s", n.Line, path, fmt.Sprintf(format, args...))
}
