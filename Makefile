# metastudio_exporter. The two commands a new user needs: `make demo` and `make test`.
GO        ?= go
BIN       ?= metastudio_exporter
SIM_BIN   ?= metastudio-sim
VERSION   ?= $(shell cat VERSION 2>/dev/null || echo 0.0.0)
REVISION  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILDDATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG = github.com/prometheus/common/version
# The same flags are used by the Dockerfile; a test checks that they agree.
LDFLAGS = -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=make \
	-X $(VERSION_PKG).BuildDate=$(BUILDDATE)
# Every build without the race detector is made the way the release binary is (static,
# -trimpath; GOFLAGS carries -trimpath to go vet and go run): vet, the e2e tests, the binaries
# the tests build and Helm's build then share one compile of the standard library and the
# dependencies, which is most of `make test` on a fresh machine.
STATIC = CGO_ENABLED=0 GOFLAGS='$(strip $(GOFLAGS) -trimpath)'
BUILD = $(STATIC) $(GO) build -ldflags "$(LDFLAGS)"

DEMO_ADDR ?= 127.0.0.1:39108
DEMO_CONFIG ?= examples/demo.yml
DEMO_SIM_FLAGS ?=
# The demo's second project (examples/demo.yml); demo values, not secrets.
DEMO_SIM_PROJECTS ?= name=singapore,id=fedcba9876543210fedcba9876543210,ak=DEMOAKSINGAPORE00000,sk=$(shell cat examples/demo-sk-singapore.txt),region=ap-southeast-3,tasks=6

.PHONY: mutants all build lint test vet unit race norace bench bench-quick fuzz demo demo-iam demo-ecs clean e2e release soak dashboard chart-rules helm

all: build

build:
	$(BUILD) -o $(BIN) .
	$(BUILD) -o $(SIM_BIN) ./cmd/metastudio-sim

vet:
	$(STATIC) $(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# One package at a time: the timing checks (deadlines, the fault matrix) and the end-to-end
# test with Prometheus stay meaningful on a 2-core machine.
# e2e/ runs the exporter, Prometheus and promtool as processes of their own, and
# examples/grafana only generates JSON: their test binaries need no race detector, whose
# build of k8s.io/api and the Grafana SDK would cost minutes on a fresh machine.
NORACE_PKGS = ./examples/grafana/ ./e2e/
unit: race norace

race:
	$(GO) test -race -count=1 -p 1 $$($(GO) list ./... | grep -v -e '/e2e$$' -e '/examples/grafana$$')

norace:
	$(STATIC) $(GO) test -count=1 -p 1 -parallel 3 $(NORACE_PKGS)

# Static analysis: go vet and staticcheck (pinned; fetched from the Go module proxy).
STATICCHECK_VERSION ?= v0.8.2
lint:
	$(STATIC) $(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Every test, the way CI runs it. go vet compiles what everything else without the race
# detector reuses; Helm (go run, about 3 minutes on a fresh machine) is then built while the
# race-detector tests run, before e2e/ needs it; last, the chart is linted and rendered.
test: vet
	@$(HELM) version --short >/dev/null 2>&1 & helm=$$!; \
	$(MAKE) --no-print-directory race; status=$$?; wait $$helm; \
	[ $$status -eq 0 ] && $(MAKE) --no-print-directory norace helm

# Benchmarks (docs/benchmarks.md). First the signer, the decoder and the in-process scrape of
# 1,000 tasks; then the exporter binary against the simulator answering after 50 ms, at
# 100, 1,000 and 10,000 tasks, cold, warm and discovery-fed (the simulator ignoring SearchTask's
# offset and limit, its default, and paging by rows), with the yardsticks its targets
# compare against (bench/); then, once each, the listing pass over 10,000 tasks begun over 7
# days in each paging behaviour and 100,000 listed finished tasks against a plain registry;
# then the tables, with each target met or missed. Each run of a
# cold or warm scrape measures its yardstick (bare GET, plain registry) right after itself,
# and the tables give the median of 5 such interleaved runs. Everything listens on
# 127.0.0.1. About 25 minutes on 2 cores; the raw results go to bench.out (compare runs with
# benchstat). bench-quick stops at 1,000 tasks and runs once (< 1 min). BenchmarkMemLimit
# (GOMEMLIMIT) is no longer part of it: run it by hand. BenchmarkProjects (1,000 and 10,000
# tasks over 10 projects against as many in one, scraped in turn) runs BENCH_PROJECTS_COUNT
# times: each run of 10,000 cold takes about 2.5 minutes, about 8 in all.
BENCH_COUNT ?= 5
BENCH_PROJECTS_COUNT ?= 3
BENCH_TIME ?= 3x
BENCH_SCALE = '^Benchmark(Scrape|TwoScrapers|BareGET|PlainRegistry)$$'
BENCH_LISTING = '^Benchmark(DiscoveryPass|ListedFinished)$$'
BENCH_PROJECTS = '^BenchmarkProjects$$'

bench: build
	@rm -f bench.out
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./auth/ ./metastudio/ ./collector/ 2>&1 | tee -a bench.out
	METASTUDIO_EXPORTER_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench $(BENCH_SCALE) \
		-benchtime $(BENCH_TIME) -count $(BENCH_COUNT) -timeout 60m ./bench/ 2>&1 | tee -a bench.out
	METASTUDIO_EXPORTER_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench $(BENCH_LISTING) \
		-benchtime $(BENCH_TIME) -count 1 -timeout 60m ./bench/ 2>&1 | tee -a bench.out
	METASTUDIO_EXPORTER_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench $(BENCH_PROJECTS) \
		-benchtime $(BENCH_TIME) -count $(BENCH_PROJECTS_COUNT) -timeout 60m ./bench/ 2>&1 | tee -a bench.out
	@! grep -E '^(FAIL|--- FAIL|panic:)' bench.out
	@$(GO) run ./bench/cmd/benchtable bench.out

bench-quick: build
	@rm -f bench.out
	METASTUDIO_EXPORTER_BIN=$(CURDIR)/$(BIN) METASTUDIO_BENCH_MAX_TASKS=1000 $(GO) test -run '^$$' \
		-bench $(BENCH_SCALE) -benchtime $(BENCH_TIME) -count 1 -timeout 30m ./bench/ 2>&1 | tee -a bench.out
	METASTUDIO_EXPORTER_BIN=$(CURDIR)/$(BIN) METASTUDIO_BENCH_MAX_TASKS=1000 $(GO) test -run '^$$' \
		-bench $(BENCH_PROJECTS) -benchtime $(BENCH_TIME) -count 1 -timeout 30m ./bench/ 2>&1 | tee -a bench.out
	@! grep -E '^(FAIL|--- FAIL|panic:)' bench.out
	@$(GO) run ./bench/cmd/benchtable bench.out

# Fuzzing: each target for FUZZ_TIME (default 60s), one after another. Seeds (f.Add and
# testdata/fuzz) run in every `make test`. Figures: docs/reliability.md.
FUZZ_TIME ?= 60s
FUZZ_TARGETS = ./metastudio/:FuzzDecode ./metastudio/:FuzzClient ./config/:FuzzParse ./auth/:FuzzSign ./collector/:FuzzProbeQuery ./collector/:FuzzListing ./metastudio/:FuzzQuota
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZ_TIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZ_TIME) $$pkg; \
	done

# The exporter against the bundled simulator, on localhost. Ctrl-C stops both.
demo: build
	@echo "Starting the MetaStudio simulator on $(DEMO_ADDR) and the exporter on :39107."
	@echo "Look at http://127.0.0.1:39107/metrics (task series are metastudio_task_*). Ctrl-C stops both."
	@trap 'kill $$sim 2>/dev/null; exit 0' INT TERM EXIT; \
	METASTUDIO_SIM_PROJECTS='$(DEMO_SIM_PROJECTS)' ./$(SIM_BIN) --web.listen-address=$(DEMO_ADDR) $(DEMO_SIM_FLAGS) & sim=$$!; \
	sleep 1; ./$(BIN) --config.file=$(DEMO_CONFIG)

# The demo with other credential sources: an IAM password, an ECS agency.
demo-iam:
	@METASTUDIO_SIM_IAM_USERS='demo/exporter:demo-password-not-a-secret' $(MAKE) --no-print-directory demo DEMO_CONFIG=examples/demo-iam.yml

demo-ecs:
	@$(MAKE) --no-print-directory demo DEMO_CONFIG=examples/demo-ecs.yml DEMO_SIM_FLAGS=--metadata

clean:
	rm -f $(BIN) $(SIM_BIN) bench.out

# The Grafana dashboard, generated from examples/grafana/main.go with the Grafana
# Foundation SDK; a test fails when the committed JSON differs from it.
dashboard:
	$(GO) run ./examples/grafana > examples/grafana/metastudio-dashboard.json.tmp
	mv examples/grafana/metastudio-dashboard.json.tmp examples/grafana/metastudio-dashboard.json

# The copies of examples/alerts.yml for Kubernetes: the Helm chart's (escaped for Helm)
# and examples/kubernetes/prometheusrule.yaml. A test fails when they differ from it.
chart-rules:
	$(GO) run charts/genrules.go

# The Helm chart: helm lint --strict and helm template with each values file of
# charts/metastudio-exporter/ci/ (helm is built from the Go module proxy: about 4 minutes
# the first time). e2e/kubernetes_test.go decodes what it renders into Kubernetes' types.
HELM ?= $(STATIC) $(GO) run helm.sh/helm/v3/cmd/helm@v3.22.0
CHART = charts/metastudio-exporter
helm:
	$(HELM) lint --strict $(CHART)
	@set -e; for v in $(CHART)/ci/*.yaml; do \
		echo "== helm lint --strict / template -f $$v"; \
		$(HELM) lint --strict $(CHART) -f $$v; \
		$(HELM) template metastudio-exporter $(CHART) -f $$v > /dev/null; \
	done

# The end-to-end tests: the simulator, the exporter binary and a real Prometheus on
# loopback with the static and the probe example; promtool runs the alert rules' unit tests
# in every deployment mode; the dashboard, the Kubernetes objects, the Helm chart, the
# systemd unit and the docs are checked. Tests that need prometheus, promtool or
# systemd-analyze skip when they are missing (apt-get install prometheus systemd), and fail
# instead under CI=true (.ci/run sets it). `make test` runs them too.
e2e:
	$(STATIC) $(GO) test -count=1 -v ./e2e/

# Tarballs for installing without containers (see README): the static, version-stamped
# binary, README.md and examples/ per platform, into $(DIST)/, with their SHA-256 sums.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
DIST ?= dist

release:
	rm -rf $(DIST)
	@set -e; for platform in $(RELEASE_PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		name=$(BIN)-$(VERSION).$$os-$$arch; \
		echo "building $(DIST)/$$name.tar.gz"; \
		mkdir -p $(DIST)/$$name; \
		GOOS=$$os GOARCH=$$arch $(BUILD) -o $(DIST)/$$name/$(BIN) .; \
		cp README.md $(DIST)/$$name/; cp -R docs $(DIST)/$$name/; \
		cp -R examples $(DIST)/$$name/; \
		tar -C $(DIST) --owner=0 --group=0 --numeric-owner -czf $(DIST)/$$name.tar.gz $$name; \
		rm -rf $(DIST)/$$name; \
	done
	cd $(DIST) && sha256sum *.tar.gz > sha256sums.txt

# The soak (docs/reliability.md, "Soak"): the exporter and simulator binaries (built afresh by
# the benchmark), 1,000 tasks, 50 ms latency, 5 % faults, 20 concurrent scrapers on /metrics
# and /probe for SOAK_DURATION (default 5m) after a 20 s warm-up; about 7 minutes in all.
# SOAK_DURATION=30s is the quick variant. Everything listens on 127.0.0.1.
SOAK_DURATION ?= 5m
soak: build
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -run '^$$' -bench BenchmarkSoak -benchtime 1x -timeout 15m ./soak/

# The load cases (docs/reliability.md, "Load"; load/doc.go): 400 running tasks, the simulator's gateway at 30/s,
# 8 scrapers for 75 s; then probe churn: 5 configured tasks at 20/s while 1,200 distinct unlisted ids are probed
# in 3 s; then the listing cases: 400 and 4,000 running tasks that only discovery knows, kept fresh by SearchTask
# pages, 4 scrapers for 60 s each. About 5 minutes. A missed target fails unless LOAD_REPORT_ONLY=1.
.PHONY: load
load:
	$(GO) test -run '^$$' -bench '^(BenchmarkLoad|BenchmarkLoadProbes|BenchmarkLoadListing)$$' -benchtime 1x -timeout 15m ./load/

# Mutation check (internal/mutants/mutants.yml): each listed bug is applied to a copy of the
# tree and the tests that must notice it are run; a survivor, a pattern that no longer
# matches once, or a mutant that does not compile fails. A few minutes; .ci/run runs it.
mutants:
	$(GO) run ./internal/mutants
