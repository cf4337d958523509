# The claudemesh broker as a container image: one static binary on an empty
# base (no shell, no package manager), CA certificates, a non-root user and
# a /data volume for the embedded SQLite. See docs/DEPLOY.md.
#
#   docker build -t claudemesh-broker .            # compiles in a golang stage
#   podman build --format docker -t claudemesh-broker .
#
# A host that cannot pull the golang image builds the binary itself and
# passes it in (this is what the tests do):
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$V" -o dist/claudemesh-broker ./cmd/claudemesh-broker
#   cp /etc/ssl/certs/ca-certificates.crt dist/
#   podman build --format docker --build-arg BINARY_FROM=prebuilt --build-arg VERSION=$V -t claudemesh-broker .
#
# --format docker keeps the HEALTHCHECK, which the OCI image format drops.

# Which stage supplies /out/claudemesh-broker and /out/ca-certificates.crt:
# "build" compiles from source, "prebuilt" copies dist/ from the context.
ARG BINARY_FROM=build
ARG GO_VERSION=1.26.8

FROM docker.io/library/golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: the embedded SQLite is pure Go, so the binary needs no libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/claudemesh-broker ./cmd/claudemesh-broker \
 && cp /etc/ssl/certs/ca-certificates.crt /out/

FROM scratch AS prebuilt
COPY dist/claudemesh-broker dist/ca-certificates.crt /out/

FROM ${BINARY_FROM} AS binary

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="claudemesh-broker" \
      org.opencontainers.image.description="Broker for end-to-end encrypted Claude Code meshes (HTTP, SSE, WebSocket)" \
      org.opencontainers.image.source="https://github.com/claudemesh/claudemesh-go" \
      org.opencontainers.image.documentation="https://github.com/claudemesh/claudemesh-go/blob/main/docs/DEPLOY.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY deploy/image/passwd deploy/image/group /etc/
COPY --from=binary /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binary /out/claudemesh-broker /claudemesh-broker
# The only writable place: the embedded SQLite lives here unless
# DATABASE_URL points at PostgreSQL.
COPY --chown=10001:10001 deploy/image/data/ /data/
ENV CLAUDEMESH_SQLITE_PATH=/data/claudemesh.db
VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 7900
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/claudemesh-broker", "healthcheck"]
ENTRYPOINT ["/claudemesh-broker"]
CMD ["serve"]
