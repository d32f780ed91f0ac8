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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	slogkit "github.com/tjhop/slog-gokit"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
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
		webFlags = kingpinflag.AddFlags(app, ":39107")
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
		fmt.Fprintf(stdout, "%s: config %s is valid (%d tasks)\n", exporterName, *configFile, len(cfg.Tasks))
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
	level.Info(logger).Log("msg", "Loaded config", "file", *configFile, "region", cfg.Region,
		"endpoint", cfg.MetaStudioEndpoint(), "tasks", len(cfg.Tasks), "credentials", cfg.Credentials.Source())

	handler, err := newHandler(ctx, cfg, *metricsPath, logger, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 1
	}
	server := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(log.NewStdlibAdapter(level.Error(logger)), "", 0),
	}
	// The bridge wraps the plain base logger: the go-kit logger above already adds ts
	// and caller, and wrapping it would write each key twice.
	slogger := slog.New(slogkit.NewGoKitHandler(base, slogLevel(*logLevel)))
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

// projectTimeout bounds the resolution of project_id at start-up.
const projectTimeout = 30 * time.Second

// newHandler wires every endpoint of the exporter for cfg. When cfg has no project_id, it
// resolves it through IAM first, and fails if that fails. now is the clock of signatures,
// expiries and cool-downs (tests pass a fake one). Discovery runs until ctx ends.
func newHandler(ctx context.Context, cfg *config.Config, metricsPath string, logger log.Logger, now func() time.Time) (http.Handler, error) {
	global := prometheus.NewRegistry()
	global.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(exporterName),
	)
	apiMetrics := collector.NewAPIMetrics(global, logger)
	authOpts := auth.Options{
		Now: now, IAMEndpoint: cfg.IAMEndpointURL(), Region: cfg.Region, ProjectID: cfg.ProjectID, Observer: apiMetrics,
	}
	credentials := auth.New(cfg.Credentials, authOpts)
	if cfg.ProjectID == "" {
		resolveCtx, cancel := context.WithTimeout(ctx, projectTimeout)
		id, err := auth.ResolveProject(resolveCtx, credentials, authOpts)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("resolving project_id for region %s: %w", cfg.Region, err)
		}
		cfg.ProjectID = id
		level.Info(logger).Log("msg", "Resolved project_id", "region", cfg.Region, "project_id", id)
	}
	client, err := metastudio.NewClient(metastudio.Options{
		Endpoint:  cfg.MetaStudioEndpoint(),
		ProjectID: cfg.ProjectID,
		Auth:      credentials,
		MaxConns:  cfg.Scrape.Concurrency,
		Observer:  apiMetrics,
		UserAgent: exporterName + "/" + version.Version,
		Now:       now,
	})
	if err != nil {
		return nil, err
	}
	guard := collector.NewGuard(cfg.Credentials.FailureBackoff, credentials, now, logger)
	limiter := collector.NewLimiter(cfg.Scrape.MaxRequestsPerSecond, cfg.Scrape.Concurrency, now)
	fetcher := collector.NewFetcher(client, guard, limiter, now)
	global.MustRegister(guard, limiter)
	var discovery *collector.Discovery
	if cfg.Discovery.Enabled {
		discovery = collector.NewDiscovery(cfg.Discovery, fetcher, logger)
		global.MustRegister(discovery)
		go discovery.Run(ctx)
	}
	c := collector.New(cfg, fetcher, discovery, logger)

	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        exporterName,
		Description: "Prometheus exporter for Huawei Cloud MetaStudio import/export tasks",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: metricsPath, Text: "Metrics"},
			{Address: "/-/healthy", Text: "Health"},
			{Address: "/-/ready", Text: "Readiness"},
		},
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", landing) // answers 404 for any path but "/"
	mux.Handle(metricsPath, collector.Handler(func() *collector.Collector { return c }, global, logger))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		// The config is loaded before the server starts, so the exporter is ready as
		// soon as it answers. Readiness never depends on the API's health.
		fmt.Fprintln(w, "Ready")
	})
	return mux, nil
}

func checkChoice(flag, value string, choices ...string) error {
	if slices.Contains(choices, value) {
		return nil
	}
	return fmt.Errorf("%s: %q is not one of %s", flag, value, strings.Join(choices, ", "))
}

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
