# syntax=docker/dockerfile:1

# The deployable dchan node: the pingpong example program, as a static binary
# on a distroless base with no shell and no package manager.
#
#   docker build -t pingpong .
#   docker run --rm -p 7001:7001 -v dchan-data:/var/lib/dchan pingpong
#
# Base images are pinned to exact tags so that a rebuild of the same commit
# gets the same toolchain; for byte-for-byte reproducible images, pin them by
# digest as well (name:tag@sha256:...). Bump the Go tag together with go.mod.

FROM golang:1.26.8 AS build
# The image's Go is the one wanted: never switch to a toolchain named by a
# go.mod line (that would download one during the build).
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src

# Modules first, in their own layer, so that editing source does not
# download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/pingpong ./cmd/pingpong

# grpc_health_probe serves exec health probes where the platform's own gRPC
# probe cannot be used: Kubernetes' built-in gRPC probe speaks plaintext only,
# so a cluster running with mutual TLS probes through this binary instead.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOBIN=/out go install -trimpath -ldflags="-s -w" github.com/grpc-ecosystem/grpc-health-probe@v0.4.63 \
    && mv /out/grpc-health-probe /out/grpc_health_probe

# The data directory is created here because the runtime image has no shell
# to create it; it is copied below with the runtime user as its owner, so a
# fresh named volume mounted there starts out writable by that user.
RUN mkdir -p /out/data

# static-debian12 carries CA certificates, tzdata and /etc/passwd entries,
# nothing else; the :nonroot variant's user is 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pingpong /out/grpc_health_probe /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /var/lib/dchan
# Numeric, so that Kubernetes' runAsNonRoot can verify it without a passwd
# lookup.
USER 65532:65532
VOLUME ["/var/lib/dchan"]
# One port carries everything: messages, Raft, the health service.
EXPOSE 7001
ENTRYPOINT ["/usr/local/bin/pingpong"]
# Run one node until SIGTERM. Its ID is created on first start and kept in
# the data directory; add -join (and -bootstrap-expect) to form a cluster.
CMD ["-listen", "0.0.0.0:7001", "-data", "/var/lib/dchan", "-d", "0"]
