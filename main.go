// Command metastudio_exporter exports Huawei Cloud MetaStudio import/export tasks (their
// total, succeeded and failed item counts and status) as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
)

const exporterName = "metastudio_exporter"

// Server timeouts. The write timeout must outlast the longest scrape (config.MaxScrapeTimeout).
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = config.MaxScrapeTimeout + 10*time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// options are what the command line adds to a config.
type options struct {
	configFile    string // "" when the config did not come from a file (tests): no reload
	getenv        config.Getenv
	logger        log.Logger
	now           func() time.Time // the clock of signatures, expiries and cool-downs
	shard         collector.Shard
	watchInterval time.Duration    // reload when the file's content changes; 0 = never
	hup           <-chan os.Signal // SIGHUP: reload
	// after is the timer of the background project resolution (default time.After);
	// tests pass one that moves a fake clock.
	after func(time.Duration) <-chan time.Time
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole program; it returns the exit code. It serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv config.Getenv) int {
	app := kingpin.New(exporterName, "Prometheus exporter for Huawei Cloud MetaStudio import/export tasks.")
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	var (
		configFile  = app.Flag("config.file", "Path to the configuration file.").Default("config.yml").String()
		configCheck = app.Flag("config.check", "Validate the configuration file, print the problem if any, and exit 0 or 1.").Bool()
		metricsPath = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		logLevel    = app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").
				Default("info").HintOptions("debug", "info", "warn", "error").String()
		logFormat = app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").
				Default("logfmt").HintOptions("logfmt", "json").String()
		watchInterval = app.Flag("config.watch-interval", "Reload the config when the file's content changes, checking this often (0 = never; SIGHUP and POST /-/reload always work).").
				Default("0s").Duration()
		shardIndex = app.Flag("shard.index", "This replica's shard: it exports the tasks whose id hashes to it (FNV-1a 64 modulo --shard.count).").Default("0").Int()
		shardCount = app.Flag("shard.count", "How many replicas share the tasks.").Default("1").Int()
		webFlags   = kingpinflag.AddFlags(app, ":39107")
	)
	exited := false
	app.Terminate(func(int) { exited = true })
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 1
	}
	if exited { // --help or --version printed and asked to exit
		return 0
	}
	if err := checkChoice("--log.level", *logLevel, "debug", "info", "warn", "error"); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 1
	}
	if err := checkChoice("--log.format", *logFormat, "logfmt", "json"); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 1
	}
	if *shardCount < 1 || *shardIndex < 0 || *shardIndex >= *shardCount {
		fmt.Fprintf(stderr, "%s: --shard.index must be from 0 to --shard.count - 1, and --shard.count at least 1; got index %d, count %d\n",
			exporterName, *shardIndex, *shardCount)
		return 1
	}
	if *watchInterval < 0 {
		fmt.Fprintf(stderr, "%s: --config.watch-interval must be 0 (off) or positive, got %s\n", exporterName, *watchInterval)
		return 1
	}
	if !strings.HasPrefix(*metricsPath, "/") {
		fmt.Fprintf(stderr, "%s: --web.telemetry-path must start with /, got %q\n", exporterName, *metricsPath)
		return 1
	}

	base := newBaseLogger(stderr, *logFormat)
	// With goes outermost so that "caller" names the line that logged.
	logger := log.With(level.NewFilter(base, levelOption(*logLevel)), "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)

	cfg, warnings, err := config.Load(*configFile, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: config %s: %v\n", exporterName, *configFile, err)
		return 1
	}
	if *configCheck {
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		if cfg.Shorthand() {
			fmt.Fprintf(stdout, "%s: config %s is valid (%d tasks)\n", exporterName, *configFile, len(cfg.Tasks))
			return 0
		}
		tasks := 0
		for _, p := range cfg.Projects {
			tasks += len(p.Tasks)
		}
		fmt.Fprintf(stdout, "%s: config %s is valid (%d projects, %d tasks)\n", exporterName, *configFile, len(cfg.Projects), tasks)
		return 0
	}
	if *webFlags.WebConfigFile != "" {
		if err := web.Validate(*webFlags.WebConfigFile); err != nil {
			fmt.Fprintf(stderr, "%s: web config %s: %v\n", exporterName, *webFlags.WebConfigFile, err)
			return 1
		}
	}

	level.Info(logger).Log("msg", "Starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())
	for _, w := range warnings {
		level.Warn(logger).Log("msg", "Config", "warning", w)
	}
	for _, p := range cfg.Projects {
		level.Info(logger).Log("msg", "Loaded config", "file", *configFile, "project", p.Name, "region", p.Region,
			"endpoint", p.MetaStudioEndpoint(), "tasks", len(p.Tasks), "credentials", p.Credentials.Source())
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	e, err := newExporter(ctx, cfg, options{
		configFile: *configFile, getenv: getenv, logger: logger, now: time.Now,
		shard: collector.Shard{Index: *shardIndex, Count: *shardCount}, watchInterval: *watchInterval, hup: hup,
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 1
	}
	handler, err := e.handler(*metricsPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 1
	}
	server := newServer(handler, logger)
	// The toolkit logs through slog: its lines go to the same base logger with the same
	// keys in the same order as the exporter's own (level, ts, caller, msg).
	slogger := slog.New(&slogHandler{logger: base, level: slogLevel(*logLevel)})
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(server, webFlags, slogger) }()

	select {
	case err := <-serveErr:
		fmt.Fprintf(stderr, "%s: listening: %v\n", exporterName, err)
		return 1
	case <-ctx.Done():
	}
	level.Info(logger).Log("msg", "Shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		level.Warn(logger).Log("msg", "Shutdown was not clean", "err", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		level.Warn(logger).Log("msg", "Server", "err", err)
	}
	return 0
}

// newServer is the exporter's HTTP server: every timeout set, so that a slow or idle
// client cannot hold a connection, and the write timeout outlasts the longest scrape.
func newServer(handler http.Handler, logger log.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(log.NewStdlibAdapter(level.Error(logger)), "", 0),
	}
}

// landingPage is the page at /: what the exporter is, and links to its endpoints.
func landingPage(metricsPath string) (http.Handler, error) {
	return web.NewLandingPage(web.LandingConfig{
		Name:        exporterName,
		Description: "Prometheus exporter for Huawei Cloud MetaStudio import/export tasks",
		Version:     version.Info(),
		Form: web.LandingForm{Action: "/probe", Inputs: []web.LandingFormInput{
			{Label: "Task", Type: "text", Name: "task", Placeholder: "task id"},
		}},
		Links: []web.LandingLinks{
			{Address: metricsPath, Text: "Metrics"},
			{Address: "/sd", Text: "Service discovery", Description: "the tasks, as Prometheus http_sd_configs JSON"},
			{Address: "/config", Text: "Configuration", Description: "the running config, secrets hidden"},
			{Address: "/-/healthy", Text: "Health"},
			{Address: "/-/ready", Text: "Readiness"},
		},
	})
}

func checkChoice(flag, value string, choices ...string) error {
	if slices.Contains(choices, value) {
		return nil
	}
	return fmt.Errorf("%s: %q is not one of %s", flag, value, strings.Join(choices, ", "))
}

// newBaseLogger writes every line of the process, in logfmt or JSON. The exporter's own
// lines get level, ts and caller from go-kit (main's log.With and level.*); the
// exporter-toolkit's get the same keys, in the same order, from slogHandler.
func newBaseLogger(w io.Writer, format string) log.Logger {
	w = log.NewSyncWriter(w)
	if format == "json" {
		return log.NewJSONLogger(w)
	}
	return log.NewLogfmtLogger(w)
}

func levelOption(l string) level.Option {
	switch l {
	case "debug":
		return level.AllowDebug()
	case "warn":
		return level.AllowWarn()
	case "error":
		return level.AllowError()
	}
	return level.AllowInfo()
}

func slogLevel(l string) slog.Level {
	switch l {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// slogHandler writes slog records (the exporter-toolkit's) to a go-kit logger as the
// exporter's own lines look: level, ts (UTC, RFC 3339 with nanoseconds, like
// log.DefaultTimestampUTC), caller (file:line), msg, then the record's attributes, groups
// joined to their keys with dots.
type slogHandler struct {
	logger log.Logger
	level  slog.Level
	attrs  []any  // key/value pairs from WithAttrs, keys already prefixed
	group  string // the prefix of later keys, "" or ending in "."
}

var _ slog.Handler = (*slogHandler)(nil)

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	caller := "unknown"
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		caller = filepath.Base(f.File) + ":" + fmt.Sprint(f.Line)
	}
	lvl := level.InfoValue()
	switch {
	case r.Level >= slog.LevelError:
		lvl = level.ErrorValue()
	case r.Level >= slog.LevelWarn:
		lvl = level.WarnValue()
	case r.Level < slog.LevelInfo:
		lvl = level.DebugValue()
	}
	kv := []any{level.Key(), lvl, "ts", r.Time.UTC().Format(time.RFC3339Nano), "caller", caller, "msg", r.Message}
	kv = append(kv, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		kv = appendAttr(kv, h.group, a)
		return true
	})
	return h.logger.Log(kv...)
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		h2.attrs = appendAttr(h2.attrs, h.group, a)
	}
	return &h2
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

// appendAttr appends an attribute's key/value pairs, a group's members under its name.
func appendAttr(kv []any, prefix string, a slog.Attr) []any {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, m := range v.Group() {
			kv = appendAttr(kv, prefix, m)
		}
		return kv
	}
	if a.Key == "" {
		return kv
	}
	return append(kv, prefix+a.Key, v.Any())
}
