# syntax=docker/dockerfile:1
#
# One image per service from this one file:
#
#   docker build --build-arg SERVICE=ingest --build-arg VERSION=v1.2.3 -t auditstream/ingest:v1.2.3 .
#
# SERVICE is a directory under services/ with a main.go (ingest,
# datadog-forwarder, eventbridge-forwarder, otlp-forwarder, archiver, destinations-api,
# auditctl). `make images` builds them all. The result is a static binary
# (CGO_ENABLED=0, -trimpath) on
# distroless static, running as a non-root user; it writes nothing to its
# root filesystem, so it runs with a read-only one. /healthcheck URL is the
# probe docker-compose health checks use (there is no shell or curl).

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG SERVICE
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<name> (a directory under services/)"; exit 1; }
WORKDIR /src
COPY . .
# Each service module carries replace lines for proto/, services/internal and
# services/testsupport (which only its tests import), so it builds alone
# without the workspace (GOWORK=off).
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    test -f "services/${SERVICE}/main.go" || { echo "services/${SERVICE}/main.go not found"; exit 1; }; \
    cd "services/${SERVICE}" && \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath \
      -ldflags "-s -w -X github.com/auditstream/auditstream/services/internal/version.Version=${VERSION}" \
      -o /out/service . && \
    cd /src/services/internal && \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w" -o /out/healthcheck ./cmd/healthcheck && \
    mkdir -p /out/spool

FROM ${RUNTIME_IMAGE}
ARG SERVICE
ARG VERSION=dev
LABEL org.opencontainers.image.title="auditstream-${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/auditstream/auditstream"
COPY --from=build /out/service /service
COPY --from=build /out/healthcheck /healthcheck
# The archiver's spool; owned by the service user so a volume mounted here
# starts writable (Docker copies the ownership into a new named volume).
COPY --from=build --chown=65532:65532 /out/spool /var/lib/auditstream/spool
# distroless's nonroot user; numeric so runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/service"]
