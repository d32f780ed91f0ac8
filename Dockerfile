# syntax=docker/dockerfile:1
#
# metastudio_exporter in a container:
#   docker build -t metastudio_exporter \
#     --build-arg VERSION="$(cat VERSION)" \
#     --build-arg REVISION="$(git rev-parse --short HEAD)" \
#     --build-arg BRANCH="$(git rev-parse --abbrev-ref HEAD)" .
#   docker run -p 39107:39107 -e CLOUD_SDK_AK -e CLOUD_SDK_SK \
#     -v "$PWD/config.yml:/etc/metastudio_exporter/config.yml:ro" metastudio_exporter
#
# The build flags are those of the Makefile's LDFLAGS; build_test.go checks that they agree.

# Build stage: the Go release named by go.mod, running on the build host and
# cross-compiling for the target platform (BuildKit sets TARGETOS/TARGETARCH).
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build

WORKDIR /src

# Dependencies first, so that this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .

# Version information for `metastudio_exporter --version` and the
# metastudio_exporter_build_info metric. VERSION defaults to the VERSION file,
# BUILDDATE to the time of the build; REVISION and BRANCH cannot be read here
# (.git is not sent to the builder), so pass them as build arguments.
ARG VERSION=""
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILDDATE=""
ARG TARGETOS
ARG TARGETARCH

RUN VERSION="${VERSION:-$(cat VERSION)}" && \
    BUILDDATE="${BUILDDATE:-$(date -u +%Y%m%d-%H:%M:%S)}" && \
    CGO_ENABLED=0 GOOS="${TARGETOS}" GOARCH="${TARGETARCH}" go build -trimpath \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=docker \
        -X github.com/prometheus/common/version.BuildDate=${BUILDDATE}" \
      -o /out/metastudio_exporter .

# Final stage: no shell, no libc; the binary is static.
FROM gcr.io/distroless/static-debian12:nonroot

LABEL org.opencontainers.image.title="metastudio_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Huawei Cloud MetaStudio tasks" \
      org.opencontainers.image.source="https://github.com/metastudio-exporter/metastudio_exporter"

COPY --from=build /out/metastudio_exporter /bin/metastudio_exporter
COPY examples/config.yml /etc/metastudio_exporter/config.yml

# nobody
USER 65534
EXPOSE 39107
ENTRYPOINT ["/bin/metastudio_exporter"]
CMD ["--config.file=/etc/metastudio_exporter/config.yml"]
