package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// projectKeys are the keys of a --project value, in the order the help names them.
var projectKeys = []string{"name", "id", "ak", "sk", "region", "tasks", "spread", "running", "seed"}

// projectDefaults are what a --project value's optional keys default to: the flags of the
// default project.
type projectDefaults struct {
	region  string
	tasks   int
	spread  time.Duration
	running int
}

// parseProjects reads --project values, "name=N,id=ID,ak=AK,sk=SK[,region=R][,tasks=N]
// [,spread=D][,running=N][,seed=N]" (a value ends at the next comma; sk may hold "=").
// name, id, ak and sk are required; the others default to d. An error names the value by
// its place (#1) or its name, and the key, never quoting the sk.
func parseProjects(values []string, d projectDefaults) ([]simulator.Project, error) {
	var out []simulator.Project
	for i, v := range values {
		p, err := parseProject(v, d)
		if err != nil {
			who := fmt.Sprintf("#%d", i+1)
			if p.Name != "" {
				who = strconv.Quote(p.Name)
			}
			return nil, fmt.Errorf("--project %s: %w", who, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseProject reads one --project value; p.Name is set as soon as it is read, for the
// error's sake.
func parseProject(v string, d projectDefaults) (p simulator.Project, err error) {
	p = simulator.Project{Region: d.region, Tasks: d.tasks, Spread: d.spread, Running: d.running}
	kv := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		key, value, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		switch {
		case !ok:
			return p, fmt.Errorf("want key=value pairs separated by commas (keys: %s)", strings.Join(projectKeys, ", "))
		case !slices.Contains(projectKeys, key):
			return p, fmt.Errorf("unknown key %q (valid: %s)", key, strings.Join(projectKeys, ", "))
		case kv[key] != "":
			return p, fmt.Errorf("%s is given twice", key)
		case value == "":
			return p, fmt.Errorf("%s must not be empty", key)
		}
		kv[key] = value
		if key == "name" {
			p.Name = value
		}
	}
	for _, key := range []string{"name", "id", "ak", "sk"} {
		if kv[key] == "" {
			return p, fmt.Errorf("%s is missing (name, id, ak and sk are required)", key)
		}
	}
	p.ID = kv["id"]
	p.Credentials = map[string]string{kv["ak"]: kv["sk"]}
	if r := kv["region"]; r != "" {
		p.Region = r
	}
	for _, n := range []struct {
		key string
		dst *int
	}{{"tasks", &p.Tasks}, {"running", &p.Running}} {
		if s := kv[n.key]; s != "" {
			if *n.dst, err = strconv.Atoi(s); err != nil {
				return p, fmt.Errorf("%s must be a whole number, not %q", n.key, s)
			}
		}
	}
	if s := kv["seed"]; s != "" {
		if p.Seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			return p, fmt.Errorf("seed must be a whole number, not %q", s)
		}
	}
	if s := kv["spread"]; s != "" {
		if p.Spread, err = time.ParseDuration(s); err != nil {
			return p, fmt.Errorf("spread must be a duration such as 1h, not %q", s)
		}
	}
	switch {
	case p.Tasks < 0 || p.Tasks > maxTasks:
		return p, fmt.Errorf("tasks must be between 0 and %d, not %d", maxTasks, p.Tasks)
	case p.Spread < 0:
		return p, fmt.Errorf("spread must not be negative, not %s", p.Spread)
	case p.Running < 0 || p.Running > p.Tasks:
		return p, fmt.Errorf("running must be between 0 and tasks (%d), not %d", p.Tasks, p.Running)
	case p.Running > 0 && p.Spread == 0:
		return p, fmt.Errorf("running needs spread")
	}
	return p, nil
}

// parseListeners reads --listen values, "REGION=ADDRESS", into a region's address, in
// order. Each region must be one of regions (those of the projects), and listed once.
func parseListeners(values []string, regions []string) (order []string, addrs map[string]string, err error) {
	addrs = map[string]string{}
	for i, v := range values {
		region, addr, ok := strings.Cut(v, "=")
		switch {
		case !ok || region == "" || addr == "":
			return nil, nil, fmt.Errorf("--listen #%d: want REGION=ADDRESS, not %q", i+1, v)
		case addrs[region] != "":
			return nil, nil, fmt.Errorf("--listen %s: the region is given twice", region)
		case !slices.Contains(regions, region):
			return nil, nil, fmt.Errorf("--listen %s: no project is in that region (regions: %s)", region, strings.Join(regions, ", "))
		}
		addrs[region] = addr
		order = append(order, region)
	}
	return order, addrs, nil
}
