// Command metastudio-sim serves a simulated Huawei Cloud MetaStudio import/export task API
// (ShowTask, SearchTask) on a local address, with Huawei's wire format and API-gateway
// authentication (SDK-HMAC-SHA256 or X-Auth-Token). `make demo` runs the exporter against it.
//
// The same address also serves IAM (POST /v3/auth/tokens for the --iam-user accounts, and
// AK/SK-signed GET /v3/projects?name=REGION listing --project-id under --region) and, with
// --metadata, the ECS/BMS metadata service (PUT /meta-data/latest/api/token for session
// tokens, GET /openstack/latest/securitykey for fresh temporary AK/SK/security tokens), so
// one process can stand in for the exporter's endpoint, iam_endpoint and metadata endpoint.
// See package simulator for the details. Passwords and secrets are never logged.
//
// It answers as the API reference documents (an unknown task is 400 MSS.000000003; an
// AK/SK-signed call without X-Project-Id is refused), and can play the real cloud's error
// answers (--fault), the gateway's quotas (--quota-per-minute, --quota) and three readings of
// SearchTask's undocumented paging (--search-paging). --spread and --running seed a listing
// workload: tasks begun one after another over a span, the newest of them running.
//
// --project adds projects besides --project-id, each with its own id, AK/SK, region and
// tasks; a call is routed by its path's project id and must carry that project's AK
// (--wrong-project chooses the answer otherwise). --web.listen-address serves every region;
// each --listen REGION=ADDRESS serves one region's projects, as that region's endpoint does.
//
// Seeded task ids are the 32 lower-case hex digits of 1, 2, ... (00000000000000000000000000000001
// first); --seed changes their contents, not their ids. Finished tasks have task_status 0, as
// in the API's one documented example; running (1) and waiting (2) are the simulator's own.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"

	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

const (
	programName     = "metastudio-sim"
	maxTasks        = 1_000_000
	shownTaskIDs    = 5
	shutdownTimeout = 2 * time.Second
	maxRate         = 1_000_000
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program: it serves until ctx ends and returns the exit code (0 after
// ctx ends, --help or --version; 1 on a flag or listen error).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New(programName, "A local Huawei Cloud MetaStudio import/export task API, for tests and demos.")
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Version(version.Print(programName))
	app.HelpFlag.Short('h')
	exited, exitCode := false, 0
	app.Terminate(func(code int) { exited, exitCode = true, code })
	shares := map[string]*float64{} // the flags that are a share of the answers, by name
	share := func(name, which string) *float64 {
		shares[name] = app.Flag(name, "Share (0..1) of ShowTask/SearchTask answers "+which+".").Default("0").Float64()
		return shares[name]
	}

	var (
		listen = app.Flag("web.listen-address", "Address to listen on (port 0 picks a free port; the startup line says which).").
			Default("127.0.0.1:39108").String()
		projectID = app.Flag("project-id", "The only project id served.").
				Default("0123456789abcdef0123456789abcdef").String()
		ak = app.Flag("ak", "Access key (AK) accepted for SDK-HMAC-SHA256.").
			Default("DEMOAKDEMOAKDEMOAK00").String()
		sk = app.Flag("sk", "Secret key (SK) of --ak; the default is the demo SK of examples/demo.yml. Prefer the environment variable.").
			Envar("METASTUDIO_SIM_SK").Default("demo-secret-key-do-not-use-in-production").PlaceHolder("SK").String()
		securityToken = app.Flag("security-token", "If set, --ak is a temporary key that must send and sign this X-Security-Token.").
				Envar("METASTUDIO_SIM_SECURITY_TOKEN").PlaceHolder("TOKEN").String()
		tokens        = app.Flag("token", "An accepted X-Auth-Token (repeatable).").Strings()
		tasks         = app.Flag("tasks", "Number of seeded tasks.").Default("12").Int()
		seed          = app.Flag("seed", "Seed of the task generator and of the fault injection.").Default("1").Int64()
		latency       = app.Flag("latency", "Delay added to every answer.").Default("0s").Duration()
		errorRate     = share("error-rate", "that are 500 MSS.000000002")
		throttleRate  = share("throttle-rate", "that are 429 APIGW.0308")
		slowRate      = share("slow-rate", "delayed by --slow-delay")
		slowDelay     = app.Flag("slow-delay", "Delay of a slow answer.").Default("30s").Duration()
		malformedRate = share("malformed-rate", "that are truncated JSON")
		fieldStyle    = app.Flag("field-style", "How times, type, status and counts are sent: number, string, or mixed (per task).").
				Default(simulator.StyleMixed).Enum(simulator.StyleNumber, simulator.StyleString, simulator.StyleMixed)
		iamUsers = app.Flag("iam-user", "An IAM user accepted for password tokens, as domain/user:password (repeatable; "+
			"newline-separated in the environment variable, which keeps passwords out of the process list).").
			Envar("METASTUDIO_SIM_IAM_USERS").PlaceHolder("DOMAIN/USER:PASSWORD").Strings()
		region = app.Flag("region", "Region name: IAM's project of --project-id, and the project name of its tokens.").
			Default("cn-north-4").String()
		tokenTTL = app.Flag("token-ttl", "Lifetime of the X-Auth-Tokens IAM issues.").Default("24h").Duration()
		metadata = app.Flag("metadata", "Serve the ECS/BMS metadata service (with session tokens) for agency credentials.").
				Bool()
		credentialTTL = app.Flag("metadata-credential-ttl", "Lifetime of the temporary credentials the metadata service issues.").
				Default("2h").Duration()
		rateLimit = app.Flag("rate-limit", "Throttle ShowTask/SearchTask like the API gateway: at most this many requests per second "+
			"(a token bucket), the rest answered 429 APIGW.0308 before authentication. With it, --quota-per-minute or --quota, "+
			"the gateway's counts are served on "+simulator.StatsPath+" to loopback clients. 0: off.").Default("0").Float64()
		rateBurst      = app.Flag("rate-burst", "Bucket size of --rate-limit (0: the rate, rounded up).").Default("0").Int()
		quotaPerMinute = app.Flag("quota-per-minute", "The gateway's per-minute quota: each AK (or X-Auth-Token) may make this many "+
			"authenticated ShowTask/SearchTask calls per clock minute (a fixed minute, hh:mm:00 to hh:mm:59); the rest are answered "+
			"429 APIGW.0308 \"...policy user over ratelimit,limit:N,time:1 minute\", without Retry-After. 0: off.").Default("0").Int()
		quota = app.Flag("quota", "The gateway's quota of calls in all: after this many authenticated ShowTask/SearchTask calls "+
			"(all credentials together), every call is answered 405 APIGW.0501 \"The app quota has been used up.\". 0: off.").
			Default("0").Int64()
		faults = app.Flag("fault", "Answer every authenticated ShowTask/SearchTask with this fault (repeatable: the faults take turns). "+
			"The real cloud's answers: token-invalid (400 MSS.00010008), token-project (400 MSS.00010009), auth-forbidden "+
			"(403 MSS.000000004), quota-second (429 APIGW.0308, limit:10,time:1 second), quota-minute (429 APIGW.0308, "+
			"limit:20,time:1 minute), quota-used-up (405 APIGW.0501); also invalid-param, not-found, throttled, internal, malformed.").
			PlaceHolder("NAME").Strings()
		searchPaging = app.Flag("search-paging", "How SearchTask reads offset and limit: rows (offset counts rows, limit honoured up to 100), "+
			"pages (offset is a page index from 0, pages of limit rows) or ignored (always the first 10 rows, offset 0, limit 10: "+
			"the default, the strictest reading of the docs, which document neither).").
			Default(simulator.PagingIgnored).String()
		spread = app.Flag("spread", "Lay the seeded tasks out for listing workloads instead of the usual mix: task i began "+
			"(i+0.5) x spread / tasks before the start (task 0 the newest), the --running newest of them still running "+
			"for hours, the rest finished before the start. 0: the mix.").Default("0s").Duration()
		running = app.Flag("running", "With --spread: how many of the tasks, the newest, are running.").Default("0").Int()
		more    = app.Flag("project", "Another project to serve besides --project-id (repeatable): "+
			"name=NAME,id=ID,ak=AK,sk=SK[,region=R][,tasks=N][,spread=D][,running=N][,seed=N]; region, tasks, spread and running "+
			"default to the flags of the same name. Its tasks and AK are its own: another project's AK is refused (see --wrong-project). "+
			"Newline-separated in the environment variable, which keeps the SKs out of the process list.").
			Envar("METASTUDIO_SIM_PROJECTS").PlaceHolder("name=N,id=ID,ak=AK,sk=SK").Strings()
		wrongProject = app.Flag("wrong-project", "The answer to a correctly signed call with an AK of another project (Huawei documents none): "+
			"gateway (401 APIGW.0301) or metastudio (403 MSS.000000004).").
			Default(simulator.WrongProjectGateway).Enum(simulator.WrongProjectGateway, simulator.WrongProjectMetaStudio)
		listeners = app.Flag("listen", "Also listen on ADDRESS for REGION's projects only, as metastudio.REGION.myhuaweicloud.com "+
			"(repeatable; IAM, the metadata service and the statistics are served there too). --web.listen-address serves every region.").
			PlaceHolder("REGION=ADDRESS").Strings()
	)

	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, programName+": "+format+"\n", a...)
		return 1
	}
	_, err := app.Parse(args)
	if exited {
		return exitCode
	}
	if err != nil {
		return fail("%v", err)
	}
	for name, r := range shares {
		if !(*r >= 0 && *r <= 1) {
			return fail("--%s must be between 0 and 1, not %v", name, *r)
		}
	}
	switch {
	case *tasks < 0 || *tasks > maxTasks:
		return fail("--tasks must be between 0 and %d, not %d", maxTasks, *tasks)
	case *latency < 0 || *slowDelay < 0:
		return fail("--latency and --slow-delay must not be negative")
	case *ak == "" || *sk == "":
		return fail("--ak and --sk must not be empty")
	case *region == "":
		return fail("--region must not be empty")
	case *tokenTTL <= 0 || *credentialTTL <= 0:
		return fail("--token-ttl and --metadata-credential-ttl must be positive")
	case !(*rateLimit >= 0 && *rateLimit <= maxRate) || *rateBurst < 0 || *rateBurst > maxRate:
		return fail("--rate-limit and --rate-burst must be between 0 and %d", maxRate)
	case *rateBurst > 0 && *rateLimit == 0:
		return fail("--rate-burst needs --rate-limit")
	case *quotaPerMinute < 0 || *quotaPerMinute > maxRate:
		return fail("--quota-per-minute must be between 0 and %d, not %d", maxRate, *quotaPerMinute)
	case *quota < 0:
		return fail("--quota must not be negative, not %d", *quota)
	case !slices.Contains([]string{simulator.PagingRows, simulator.PagingPages, simulator.PagingIgnored}, *searchPaging):
		return fail("--search-paging must be rows, pages or ignored, not %q", *searchPaging)
	case *spread < 0:
		return fail("--spread must not be negative, not %s", *spread)
	case *running < 0 || *running > *tasks:
		return fail("--running must be between 0 and --tasks (%d), not %d", *tasks, *running)
	case *running > 0 && *spread == 0:
		return fail("--running needs --spread")
	}
	var faultList []simulator.Fault
	for _, name := range *faults {
		f, err := simulator.NamedFault(name)
		if err != nil {
			return fail("--fault: %v", err)
		}
		faultList = append(faultList, f)
	}
	users, names, err := parseIAMUsers(*iamUsers)
	if err != nil {
		return fail("%v", err)
	}
	projects, err := parseProjects(*more, projectDefaults{region: *region, tasks: *tasks, spread: *spread, running: *running})
	if err != nil {
		return fail("%v", err)
	}
	regions := []string{*region}
	for _, p := range projects {
		if !slices.Contains(regions, p.Region) {
			regions = append(regions, p.Region)
		}
	}
	regionOrder, regionAddrs, err := parseListeners(*listeners, regions)
	if err != nil {
		return fail("%v", err)
	}

	opts := simulator.Options{
		Credentials:    map[string]string{*ak: *sk},
		Tokens:         *tokens,
		ProjectID:      *projectID,
		Tasks:          *tasks,
		Seed:           *seed,
		Latency:        *latency,
		ErrorRate:      *errorRate,
		ThrottleRate:   *throttleRate,
		SlowRate:       *slowRate,
		SlowDelay:      *slowDelay,
		MalformedRate:  *malformedRate,
		FieldStyle:     *fieldStyle,
		IAMUsers:       users,
		Region:         *region,
		TokenTTL:       *tokenTTL,
		RateLimit:      *rateLimit,
		RateBurst:      *rateBurst,
		QuotaPerMinute: *quotaPerMinute,
		Quota:          *quota,
		Faults:         faultList,
		SearchPaging:   *searchPaging,
		Spread:         *spread,
		Running:        *running,
		MoreProjects:   projects,
		WrongProject:   *wrongProject,
	}
	if err := simulator.CheckProjects(opts); err != nil {
		return fail("%v", err)
	}
	if *metadata {
		opts.Metadata = &simulator.MetadataOptions{SessionTokens: true, CredentialTTL: *credentialTTL}
	}
	if *securityToken != "" {
		opts.SecurityTokens = map[string]string{*ak: *securityToken}
	}
	sim := simulator.New(opts)

	// The main listener serves every region; each --listen one region's projects.
	handlers := []http.Handler{sim}
	addrs := []string{*listen}
	for _, r := range regionOrder {
		handlers = append(handlers, sim.RegionHandler(r))
		addrs = append(addrs, regionAddrs[r])
	}
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fail("%v", err)
		}
		lns = append(lns, ln)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	stats := sim.StatsHandler()
	var srvs []*http.Server
	for _, h := range handlers {
		srvs = append(srvs, &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == simulator.StatsPath {
					stats.ServeHTTP(w, r)
					return
				}
				h.ServeHTTP(w, r)
			}),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      *latency + *slowDelay + 30*time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		})
	}
	ids := sim.TaskIDs()
	projectNames := []string{simulator.DefaultProject}
	for _, p := range projects {
		projectNames = append(projectNames, p.Name)
	}
	logger.Info("MetaStudio simulator listening",
		"address", lns[0].Addr().String(),
		"project_id", *projectID,
		"access_key", *ak,
		"temporary_key", *securityToken != "",
		"tokens", len(*tokens),
		"tasks", len(ids),
		"first_task_ids", strings.Join(ids[:min(len(ids), shownTaskIDs)], ","),
		"field_style", *fieldStyle,
		"region", *region,
		"iam_users", strings.Join(names, ","),
		"metadata", *metadata,
		"rate_limit", *rateLimit,
		"quota_per_minute", *quotaPerMinute,
		"quota", *quota,
		"faults", strings.Join(*faults, ","),
		"search_paging", *searchPaging,
		"spread", *spread,
		"running", *running,
		"projects", strings.Join(projectNames, ","))
	for _, p := range projects {
		pids := sim.ProjectTaskIDs(p.Name)
		var aks []string
		for k := range p.Credentials {
			aks = append(aks, k)
		}
		logger.Info("Serving project", "project", p.Name, "project_id", p.ID, "region", p.Region,
			"access_key", strings.Join(aks, ","), "tasks", len(pids),
			"first_task_ids", strings.Join(pids[:min(len(pids), shownTaskIDs)], ","))
	}
	for i, r := range regionOrder {
		logger.Info("Listening for one region", "region", r, "listen", lns[i+1].Addr().String())
	}

	served := make(chan error, len(srvs))
	for i, srv := range srvs {
		go func() { served <- srv.Serve(lns[i]) }()
	}
	pending := len(srvs)
	var failed error
	select {
	case failed = <-served:
		pending--
	case <-ctx.Done():
	}
	// Let answers in flight finish briefly; Close then cancels the slow ones.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range srvs {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			_ = srv.Close()
		}
	}
	for ; pending > 0; pending-- {
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) && failed == nil {
			failed = err
		}
	}
	if failed != nil {
		return fail("%v", failed)
	}
	return 0
}

// parseIAMUsers reads "domain/user:password" values (the domain ends at the first "/", the
// user at the next ":"; the password may contain both). names are the "domain/user" parts,
// safe to log. An error never quotes the value, which holds a password.
func parseIAMUsers(values []string) (users []simulator.IAMUser, names []string, err error) {
	for i, v := range values {
		domain, rest, ok1 := strings.Cut(v, "/")
		user, password, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || domain == "" || user == "" || password == "" {
			return nil, nil, fmt.Errorf("--iam-user #%d: want domain/user:password, each part non-empty", i+1)
		}
		users = append(users, simulator.IAMUser{Domain: domain, User: user, Password: password})
		names = append(names, domain+"/"+user)
	}
	return users, names, nil
}
