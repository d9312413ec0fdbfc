# syntax=docker/dockerfile:1
#
# sser: build once in the Rust image, run from a slim Debian with only the
# binary, CA certificates (for Let's Encrypt and outbound TLS) and two small
# scripts. A drop-in for SSER's image:
#
#   docker run --env-file .env -p 80:80 -p 443:443 --name sser \
#     -v ./_config:/_config -v ./_storage:/_storage sser
#
# The server reads _config/ (base.yaml, $APP_ENV.yaml, certs/) and _storage/
# relative to its working directory, which is /, exactly where SSER's
# documented volumes are mounted.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The registry and target caches persist across builds (BuildKit), so a
# source change recompiles only sser itself. target/ is a cache mount, so
# the binary is copied out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sser \
 && install -D -m 0755 target/release/sser /out/sser

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates is left unpinned on purpose: it should be the newest.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sser \
 && useradd --system --uid 10001 --gid sser --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin sser \
 && mkdir -p /_config/certs /_storage \
 && chown -R sser:sser /_config /_storage
COPY --from=build /out/sser /usr/local/bin/sser
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/docker-entrypoint
COPY --chmod=0755 docker/healthcheck.sh /usr/local/bin/sser-healthcheck
COPY LICENSE /usr/share/doc/sser/LICENSE

WORKDIR /
# 8889/8888: plain and TLS listeners by default (PORT, SSLPORT);
# 80/443: SSER's production settings. A non-root process can bind 80 and
# 443 in Docker >= 20.10, which sets net.ipv4.ip_unprivileged_port_start=0
# in the container's network namespace.
EXPOSE 8889 8888 80 443

# Starts as root only to hand the mounted /_storage and /_config/certs to
# the `sser` user (uid 10001), then runs sser as that user (see
# docker/entrypoint.sh). `docker run --user 10001:10001` skips that step.
ENTRYPOINT ["docker-entrypoint"]
CMD ["sser"]

# No curl in the image: the check speaks HTTP through bash's /dev/tcp.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["sser-healthcheck"]

LABEL org.opencontainers.image.title="sser" \
      org.opencontainers.image.description="Server-Sent Events pub/sub server, API-compatible with SSER" \
      org.opencontainers.image.licenses="AGPL-3.0-only"
