// Package simulator is a local stand-in for the Huawei Cloud APIs the exporter calls:
// MetaStudio's import/export task API (ShowTask and SearchTask) behind its API gateway, IAM
// (password tokens, project lookup) and the ECS/BMS metadata service (temporary agency
// credentials). It speaks the real wire formats, verifies authentication like Huawei's API
// gateway (SDK-HMAC-SHA256 signatures, X-Auth-Token, the 15-minute date window and the
// 5-minute AK lock), seeds deterministic tasks that progress with its clock, and injects
// faults on demand. One Server plays every role, so a test points the MetaStudio endpoint,
// the IAM endpoint and the metadata endpoint at the same URL. Tests, benchmarks and
// `make demo` use it.
//
// Every answer carries an X-Request-Id header (32 random hex digits; gateway error bodies
// carry the same id in request_id), a Date header from Options.Now plus the skew of SetSkew,
// and "Server: api-gateway". A request is handled in this order:
//
//  1. With the gateway on (Options.RateLimit, QuotaPerMinute or Quota), a ShowTask request
//     is counted as being answered from here to its last byte; one that arrives while
//     another of the same task id and credentials is being answered is an overlap
//     (GatewayStats.Overlaps).
//  2. Options.Latency (ends without an answer when the client goes away).
//  3. The body is read (at most 1 MiB, else 413 APIGW.0201) so the signature can hash it.
//  4. The IAM and metadata paths (exact paths, one trailing slash tolerated) are answered as
//     the sections below say, without the gateway authentication of step 5.
//  5. With Options.RateLimit, the throttling gateway (gateway.go): a ShowTask or SearchTask
//     request over the limit is answered 429 APIGW.0308 unauthenticated (no AK lock count).
//     Then authentication, for every other path: X-Auth-Token when present (it must be in
//     Options.Tokens or issued by IAM and neither expired nor revoked, else "decrypt token
//     fail", Huawei's one answer for all three), else an SDK-HMAC-SHA256 Authorization
//     header, checked by the simulator's own canonicaliser (verify.go), written from the
//     published algorithm independently of the exporter's signer. An unknown AK, or an
//     expired temporary one, is "Get secretKey failed,ak:AK,err:ak not exist". For a
//     known AK, an X-Sdk-Date that is missing,
//     unparsable or more than 15 minutes from the server's clock, a required
//     X-Security-Token that is missing, wrong or not in SignedHeaders, and a wrong
//     signature are all "verify aksk signature fail, <reason>" and count as consecutive
//     failures of that AK; a success resets the count. The 6th consecutive failure (still
//     answered as a signature failure) locks the AK for 5 minutes of Options.Now: every
//     request with it, even correctly signed, is then "AK access failed to reach the
//     limit,forbidden.", and the count starts again from zero once the lock expires. A
//     correctly signed ShowTask or SearchTask request must also carry X-Project-Id (the
//     API reference makes it mandatory for AK/SK; not so for X-Auth-Token requests, IAM
//     and other paths): without it, it is "Unauthorized, the X-Project-Id header is
//     missing", which does not count toward the AK lock. Every failure is 401 APIGW.0301
//     with error_msg "Incorrect IAM authentication information: ...".
//  6. The quotas (gateway.go), for an authenticated ShowTask or SearchTask request: once
//     Options.Quota calls were made in all, 405 APIGW.0501 "The app quota has been used
//     up."; over Options.QuotaPerMinute calls of its credentials in this minute, 429
//     APIGW.0308 "...,limit:N,time:1 minute". Neither sends Retry-After.
//  7. Routing: only GET /v2/{project_id}/ies/task (SearchTask) and
//     GET /v2/{project_id}/ies/task/{id} (ShowTask) exist. Any other path or method, and a
//     project id that is neither Options.ProjectID nor one of Options.MoreProjects (nor
//     served by this handler's region, see RegionHandler), is 404 APIGW.0101, as the
//     gateway answers for an API it does not know. Then the caller must be allowed on that
//     project (projects.go): an AK of another project gets Options.WrongProject's answer
//     (401 APIGW.0301 by default), an IAM token scoped to another project 400 MSS.00010009.
//  8. ShowTask: a Fault set with SetFault; else the next of Options.Faults; else a random
//     fault; else the task, or 400 MSS.000000003 "Invalid parameter: task {id} does not
//     exist." for an unknown id (ShowTask documents only 200 and 400).
//     SearchTask: the next of Options.Faults; else a random fault; else the answer.
//
// # SearchTask
//
// begin_time and end_time (epoch ms) filter inclusively on a task's begin time; a task
// that has none (a waiting task) matches no such filter, and is listed when there is none.
// resource (repeated or comma-separated) filters on the resource. The answer lists the
// tasks newest first: by begin time, later first, with the tasks that have no begin time
// before all others, and ties in server order (seeded tasks by index, then tasks added
// with SetTask). count is the number that match. How offset and limit page through them
// is Options.SearchPaging: rows, pages or ignored (see PagingRows); limit defaults to 10.
//
// # Task statuses
//
// Huawei documents no task_status enum; its one example is a finished task with status 0.
// Seeded finished tasks have task_status 0 (StatusFinished); running (1) and waiting (2)
// are the simulator's own invention.
//
// # IAM
//
// POST /v3/auth/tokens (a password token; "?nocatalog=true" drops the catalog): the body
// names a user of Options.IAMUsers and a project scope, by id or by region name, from
// Options.Projects. The answer is 201 with the token in X-Subject-Token and
// {"token":{"expires_at","issued_at","methods","project","user"[,"catalog"]}}, times in
// IAM's "2006-01-02T15:04:05.000000Z" UTC format, the token expiring Options.TokenTTL after
// Now. The gateway (step 4) accepts it as X-Auth-Token until then (see ExpireTokens).
// Errors are IAM's {"error":{"code","message","title"},"error_code","error_msg"}: 400
// CodeIAMBadRequest for a body it cannot use or a scope naming no known project, 401
// CodeIAMAuth "The username or password is wrong." for any wrong user, password or domain.
// No answer echoes the password.
//
// GET /v3/projects[?name=REGION] must be AK/SK-signed, checked exactly as step 4 checks it
// (the same AK lock and date window, temporary keys included; an X-Auth-Token is not
// enough). It answers {"projects":[...],"links":{...}} from Options.Projects: the region's
// projects, none, one or several, or every region's when name is absent.
//
// # Metadata service
//
// With Options.Metadata nil, both paths answer 404 APIGW.0101. Otherwise
// PUT /meta-data/latest/api/token with X-Metadata-Token-Ttl-Seconds from 1 to 21600
// answers a plain-text session token valid that many seconds by Now (400 for a missing or
// other TTL; other methods 405). GET /openstack/latest/securitykey answers
// {"credential":{"access","secret","securitytoken","expires_at"}}, a fresh temporary
// AK/SK/security token on each call. The gateway and /v3/projects accept those keys, with
// their security token sent and signed, until expires_at by Now; afterwards they answer
// 401 APIGW.0301 "... err:ak not exist". Temporary keys count toward the AK
// lock like any other. MetadataOptions sets session-token enforcement, the PUT's status, the
// missing-agency 401 and a garbage answer. Metadata errors have plain-text bodies.
package simulator

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Operation names for Requests.
const (
	// OpShowTask counts GET requests shaped /v2/{project}/ies/task/{id}.
	OpShowTask = "ShowTask"
	// OpSearchTask counts GET requests shaped /v2/{project}/ies/task.
	OpSearchTask = "SearchTask"
	// OpIAMToken counts POST requests to IAM's /v3/auth/tokens.
	OpIAMToken = "IAMToken"
	// OpIAMProjects counts GET requests to IAM's /v3/projects.
	OpIAMProjects = "IAMProjects"
	// OpMetadataToken counts PUT requests to the metadata service's /meta-data/latest/api/token.
	OpMetadataToken = "MetadataToken"
	// OpMetadataSecurityKey counts GET requests to the metadata service's
	// /openstack/latest/securitykey.
	OpMetadataSecurityKey = "MetadataSecurityKey"
	// OpOther counts every other request.
	OpOther = "Other"
)

const (
	maxBody      = 1 << 20
	maxDateSkew  = 15 * time.Minute
	lockAfter    = 5 // consecutive failures tolerated; the next one locks the AK
	lockFor      = 5 * time.Minute
	defaultLimit = 10
	maxLimit     = 100
	defaultSlow  = 30 * time.Second
	serverName   = "api-gateway"
	headerReqID  = "X-Request-Id"
	// headerProjectID is the project header that AK/SK-signed MetaStudio calls must carry.
	headerProjectID = "X-Project-Id"
)

// Options configures a Server. The zero value serves no tasks, accepts no credentials and
// any project id.
type Options struct {
	// Credentials maps each accepted AK to its SK, for SDK-HMAC-SHA256.
	Credentials map[string]string
	// SecurityTokens maps an AK to the X-Security-Token it must send and sign (temporary
	// keys). An AK not listed here needs no token; one it sends anyway is only checked by
	// the signature, if signed.
	SecurityTokens map[string]string
	// Tokens lists the accepted X-Auth-Token values.
	Tokens []string
	// ProjectID is the only project served; empty serves any. A request for another project
	// gets the gateway's 404 APIGW.0101.
	ProjectID string
	// Tasks is the number of seeded tasks, with ids TaskID(0) .. TaskID(Tasks-1).
	Tasks int
	// Seed seeds the task generator: the same seed gives the same tasks.
	Seed int64
	// Latency is added before every answer.
	Latency time.Duration
	// ErrorRate, ThrottleRate, SlowRate and MalformedRate are the chances (0..1) that a
	// ShowTask or SearchTask request that passed authentication and has no SetFault answer
	// gets, respectively, a 500 MSS.000000002, a 429 APIGW.0308, its normal answer after
	// SlowDelay, or FaultMalformed. One draw per request from a generator seeded with Seed
	// decides, in that order; rates summing above 1 starve the later ones.
	ErrorRate, ThrottleRate, SlowRate, MalformedRate float64
	// SlowDelay is how long a slow answer waits (default 30s).
	SlowDelay time.Duration
	// FieldStyle is how seeded tasks send times, type, status and counts: "number" (JSON
	// numbers, the default and the documented example), "string" (JSON strings, the
	// documented types) or "mixed" (even task index number style, odd string style).
	FieldStyle string
	// Now is the clock (default time.Now). Task progress, the AK lock and the lifetimes of
	// issued tokens, session tokens and temporary credentials follow it; the Date header
	// and the X-Sdk-Date window follow Now plus the skew set with SetSkew.
	Now func() time.Time

	// IAMUsers are the users IAM's POST /v3/auth/tokens accepts (password method).
	IAMUsers []IAMUser
	// Projects maps a region name to the project ids that GET /v3/projects?name={region}
	// lists, in order; a password token's project scope must name one of these ids, or a
	// region with at least one id (its first is used). nil means
	// {Region: [ProjectID]} ({Region: none} when ProjectID is empty); an empty non-nil map
	// has no projects at all.
	Projects map[string][]string
	// Region is the default region name of Projects (default "cn-north-4").
	Region string
	// TokenTTL is the lifetime of the X-Auth-Tokens IAM issues, by Now (default 24h).
	TokenTTL time.Duration
	// Metadata configures the ECS/BMS metadata service; nil: its paths answer the
	// gateway's 404 APIGW.0101.
	Metadata *MetadataOptions

	// RateLimit, if positive, throttles ShowTask and SearchTask like the API gateway: a
	// token bucket refilled at RateLimit per second of Now, holding RateBurst tokens
	// (default RateLimit rounded up) and full at New. A request that finds it empty is
	// answered 429 APIGW.0308 before authentication. GatewayStats counts the calls.
	RateLimit float64
	RateBurst int
	// QuotaPerMinute, if positive, is the gateway's per-minute quota: each credential (an
	// AK, or an X-Auth-Token) may make that many authenticated ShowTask and SearchTask
	// calls in each minute of Now (a fixed minute, hh:mm:00 to hh:mm:59.999); the rest of
	// the minute is answered 429 APIGW.0308 "...policy user over ratelimit,limit:N,time:1
	// minute", with no Retry-After. GatewayStats counts the calls.
	QuotaPerMinute int
	// Quota, if positive, is the gateway's quota of calls in all: after Quota authenticated
	// ShowTask and SearchTask calls (every credential together), every such call is
	// answered 405 APIGW.0501 "The app quota has been used up.". GatewayStats counts them.
	Quota int64
	// Faults, if any, are answered by every ShowTask and SearchTask request that passed
	// authentication, the quotas and routing and has no SetFault answer, in turn (the
	// first such request gets the first fault, the next one the next, starting over after
	// the last). See NamedFault for the real cloud's answers.
	Faults []Fault
	// SearchPaging is how SearchTask reads offset and limit: PagingIgnored (the default:
	// the strictest reading of the docs, which document neither), PagingRows or
	// PagingPages; anything else is PagingIgnored.
	SearchPaging string
	// Spread, if positive, lays the seeded tasks out as a listing workload instead of the
	// mix of six kinds: task i began (i+½)·Spread/Tasks before the start instant, so task
	// 0 is the newest, SearchTask lists them in index order, and all began within Spread
	// before the start. The first Running of them run for 8 hours after the start
	// (spreadRunFor); the others finished before it. Their other contents are drawn as usual.
	Spread time.Duration
	// Running is how many of the spread tasks, the newest, are running (only with Spread;
	// at most Tasks).
	Running int
	// MoreProjects are served besides the default project (projects.go); CheckProjects
	// says what New refuses.
	MoreProjects []Project
	// WrongProject is the answer to a correctly signed MetaStudio call whose AK is not one
	// of its project's: WrongProjectGateway (the default) or WrongProjectMetaStudio.
	WrongProject string
}

// Paging modes of Options.SearchPaging. The API documents no paging parameters: the
// official SDK's request has none, one Huawei page calls offset the start page, the SDK's
// response comment a row offset, and limit defaults to 10. In every mode limit defaults
// to 10, the answer echoes the offset and limit the server used, and count is the number
// of tasks that match the filters.
const (
	// PagingRows: offset is the index of the first row (from 0), limit the rows per
	// answer, at most 100.
	PagingRows = "rows"
	// PagingPages: offset is a page index from 0, each page limit rows (at most 100).
	PagingPages = "pages"
	// PagingIgnored: offset and limit are not read at all; every answer has the first 10
	// rows and says offset 0, limit 10.
	PagingIgnored = "ignored"
)

// IAMUser is an IAM user that may obtain password tokens.
type IAMUser struct {
	Domain, User, Password string
}

// MetadataOptions configures the simulated ECS/BMS metadata service
// (PUT /meta-data/latest/api/token, GET /openstack/latest/securitykey).
type MetadataOptions struct {
	// SessionTokens: true, the PUT issues session tokens and securitykey requires a valid
	// X-Metadata-Token (even when PutStatus keeps clients from getting one); false, the
	// token path answers 404 (an older metadata service) and securitykey needs no token.
	SessionTokens bool
	// PutStatus, if non-zero, is the status every PUT of the token path answers (405, 503,
	// ...), with a plain-text body, whatever SessionTokens says.
	PutStatus int
	// NoAgency: securitykey answers 401 "Please configure Cloud Service Agency first" (no
	// agency bound to the server), after the session-token check.
	NoAgency bool
	// Garbage: securitykey answers 200 with a body that is not JSON.
	Garbage bool
	// CredentialTTL is the lifetime of issued temporary credentials, by Now (default 2h).
	CredentialTTL time.Duration
}

// Server is the simulated API; it implements http.Handler and is safe for concurrent use.
type Server struct {
	opts      Options
	now       func() time.Time
	start     time.Time
	creds     map[string]string
	secTokens map[string]string
	tokens    map[string]bool
	users     map[IAMUser]bool
	projects  map[string][]string
	gate      *gateway            // nil without Options.RateLimit, QuotaPerMinute and Quota
	faultTurn atomic.Uint64       // requests answered from Options.Faults so far
	def       *project            // the project of Options.ProjectID
	byID      map[string]*project // every project with an id, the default one's included
	byName    map[string]*project // every project

	counts      map[string]*atomic.Int64
	skew        atomic.Int64 // time.Duration added to Now for the Date header and X-Sdk-Date
	issued      atomic.Int64 // IAM tokens issued
	issuedCreds atomic.Int64 // temporary credentials issued

	mu     sync.Mutex
	rng    *rand.Rand
	faults map[string]Fault
	aks    map[string]*akState

	iamTokens map[string]issuedToken // issued X-Auth-Token -> its expiry and project
	sessions  map[string]time.Time   // metadata session token -> expiry
	temp      map[string]tempCred    // temporary AK -> its SK, security token and expiry
}

// tempCred is a temporary AK/SK issued by the metadata service.
type tempCred struct {
	secret, token string
	expires       time.Time
}

// akState is the gateway's memory of an AK's recent signature failures.
type akState struct {
	failures    int
	lockedUntil time.Time
}

// New builds a Server from opts. Its start instant, from which seeded tasks progress, is
// opts.Now() at this call.
func New(opts Options) *Server {
	if err := CheckProjects(opts); err != nil {
		panic("simulator: " + err.Error())
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.SlowDelay <= 0 {
		opts.SlowDelay = defaultSlow
	}
	if opts.Region == "" {
		opts.Region = defaultRegion
	}
	switch opts.SearchPaging {
	case PagingPages, PagingRows:
	default:
		opts.SearchPaging = PagingIgnored
	}
	opts.Faults = slices.Clone(opts.Faults)
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = defaultTokenTTL
	}
	if opts.Metadata != nil {
		m := *opts.Metadata
		if m.CredentialTTL <= 0 {
			m.CredentialTTL = defaultCredentialTTL
		}
		opts.Metadata = &m
	}
	for _, r := range []*float64{&opts.ErrorRate, &opts.ThrottleRate, &opts.SlowRate, &opts.MalformedRate} {
		if !(*r > 0) { // also NaN
			*r = 0
		}
		*r = min(*r, 1)
	}
	s := &Server{
		opts:      opts,
		now:       now,
		start:     now(),
		creds:     make(map[string]string, len(opts.Credentials)),
		secTokens: make(map[string]string, len(opts.SecurityTokens)),
		tokens:    make(map[string]bool, len(opts.Tokens)),
		counts:    make(map[string]*atomic.Int64),
		users:     make(map[IAMUser]bool, len(opts.IAMUsers)),
		projects:  make(map[string][]string),
		iamTokens: make(map[string]issuedToken),
		sessions:  make(map[string]time.Time),
		temp:      make(map[string]tempCred),
		rng:       rand.New(rand.NewPCG(uint64(opts.Seed), 0xfa017)),
		faults:    make(map[string]Fault),
		aks:       make(map[string]*akState),
	}
	s.gate = newGateway(opts, s.start)
	for ak, sk := range opts.Credentials {
		s.creds[ak] = sk
	}
	for ak, tok := range opts.SecurityTokens {
		if tok != "" {
			s.secTokens[ak] = tok
		}
	}
	for _, t := range opts.Tokens {
		if t != "" {
			s.tokens[t] = true
		}
	}
	for _, op := range []string{OpShowTask, OpSearchTask, OpIAMToken, OpIAMProjects,
		OpMetadataToken, OpMetadataSecurityKey, OpOther} {
		s.counts[op] = new(atomic.Int64)
	}
	for _, u := range opts.IAMUsers {
		if u.Domain != "" && u.User != "" && u.Password != "" {
			s.users[u] = true
		}
	}
	if opts.Projects == nil {
		s.projects[opts.Region] = nil
		if opts.ProjectID != "" {
			s.projects[opts.Region] = []string{opts.ProjectID}
		}
	}
	for region, ids := range opts.Projects {
		s.projects[region] = slices.Clone(ids)
	}
	s.addProjects(opts)
	return s
}

// SetFault sets the answer of ShowTask for id, given after authentication passed, whether
// or not the task exists. It replaces any earlier fault of id.
func (s *Server) SetFault(id string, f Fault) {
	if f.Header != nil {
		h := make(map[string]string, len(f.Header))
		for k, v := range f.Header {
			h[k] = v
		}
		f.Header = h
	}
	s.mu.Lock()
	s.faults[id] = f
	s.mu.Unlock()
}

// ClearFault removes the fault of id set with SetFault.
func (s *Server) ClearFault(id string) {
	s.mu.Lock()
	delete(s.faults, id)
	s.mu.Unlock()
}

// Requests returns how many requests of an operation (OpShowTask, OpSearchTask,
// OpIAMToken, OpIAMProjects, OpMetadataToken, OpMetadataSecurityKey, or OpOther for
// everything else) the server received, whatever their answer, including those that failed
// authentication or whose client went away. The operation follows the method and the
// path's shape (GET ShowTask/SearchTask whatever the project id, POST /v3/auth/tokens,
// GET /v3/projects, PUT /meta-data/latest/api/token, GET /openstack/latest/securitykey).
func (s *Server) Requests(op string) int64 {
	if c, ok := s.counts[op]; ok {
		return c.Load()
	}
	return 0
}

// ServeHTTP answers one request, for the projects of every region; see the package
// documentation for the order of checks.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "")
}

// RegionHandler answers like ServeHTTP, but MetaStudio's paths only for the projects of
// region ("": every region), as that region's endpoint does: a project of another region
// is the gateway's 404 APIGW.0101. IAM, the metadata service and every count are shared.
func (s *Server) RegionHandler(region string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, region) })
}

// serve answers one request for the handler of region ("": every region).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, region string) {
	defer func() {
		// Never take the process down; net/http would recover too, but a handler called
		// directly (tests) would not.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.writeJSONError(w, "", http.StatusInternalServerError, CodeInternal, msgInternal)
		}
	}()
	reqID := newRequestID()
	h := w.Header()
	h.Set(headerReqID, reqID)
	h.Set("Date", s.serverNow().UTC().Format(http.TimeFormat))
	h.Set("Server", serverName)

	rt := parseRoute(r)
	s.counts[rt.op].Add(1)
	var p *project // nil: no project of this handler, or not a MetaStudio path
	if rt.op == OpShowTask || rt.op == OpSearchTask {
		if p = s.projectFor(rt.project, region); p != nil {
			p.counts[rt.op].Add(1)
			rt.name = p.name
		}
	}
	if s.gate != nil && rt.op == OpShowTask {
		defer s.gate.arrive(credentialsOf(r), rt.taskID, rt.name)()
	}

	if !wait(r.Context(), s.opts.Latency) {
		return
	}

	body, tooLarge, err := readBody(r)
	if err != nil {
		if r.Context().Err() == nil {
			s.writeJSONError(w, reqID, http.StatusBadRequest, CodeGatewayBadRequest, "Bad request: cannot read the body")
		}
		return
	}
	if tooLarge {
		s.writeJSONError(w, reqID, http.StatusRequestEntityTooLarge, CodeGatewayBadRequest, "Request entity too large")
		return
	}

	switch rt.handler {
	case viaIAMToken:
		s.iamToken(w, r, reqID, body)
		return
	case viaIAMProjects:
		s.iamProjects(w, r, reqID, body)
		return
	case viaMetadataToken, viaMetadataSecurityKey:
		s.metadata(w, r, reqID, rt.handler)
		return
	}

	done, ok := s.throttle(w, r, reqID, rt)
	if !ok {
		return
	}
	defer done()

	if msg, ok := s.authenticate(r, body, rt); !ok {
		s.writeJSONError(w, reqID, http.StatusUnauthorized, CodeGatewayAuth, msgAuthPfx+msg)
		return
	}
	if !s.chargeQuota(w, reqID, rt, credentialsOf(r)) {
		return
	}

	if p == nil {
		s.writeJSONError(w, reqID, http.StatusNotFound, CodeGatewayNotFound, msgNotFound)
		return
	}
	if status, code, msg, ok := s.authorize(r, p); !ok {
		s.writeJSONError(w, reqID, status, code, msg)
		return
	}

	if rt.op == OpShowTask {
		s.mu.Lock()
		f, ok := s.faults[rt.taskID]
		s.mu.Unlock()
		if ok {
			s.serveFault(w, r, reqID, f, func() { s.showTask(w, reqID, p, rt.taskID) })
			return
		}
	}
	normal := func() { s.searchTask(w, r, reqID, p) }
	if rt.op == OpShowTask {
		normal = func() { s.showTask(w, reqID, p, rt.taskID) }
	}
	if n := uint64(len(s.opts.Faults)); n > 0 {
		s.serveFault(w, r, reqID, s.opts.Faults[(s.faultTurn.Add(1)-1)%n], normal)
		return
	}
	if f, ok := s.randomFault(); ok {
		s.serveFault(w, r, reqID, f, normal)
		return
	}
	normal()
}
