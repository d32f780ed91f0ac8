package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// Project is one MetaStudio project of one region: where its API is, how its calls are
// authenticated and which of its tasks are exported. One exporter serves several; each
// keeps its own credentials, so a refused key in one holds up no other.
type Project struct {
	// Name is the project label of the series the project gives: required and unique, 1
	// to 32 of a-z 0-9 - _. The top-level shorthand's project is named "default".
	Name        string            `yaml:"name"`
	Region      string            `yaml:"region"`
	ProjectID   string            `yaml:"project_id"`
	Endpoint    string            `yaml:"endpoint"`
	IAMEndpoint string            `yaml:"iam_endpoint"`
	Credentials Credentials       `yaml:"credentials"`
	Tasks       []string          `yaml:"tasks"`
	StatusNames map[string]string `yaml:"status_names"`
	Discovery   Discovery         `yaml:"discovery"`
	// AllowInsecureEndpoint permits a plain http:// endpoint or iam_endpoint that is not
	// loopback: credentials and signatures would cross the network in clear text.
	AllowInsecureEndpoint bool `yaml:"allow_insecure_endpoint"`
}

// DefaultProjectName is the name of the one project that the top-level keys describe.
const DefaultProjectName = "default"

var namePattern = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// ValidProjectName reports whether name can name a project: 1 to 32 of a-z 0-9 - _ (it
// becomes a label value and a /probe parameter).
func ValidProjectName(name string) bool { return namePattern.MatchString(name) }

// setDefaults gives a project the defaults of its sections before it is decoded.
func (p *Project) setDefaults() {
	*p = Project{
		Credentials: Credentials{FailureBackoff: DefaultFailureBackoff},
		Discovery:   Discovery{Lookback: DefaultLookback, RefreshInterval: DefaultRefreshInterval, MaxTasks: DefaultMaxTasks},
	}
}

// IAMEndpointURL returns the IAM endpoint: iam_endpoint, or the region's.
func (p *Project) IAMEndpointURL() string {
	if p.IAMEndpoint != "" {
		return strings.TrimSuffix(p.IAMEndpoint, "/")
	}
	return "https://iam." + p.Region + ".myhuaweicloud.com"
}

// MetaStudioEndpoint returns the MetaStudio endpoint: the override, or the region's public one.
func (p *Project) MetaStudioEndpoint() string {
	if p.Endpoint != "" {
		return strings.TrimSuffix(p.Endpoint, "/")
	}
	return "https://metastudio." + p.Region + ".myhuaweicloud.com"
}

// Shorthand reports whether the config wrote its one project with the top-level keys.
func (c *Config) Shorthand() bool { return c.shorthandForm }

// Project returns the project of that name, or nil.
func (c *Config) Project(name string) *Project {
	for i := range c.Projects {
		if c.Projects[i].Name == name {
			return &c.Projects[i]
		}
	}
	return nil
}

// shorthand returns the project that the top-level keys describe.
func (c *Config) shorthand() Project {
	return Project{
		Name: DefaultProjectName, Region: c.Region, ProjectID: c.ProjectID, Endpoint: c.Endpoint,
		IAMEndpoint: c.IAMEndpoint, Credentials: c.Credentials, Tasks: c.Tasks, StatusNames: c.StatusNames,
		Discovery: c.Discovery, AllowInsecureEndpoint: c.AllowInsecureEndpoint,
	}
}

// mirror copies p into the top-level keys, for the code that knows one project only.
func (c *Config) mirror(p Project) {
	c.Region, c.ProjectID, c.Endpoint, c.IAMEndpoint = p.Region, p.ProjectID, p.Endpoint, p.IAMEndpoint
	c.Credentials, c.Tasks, c.StatusNames = p.Credentials, p.Tasks, p.StatusNames
	c.Discovery, c.AllowInsecureEndpoint = p.Discovery, p.AllowInsecureEndpoint
}

// projectKeys are the keys of a project, name aside: at the top level, the shorthand.
var projectKeys = func() []string {
	var keys []string
	t := reflect.TypeFor[Project]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "name" {
			keys = append(keys, name)
		}
	}
	return keys
}()

// gatherProjects fills c.Projects: the projects list as written, or the one project of
// the top-level keys. Both forms together, and an empty list, are errors.
func (c *Config) gatherProjects() error {
	listLine, listed := c.lines["projects"]
	if !listed {
		c.Projects = []Project{c.shorthand()}
		c.shorthandForm = true
		return nil
	}
	first, firstLine := "", 0
	for _, k := range projectKeys {
		if line, ok := c.lines[k]; ok && (first == "" || line < firstLine) {
			first, firstLine = k, line
		}
	}
	if first != "" {
		return fmt.Errorf("line %d: %s: projects (line %d) and the top-level key %s cannot be used together: move %s into a project",
			firstLine, first, listLine, first, first)
	}
	if len(c.Projects) == 0 {
		return fmt.Errorf("line %d: projects: empty: list at least one project, or write the keys of one project at the top level", listLine)
	}
	return nil
}

// validateProjects checks every project, and names.
func (c *Config) validateProjects(getenv Getenv) ([]string, error) {
	var warnings []string
	first := map[string]int{}
	for i := range c.Projects {
		p := &c.Projects[i]
		at := c.projectAt(i)
		if !c.shorthandForm {
			at := at("name")
			switch j, dup := first[p.Name]; {
			case p.Name == "":
				return nil, fmt.Errorf("%s: required (1 to 32 of a-z 0-9 - _)", at)
			case !ValidProjectName(p.Name):
				return nil, fmt.Errorf("%s: %q is not a project name (want 1 to 32 of a-z 0-9 - _)", at, p.Name)
			case dup:
				return nil, fmt.Errorf("%s: duplicate project name %q (also projects[%d])", at, p.Name, j)
			}
			first[p.Name] = i
		}
		w, err := p.validate(getenv, at)
		if err != nil {
			return nil, err
		}
		for _, s := range w {
			if !c.shorthandForm {
				s = "project " + p.Name + ": " + s
			}
			warnings = append(warnings, s)
		}
	}
	return warnings, nil
}

// validate checks one project and fills in what its credentials take from the
// environment. at gives a key of the project with its full path and line, for errors.
func (p *Project) validate(getenv Getenv, at func(string) string) ([]string, error) {
	var warnings []string
	switch {
	case p.Region == "":
		return nil, fmt.Errorf("%s: required (for example cn-north-4)", at("region"))
	case !regionPattern.MatchString(p.Region):
		return nil, fmt.Errorf("%s: %q is not a region name (for example cn-north-4)", at("region"), p.Region)
	}
	known := false
	for _, r := range KnownRegions {
		known = known || r == p.Region
	}
	if !known {
		warnings = append(warnings, fmt.Sprintf("region %q is not one where MetaStudio is documented (%s); using it anyway",
			p.Region, strings.Join(KnownRegions, ", ")))
	}
	switch {
	case p.ProjectID == "":
		// Resolved at start-up through IAM, except with a bare token (checked below).
	case !idPattern.MatchString(p.ProjectID):
		return nil, fmt.Errorf("%s: %q is not a project id (want 1 to 64 of A-Z a-z 0-9 - _)", at("project_id"), p.ProjectID)
	}
	for _, e := range []struct{ key, value string }{{"endpoint", p.Endpoint}, {"iam_endpoint", p.IAMEndpoint}} {
		if err := checkEndpoint(at(e.key), e.value); err != nil {
			return nil, err
		}
		if !insecure(e.value) {
			continue
		}
		if !p.AllowInsecureEndpoint {
			return nil, fmt.Errorf("%s: %q is plain http to a host that is not loopback: use https, or set allow_insecure_endpoint: true", at(e.key), e.value)
		}
		warnings = append(warnings, fmt.Sprintf("%s %s is plain http: tokens and signed requests cross the network in clear text", e.key, e.value))
	}
	if len(p.Tasks) == 0 && !p.Discovery.Enabled {
		return nil, fmt.Errorf("%s: empty: list at least one task id, or enable discovery", at("tasks"))
	}
	first := map[string]int{}
	for i, id := range p.Tasks {
		if !idPattern.MatchString(id) {
			return nil, fmt.Errorf("%s: %q is not a task id (want 1 to 64 of A-Z a-z 0-9 - _)", at(fmt.Sprintf("tasks[%d]", i)), id)
		}
		if j, dup := first[id]; dup {
			return nil, fmt.Errorf("%s: duplicate task id %q (also tasks[%d])", at(fmt.Sprintf("tasks[%d]", i)), id, j)
		}
		first[id] = i
	}
	if err := p.Discovery.validate(at); err != nil {
		return nil, err
	}
	credWarnings, err := p.Credentials.validate(getenv, at)
	if err != nil {
		return nil, err
	}
	if p.ProjectID == "" && p.Credentials.TokenFile != "" {
		return nil, errors.New(at("project_id") + `: required with token_file (the project id of the region, from "My Credentials" in the console)`)
	}
	if m := p.Credentials.ECSMetadata; m != nil {
		if m.Endpoint == "" {
			m.Endpoint = DefaultMetadataEndpoint
		}
		if err := checkEndpoint(at("credentials.ecs_metadata.endpoint"), m.Endpoint); err != nil {
			return nil, err
		}
	}
	return append(warnings, credWarnings...), nil
}
