# syntax=docker/dockerfile:1
#
# timguard's container image: a static binary on distroless, running as a
# non-root user. docs/operating.md explains how to run it.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t timguard .
#   docker run --rm -p 8080:8080 timguard          # the example config, embedded store
#
# The image has no shell and no HEALTHCHECK: probe GET /healthz (alive) and
# GET /readyz (rules loaded, store reachable) from the orchestrator or the
# load balancer.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a change of source code does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit for the platform being built (docker buildx build --platform).
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bot ./cmd/bot \
 && mkdir -p /out/etc/timguard /out/var/lib/timguard \
 && cp config.example.yaml /out/etc/timguard/config.yaml \
 && cp -r config.example.yaml rules.example.yaml lists /out/etc/timguard/

# distroless/static has CA certificates (for the HTTPS REST API), tzdata and
# /etc/passwd with the nonroot user (65532), and nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bot /usr/local/bin/bot
COPY --from=build /out/etc/timguard/ /etc/timguard/
# A home for state_dir that the nonroot user owns; a volume mounted here
# takes that ownership when it is first used.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/var/lib/timguard/ /var/lib/timguard/
USER 65532:65532
WORKDIR /etc/timguard
EXPOSE 8080
# SIGTERM stops gracefully (give it executor.shutdown_grace plus a few
# seconds: docker stop -t 30); SIGHUP reloads the config and rules.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bot"]
CMD ["serve", "--config", "/etc/timguard/config.yaml"]
