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
//     project id other than Options.ProjectID, is 404 APIGW.0101, as the gateway answers
//     for an API it does not know.
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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
	ids       []string
	users     map[IAMUser]bool
	projects  map[string][]string
	gate      *gateway      // nil without Options.RateLimit, QuotaPerMinute and Quota
	faultTurn atomic.Uint64 // requests answered from Options.Faults so far

	counts map[string]*atomic.Int64
	skew   atomic.Int64 // time.Duration added to Now for the Date header and X-Sdk-Date

	mu     sync.Mutex
	rng    *rand.Rand
	order  []string
	seeded map[string]*seedTask
	fixed  map[string]fixedTask
	faults map[string]Fault
	aks    map[string]*akState

	iamTokens   map[string]time.Time // issued X-Auth-Token -> expiry
	issued      int                  // IAM tokens issued
	sessions    map[string]time.Time // metadata session token -> expiry
	temp        map[string]tempCred  // temporary AK -> its SK, security token and expiry
	issuedCreds int                  // temporary credentials issued
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
		iamTokens: make(map[string]time.Time),
		sessions:  make(map[string]time.Time),
		temp:      make(map[string]tempCred),
		rng:       rand.New(rand.NewPCG(uint64(opts.Seed), 0xfa017)),
		seeded:    make(map[string]*seedTask),
		fixed:     make(map[string]fixedTask),
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
	for i := 0; i < opts.Tasks; i++ {
		var place *placement
		if opts.Spread > 0 {
			place = &placement{
				ago:     time.Duration(float64(opts.Spread) * (float64(i) + 0.5) / float64(opts.Tasks)),
				running: i < opts.Running,
			}
		}
		t := newSeedTask(i, opts.Seed, s.start, opts.FieldStyle, place)
		s.seeded[t.id] = t
		s.order = append(s.order, t.id)
		s.ids = append(s.ids, t.id)
	}
	return s
}

// TaskIDs returns the seeded task ids, in order (TaskID(0), TaskID(1), ...).
func (s *Server) TaskIDs() []string {
	return slices.Clone(s.ids)
}

// SetTask fixes a task: ShowTask of id answers exactly these JSON fields (values marshalled
// as given, nil for null; a missing key is absent), and SearchTask lists it, in the place of
// the seeded task with that id or after all earlier tasks. SearchTask filters it by its
// "resource" (a string) and "begin_time" (a number or digit string). A value that cannot be
// marshalled makes the answer a 500 MSS.000000002.
func (s *Server) SetTask(id string, fields map[string]any) {
	f := make(fixedTask, len(fields))
	for k, v := range fields {
		f[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seeded[id]; !ok {
		if _, ok := s.fixed[id]; !ok {
			s.order = append(s.order, id)
		}
	}
	delete(s.seeded, id)
	s.fixed[id] = f
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

// ServeHTTP answers one request; see the package documentation for the order of checks.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	if s.gate != nil && rt.op == OpShowTask {
		defer s.gate.arrive(credentialsOf(r), rt.taskID)()
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
	case viaMetadataToken:
		s.metadataToken(w, r, reqID)
		return
	case viaMetadataSecurityKey:
		s.metadataSecurityKey(w, r, reqID)
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

	if rt.op == OpOther || (s.opts.ProjectID != "" && rt.project != s.opts.ProjectID) {
		s.writeJSONError(w, reqID, http.StatusNotFound, CodeGatewayNotFound, msgNotFound)
		return
	}

	if rt.op == OpShowTask {
		s.mu.Lock()
		f, ok := s.faults[rt.taskID]
		s.mu.Unlock()
		if ok {
			s.serveFault(w, r, reqID, f, func() { s.showTask(w, reqID, rt.taskID) })
			return
		}
	}
	normal := func() { s.searchTask(w, r, reqID) }
	if rt.op == OpShowTask {
		normal = func() { s.showTask(w, reqID, rt.taskID) }
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

// route is what the path and method say about a request.
type route struct {
	op      string
	handler handler
	project string
	taskID  string
}

// handler is who answers a request after the body is read.
type handler int

const (
	viaGateway             handler = iota // authentication, then MetaStudio
	viaIAMToken                           // POST /v3/auth/tokens
	viaIAMProjects                        // GET /v3/projects
	viaMetadataToken                      // any method on /meta-data/latest/api/token
	viaMetadataSecurityKey                // any method on /openstack/latest/securitykey
)

// parseRoute recognises the IAM and metadata paths (exactly, one trailing slash tolerated)
// and GET /v2/{project}/ies/task[/{id}] (one trailing slash tolerated). Each segment is
// unescaped, so an id with %2F is one segment.
func parseRoute(r *http.Request) route {
	other := route{op: OpOther}
	if r.URL == nil {
		return other
	}
	p := strings.TrimSuffix(r.URL.EscapedPath(), "/")
	switch p {
	case pathIAMToken:
		if r.Method == http.MethodPost {
			return route{op: OpIAMToken, handler: viaIAMToken}
		}
		return other
	case pathIAMProjects:
		if r.Method == http.MethodGet {
			return route{op: OpIAMProjects, handler: viaIAMProjects}
		}
		return other
	case pathMetadataToken:
		if r.Method == http.MethodPut {
			return route{op: OpMetadataToken, handler: viaMetadataToken}
		}
		return route{op: OpOther, handler: viaMetadataToken}
	case pathMetadataSecurityKey:
		if r.Method == http.MethodGet {
			return route{op: OpMetadataSecurityKey, handler: viaMetadataSecurityKey}
		}
		return route{op: OpOther, handler: viaMetadataSecurityKey}
	}
	if r.Method != http.MethodGet {
		return other
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, seg := range segs {
		raw, err := url.PathUnescape(seg)
		if err != nil || raw == "" {
			return other
		}
		segs[i] = raw
	}
	if len(segs) < 4 || segs[0] != "v2" || segs[2] != "ies" || segs[3] != "task" {
		return other
	}
	switch len(segs) {
	case 4:
		return route{op: OpSearchTask, project: segs[1]}
	case 5:
		return route{op: OpShowTask, project: segs[1], taskID: segs[4]}
	}
	return other
}

// wait sleeps d, or returns false as soon as ctx ends.
func wait(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// readBody reads at most maxBody bytes; tooLarge reports a longer body.
func readBody(r *http.Request) (body []byte, tooLarge bool, err error) {
	if r.Body == nil {
		return nil, false, nil
	}
	body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, false, err
	}
	return body, len(body) > maxBody, nil
}

// authenticate checks the request like the gateway: an X-Auth-Token when present, else an
// SDK-HMAC-SHA256 Authorization, which must come with an X-Project-Id header on a call to
// MetaStudio (rt ShowTask or SearchTask). msg completes "Incorrect IAM authentication
// information: ".
func (s *Server) authenticate(r *http.Request, body []byte, rt route) (msg string, ok bool) {
	if tok := r.Header.Get(headerAuthToken); tok != "" {
		return s.checkToken(tok)
	}
	if msg, ok := s.authenticateAKSK(r, body); !ok {
		return msg, false
	}
	if rt.op != OpOther && r.Header.Get(headerProjectID) == "" {
		return msgNoProjectID, false
	}
	return "", true
}

// credentialsOf names the credentials a request claims, for the gateway's quotas and
// overlap count: its X-Auth-Token when it has one (authentication then uses the token),
// else the AK of its Authorization header; "" for neither.
func credentialsOf(r *http.Request) string {
	if tok := r.Header.Get(headerAuthToken); tok != "" {
		return "token:" + tok
	}
	if a, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		return "ak:" + a.accessKey
	}
	return ""
}

// checkToken accepts a token of Options.Tokens, or one IAM issued that has not expired.
func (s *Server) checkToken(tok string) (msg string, ok bool) {
	if s.tokens[tok] {
		return "", true
	}
	now := s.now()
	s.mu.Lock()
	expires, issued := s.iamTokens[tok]
	s.mu.Unlock()
	if !issued || !now.Before(expires) {
		return msgDecryptTokenFail, false // Huawei's answer for a wrong, expired or revoked token alike
	}
	return "", true
}

// akNotExist is the gateway's answer for an AK that IAM does not know.
func akNotExist(ak string) string {
	return "Get secretKey failed,ak:" + ak + ",err:ak not exist"
}

// authenticateAKSK checks an SDK-HMAC-SHA256 Authorization: the AK (static or temporary),
// its lock, the expiry of a temporary AK, then verifyAKSK.
func (s *Server) authenticateAKSK(r *http.Request, body []byte) (msg string, ok bool) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return "the request carries neither X-Auth-Token nor Authorization", false
	}
	a, err := parseAuthorization(header)
	if err != nil {
		return "verify aksk signature fail, " + err.Error(), false
	}
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	sk, known := s.creds[a.accessKey]
	wantToken := s.secTokens[a.accessKey]
	var expires time.Time
	if !known {
		if tc, ok := s.temp[a.accessKey]; ok {
			sk, wantToken, expires, known = tc.secret, tc.token, tc.expires, true
		}
	}
	if !known {
		return akNotExist(a.accessKey), false
	}
	st := s.aks[a.accessKey]
	if st == nil {
		st = &akState{}
		s.aks[a.accessKey] = st
	}
	if !st.lockedUntil.IsZero() {
		if now.Before(st.lockedUntil) {
			return msgLocked[len(msgAuthPfx):], false
		}
		st.lockedUntil = time.Time{}
		st.failures = 0
	}
	if !expires.IsZero() && !now.Before(expires) {
		return akNotExist(a.accessKey), false // IAM forgets an expired temporary AK
	}
	if reason := verifyAKSK(r, body, a, sk, wantToken, now.Add(s.Skew())); reason != "" {
		st.failures++
		if st.failures > lockAfter {
			st.failures = 0
			st.lockedUntil = now.Add(lockFor)
		}
		return "verify aksk signature fail, " + reason, false
	}
	st.failures = 0
	return "", true
}

// verifyAKSK returns why a signed request fails, or "" when it passes: the X-Sdk-Date
// window around serverNow, the security token (wantToken, "" for a permanent key), then the
// signature itself.
func verifyAKSK(r *http.Request, body []byte, a authorization, sk, wantToken string, serverNow time.Time) string {
	date := r.Header.Get(headerSdkDate)
	if date == "" {
		return "X-Sdk-Date is missing"
	}
	t, err := time.Parse(sdkDateFormat, date)
	if err != nil {
		return "X-Sdk-Date is invalid"
	}
	if d := serverNow.Sub(t); d > maxDateSkew || d < -maxDateSkew {
		return "X-Sdk-Date is more than 15 minutes away from the server time"
	}
	if wantToken != "" {
		if r.Header.Get(headerSecurityToken) != wantToken {
			return "X-Security-Token is missing or invalid"
		}
		if !slices.Contains(a.signedHeaders, "x-security-token") {
			return "x-security-token is not signed"
		}
	}
	if err := checkSignature(r, body, a, sk); err != nil {
		return err.Error()
	}
	return ""
}

// randomFault draws the injected fault of one request, if any.
func (s *Server) randomFault() (Fault, bool) {
	o := &s.opts
	total := o.ErrorRate + o.ThrottleRate + o.SlowRate + o.MalformedRate
	if total <= 0 {
		return Fault{}, false
	}
	s.mu.Lock()
	x := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case x < o.ErrorRate:
		return FaultInternal(), true
	case x < o.ErrorRate+o.ThrottleRate:
		return FaultThrottled(), true
	case x < o.ErrorRate+o.ThrottleRate+o.SlowRate:
		return FaultSlow(o.SlowDelay), true
	case x < total:
		return FaultMalformed(), true
	}
	return Fault{}, false
}

// serveFault waits f.Delay, then answers f, or calls normal for a Status 0 fault.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, reqID string, f Fault, normal func()) {
	if !wait(r.Context(), f.Delay) {
		return
	}
	h := w.Header()
	for k, v := range f.Header {
		h.Set(k, v)
	}
	if f.Status == 0 {
		normal()
		return
	}
	if f.ContentType != "" {
		h.Set("Content-Type", f.ContentType)
	} else {
		h["Content-Type"] = nil // keep net/http from sniffing one
	}
	h.Set("Content-Length", strconv.Itoa(len(f.Body)))
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, f.Body)
}

// writeJSONError answers {"error_code","error_msg","request_id"} with reqID (taken from the
// X-Request-Id header already set when reqID is empty).
func (s *Server) writeJSONError(w http.ResponseWriter, reqID string, status int, code, msg string) {
	if reqID == "" {
		reqID = w.Header().Get(headerReqID)
	}
	ct := contentJSON
	if strings.HasPrefix(code, "MSS.") {
		ct = contentMSS
	}
	s.writeBody(w, status, ct, []byte(errorBody(code, msg, reqID)))
}

func (s *Server) writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// lookup returns the task's JSON object (an object or a fixedTask) at now, or nil.
func (s *Server) lookup(id string, now time.Time) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookupLocked(id, now)
}

func (s *Server) lookupLocked(id string, now time.Time) any {
	if t, ok := s.seeded[id]; ok {
		return t.render(now)
	}
	if f, ok := s.fixed[id]; ok {
		return f // never modified after SetTask stored it
	}
	return nil
}

func (s *Server) showTask(w http.ResponseWriter, reqID, id string) {
	task := s.lookup(id, s.now())
	if task == nil {
		s.writeJSONError(w, reqID, http.StatusBadRequest, CodeInvalidParam,
			fmt.Sprintf("Invalid parameter: task %s does not exist.", id))
		return
	}
	b, err := json.Marshal(task)
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusInternalServerError, CodeInternal, msgInternal)
		return
	}
	s.writeBody(w, http.StatusOK, contentMSS, b)
}

// searchQuery is SearchTask's parsed query.
type searchQuery struct {
	resources     []string
	begin, end    int64
	hasBegin      bool
	hasEnd        bool
	offset, limit int // as the paging mode reads them
}

var errBadParam = errors.New("invalid parameter")

// parseSearch reads SearchTask's query: resource (repeated or comma-separated),
// begin_time and end_time (epoch ms), and offset and limit as paging reads them (not at
// all for PagingIgnored). A value that is not a number, or a negative offset or limit, is
// an error.
func parseSearch(q url.Values, paging string) (searchQuery, error) {
	sq := searchQuery{limit: defaultLimit}
	for _, v := range q["resource"] {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				sq.resources = append(sq.resources, r)
			}
		}
	}
	type intParam struct {
		name string
		dst  *int64
		set  *bool
	}
	var offset, limit int64
	var hasOffset, hasLimit bool
	params := []intParam{{"begin_time", &sq.begin, &sq.hasBegin}, {"end_time", &sq.end, &sq.hasEnd}}
	if paging != PagingIgnored {
		params = append(params, intParam{"offset", &offset, &hasOffset}, intParam{"limit", &limit, &hasLimit})
	}
	for _, p := range params {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return sq, fmt.Errorf("%w: %s", errBadParam, p.name)
		}
		*p.dst, *p.set = n, true
	}
	if offset < 0 || limit < 0 || offset > 1<<31 {
		return sq, fmt.Errorf("%w: offset/limit", errBadParam)
	}
	sq.offset = int(offset)
	if hasLimit && limit > 0 {
		sq.limit = int(min(limit, maxLimit))
	}
	return sq, nil
}

// matches says whether a task passes the filters: its resource among those asked for, and
// its begin time within [begin_time, end_time] (both ends inclusive). A task without a
// usable begin time matches no begin_time or end_time filter.
func (q searchQuery) matches(resource string, begin int64, hasBegin bool) bool {
	if len(q.resources) > 0 && !slices.Contains(q.resources, resource) {
		return false
	}
	if q.hasBegin || q.hasEnd {
		if !hasBegin || (q.hasBegin && begin < q.begin) || (q.hasEnd && begin > q.end) {
			return false
		}
	}
	return true
}

// window returns the rows of one answer out of matched, as the paging mode reads offset
// and limit.
func (q searchQuery) window(matched []listed, paging string) []listed {
	first := int64(q.offset) // PagingRows
	if paging == PagingPages {
		first = int64(q.offset) * int64(q.limit)
	}
	if first >= int64(len(matched)) {
		return nil
	}
	return matched[first:min(first+int64(q.limit), int64(len(matched)))]
}

// listed is a task that matched a SearchTask query, with what orders the answer.
type listed struct {
	id       string
	begin    int64
	hasBegin bool
}

// filterFieldsLocked returns what SearchTask filters and orders a task by at now, its
// resource and its begin time, as its answer would carry them, without rendering a
// seeded task; ok is false for an unknown id. s.mu is held.
func (s *Server) filterFieldsLocked(id string, now time.Time) (resource string, begin int64, hasBegin, ok bool) {
	if t, found := s.seeded[id]; found {
		if now.Before(t.begin) { // waiting: no begin_time yet
			return t.resource, 0, false, true
		}
		return t.resource, t.begin.UnixMilli(), true, true
	}
	if f, found := s.fixed[id]; found {
		begin, hasBegin = beginOf(f)
		return resourceOf(f), begin, hasBegin, true
	}
	return "", 0, false, false
}

// searchTask answers {"offset","limit","count","data"}: the tasks that match, newest first
// (by begin time, later first; tasks without a usable begin time, which have not begun,
// before every begun one; ties in server order: seeded tasks, then tasks added with
// SetTask), count being all that match, the rows and the echoed offset and limit as
// Options.SearchPaging reads them. Only the rows of the answer are rendered.
func (s *Server) searchTask(w http.ResponseWriter, r *http.Request, reqID string) {
	paging := s.opts.SearchPaging
	q, err := parseSearch(r.URL.Query(), paging)
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusBadRequest, CodeInvalidParam, "Invalid parameter: "+err.Error())
		return
	}
	now := s.now()
	var found []listed
	s.mu.Lock()
	for _, id := range s.order {
		if resource, begin, hasBegin, ok := s.filterFieldsLocked(id, now); ok && q.matches(resource, begin, hasBegin) {
			found = append(found, listed{id, begin, hasBegin})
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(found, func(a, b listed) int {
		switch {
		case a.hasBegin != b.hasBegin:
			if a.hasBegin {
				return 1
			}
			return -1
		case a.begin > b.begin:
			return -1
		case a.begin < b.begin:
			return 1
		}
		return 0
	})
	rows := q.window(found, paging)
	data := make([]any, 0, len(rows))
	s.mu.Lock()
	for _, f := range rows {
		data = append(data, s.lookupLocked(f.id, now))
	}
	s.mu.Unlock()
	page := struct {
		Offset int   `json:"offset"`
		Limit  int   `json:"limit"`
		Count  int   `json:"count"`
		Data   []any `json:"data"`
	}{q.offset, q.limit, len(found), data}
	b, err := json.Marshal(page)
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusInternalServerError, CodeInternal, msgInternal)
		return
	}
	s.writeBody(w, http.StatusOK, contentMSS, b)
}
