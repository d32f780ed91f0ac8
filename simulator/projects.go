package simulator

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Several projects. The Options of a Server describe one project, named DefaultProject:
// ProjectID, Credentials, Tasks, Spread and Running, in Region. Options.MoreProjects adds
// others, each with its own id, region, AK/SK and seeded tasks, as a company with a project
// per team or per region has. A MetaStudio request is routed by the project id of its path:
// its tasks are that project's alone, and its AK must be one of that project's (the
// default project's are Options.Credentials). Temporary keys of the metadata service and
// Options.Tokens are good for every project; a token IAM issued is scoped to one project.
// The signature check, the X-Sdk-Date window and the AK lock are per AK whatever the
// project, as the gateway checks them before it looks at the project.
//
// Region: ServeHTTP answers for every project, whatever its region (one test server for
// all); RegionHandler answers only for the projects of one region, as
// https://metastudio.{region}.myhuaweicloud.com does, so a process can listen once per
// region. IAM is global: every handler lists every region's projects.

// DefaultProject names the project of Options.ProjectID in GatewayStats.Projects and
// ProjectRequests.
const DefaultProject = "default"

// Answers of Options.WrongProject, for a correctly signed call whose AK is not one of the
// path's project. Huawei documents no answer for it: the gateway scopes an AK/SK call
// to X-Project-Id through IAM before MetaStudio sees it, which reads as IAM's refusal, but
// MetaStudio's own error page lists 403 MSS.000000004 for a failed authentication.
const (
	// WrongProjectGateway answers 401 APIGW.0301 "Incorrect IAM authentication
	// information: ..." (the default).
	WrongProjectGateway = "gateway"
	// WrongProjectMetaStudio answers 403 MSS.000000004 "Authentication failed.".
	WrongProjectMetaStudio = "metastudio"
)

// Project is a project served besides the default one (Options.MoreProjects).
type Project struct {
	// Name names it in GatewayStats.Projects and ProjectRequests; unique, not DefaultProject.
	Name string
	// ID is the project id of its paths; unique, not Options.ProjectID.
	ID string
	// Region is where it lives (default Options.Region): IAM lists it there, and
	// RegionHandler(Region) serves it.
	Region string
	// Credentials maps each AK that may call this project to its SK. An AK may serve
	// several projects (the default one's included) with the same SK, never with another.
	Credentials map[string]string
	// Tasks is the number of its seeded tasks, with ids ProjectTaskID(k, 0) ..
	// ProjectTaskID(k, Tasks-1), k being its place in MoreProjects counted from 1.
	Tasks int
	// Seed seeds its tasks' contents (0: Options.Seed + k).
	Seed int64
	// Spread and Running lay its tasks out as Options.Spread and Options.Running do.
	Spread  time.Duration
	Running int
}

// ProjectTaskID is the id of the i-th seeded task (from 0) of the k-th project (0 for the
// default project, k for MoreProjects[k-1]): 8 hex digits of k, then 24 of i+1, so
// ProjectTaskID(0, i) is TaskID(i) and no two projects share a seeded id.
func ProjectTaskID(k, i int) string {
	return fmt.Sprintf("%08x%024x", k, i+1)
}

// CheckProjects returns why o's projects cannot be served together, or nil: a project
// without name or id, a name or id used twice (the default project's included), or an AK
// given two different SKs. New panics on such Options.
func CheckProjects(o Options) error {
	names := map[string]bool{DefaultProject: true}
	ids := map[string]bool{}
	if o.ProjectID != "" {
		ids[o.ProjectID] = true
	}
	sks := map[string]string{}
	for ak, sk := range o.Credentials {
		sks[ak] = sk
	}
	for i, p := range o.MoreProjects {
		switch {
		case p.Name == "" || p.ID == "":
			return fmt.Errorf("project #%d: name and id must not be empty", i+1)
		case names[p.Name]:
			return fmt.Errorf("project %q: the name is used twice", p.Name)
		case ids[p.ID]:
			return fmt.Errorf("project %q: id %s is used twice", p.Name, p.ID)
		case p.Tasks < 0 || p.Running < 0 || p.Running > p.Tasks || p.Spread < 0:
			return fmt.Errorf("project %q: tasks, running and spread must not be negative, nor running above tasks", p.Name)
		}
		names[p.Name], ids[p.ID] = true, true
		for ak, sk := range p.Credentials {
			if prev, ok := sks[ak]; ok && prev != sk {
				return fmt.Errorf("project %q: AK %s is given two different SKs", p.Name, ak)
			}
			sks[ak] = sk
		}
	}
	return nil
}

// project is one served project: its identity, who may call it, and its tasks.
type project struct {
	name, id, region string
	aks              map[string]bool // nil for the default project: Options.Credentials
	ids              []string        // seeded ids, in order
	counts           map[string]*atomic.Int64

	// Guarded by Server.mu.
	order  []string             // ids in server order: seeded, then added with SetTask
	seeded map[string]*seedTask // not yet replaced by SetTask
	fixed  map[string]fixedTask // set with SetTask
}

// newProject seeds a project's tasks: the k-th project (0 the default), tasks of it laid out
// as spread and running say.
func newProject(name, id, region string, k, tasks int, seed int64, spread time.Duration, running int,
	start time.Time, style string) *project {
	p := &project{
		name: name, id: id, region: region,
		counts: map[string]*atomic.Int64{OpShowTask: new(atomic.Int64), OpSearchTask: new(atomic.Int64)},
		seeded: make(map[string]*seedTask, tasks),
		fixed:  make(map[string]fixedTask),
	}
	for i := 0; i < tasks; i++ {
		var place *placement
		if spread > 0 {
			place = &placement{
				ago:     time.Duration(float64(spread) * (float64(i) + 0.5) / float64(tasks)),
				running: i < running,
			}
		}
		t := newSeedTask(i, seed, start, style, place)
		t.id = ProjectTaskID(k, i)
		p.seeded[t.id] = t
		p.order = append(p.order, t.id)
		p.ids = append(p.ids, t.id)
	}
	return p
}

// addProjects builds the default project and those of opts.MoreProjects, and lists each
// extra project's AKs and region for authentication and IAM.
func (s *Server) addProjects(opts Options) {
	s.def = newProject(DefaultProject, opts.ProjectID, opts.Region, 0, opts.Tasks, opts.Seed,
		opts.Spread, opts.Running, s.start, opts.FieldStyle)
	s.byName = map[string]*project{DefaultProject: s.def}
	s.byID = map[string]*project{}
	if opts.ProjectID != "" {
		s.byID[opts.ProjectID] = s.def
	}
	for i, o := range opts.MoreProjects {
		k := i + 1
		region, seed := o.Region, o.Seed
		if region == "" {
			region = opts.Region
		}
		if seed == 0 {
			seed = opts.Seed + int64(k)
		}
		p := newProject(o.Name, o.ID, region, k, o.Tasks, seed, o.Spread, o.Running, s.start, opts.FieldStyle)
		p.aks = make(map[string]bool, len(o.Credentials))
		for ak, sk := range o.Credentials {
			p.aks[ak] = true
			s.creds[ak] = sk
		}
		s.byName[p.name] = p
		s.byID[p.id] = p
		if opts.Projects == nil && !slices.Contains(s.projects[region], p.id) {
			s.projects[region] = append(s.projects[region], p.id)
		}
	}
}

// projectFor is the project a path's project id names, as the handler of region ("" for
// every region) serves it; nil when it serves none of that id.
func (s *Server) projectFor(id, region string) *project {
	p := s.byID[id]
	if p == nil && s.opts.ProjectID == "" {
		p = s.def // the default project answers for any id no other project has
	}
	if p == nil || (region != "" && p.region != region) {
		return nil
	}
	return p
}

// mayUse says whether ak may call p: one of p's AKs (the default project's are
// Options.Credentials), or a temporary key of the metadata service. s.mu is held.
func (s *Server) mayUse(ak string, p *project) bool {
	if _, temp := s.temp[ak]; temp {
		return true
	}
	if p.aks == nil {
		_, ok := s.opts.Credentials[ak]
		return ok
	}
	return p.aks[ak]
}

// TaskIDs returns the seeded task ids of the default project, in order (TaskID(0),
// TaskID(1), ...).
func (s *Server) TaskIDs() []string {
	return slices.Clone(s.def.ids)
}

// ProjectTaskIDs returns the seeded task ids of the project named name (DefaultProject or
// a Project.Name), in order; nil for an unknown name.
func (s *Server) ProjectTaskIDs(name string) []string {
	if p := s.byName[name]; p != nil {
		return slices.Clone(p.ids)
	}
	return nil
}

// ProjectRequests returns how many ShowTask or SearchTask (op) requests were routed to the
// project named name, whatever their answer, counted once the path named it (an
// unauthenticated or throttled request too).
func (s *Server) ProjectRequests(name, op string) int64 {
	if p := s.byName[name]; p != nil {
		if c := p.counts[op]; c != nil {
			return c.Load()
		}
	}
	return 0
}

// SetTask fixes a task of the default project: ShowTask of id answers exactly these JSON
// fields (values marshalled as given, nil for null; a missing key is absent), and
// SearchTask lists it, in the place of the seeded task with that id or after all earlier
// tasks. SearchTask filters it by its "resource" (a string) and "begin_time" (a number or
// digit string). A value that cannot be marshalled makes the answer a 500 MSS.000000002.
func (s *Server) SetTask(id string, fields map[string]any) {
	s.SetProjectTask(DefaultProject, id, fields)
}

// SetProjectTask is SetTask for the project named name; it does nothing for an unknown name.
func (s *Server) SetProjectTask(name, id string, fields map[string]any) {
	p := s.byName[name]
	if p == nil {
		return
	}
	f := make(fixedTask, len(fields))
	for k, v := range fields {
		f[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := p.seeded[id]; !ok {
		if _, ok := p.fixed[id]; !ok {
			p.order = append(p.order, id)
		}
	}
	delete(p.seeded, id)
	p.fixed[id] = f
}
