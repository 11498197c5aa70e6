# syntax=docker/dockerfile:1
#
# cgroup-psi-exporter container image.
#
#   docker build -t cgroup-psi-exporter .
#   docker run -d --name cgroup-psi-exporter --pid=host -p 9753:9753 \
#     -v /proc:/host/proc:ro -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro \
#     --read-only --cap-drop=ALL --cap-add=DAC_READ_SEARCH --cap-add=SYS_PTRACE \
#     --security-opt=no-new-privileges \
#     cgroup-psi-exporter --path.procfs=/host/proc --path.cgroupfs=/host/sys/fs/cgroup
#
# See docs/deployment.md for PSI rules (cgroupfs mounted read-write) and the
# capability table.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Manifests first: the dependency download is cached while only src/ changes.
COPY Cargo.toml Cargo.lock ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo fetch --locked
COPY . .
# scripts/build-release: the release profile, statically linked against
# glibc (static-pie): no shared library mapped at run time, ~1.6 MiB less
# RSS (README, Performance).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bin=$(scripts/build-release) \
 && install -D -m 0755 "$bin" /out/cgroup-psi-exporter \
 && /out/cgroup-psi-exporter --help >/dev/null

# distroless/cc: glibc's files (nsswitch.conf, the static binary's name
# resolution reads it; "files dns" are built into static glibc) and
# libgcc, no shell, no package manager. The public
# CA roots for HTTPS are compiled into the binary (webpki-roots); a private
# CA comes from alerting.tls_config.ca_file or, for the kubelet, the service
# account's ca.crt.
FROM gcr.io/distroless/cc-debian12
LABEL org.opencontainers.image.title="cgroup-psi-exporter" \
      org.opencontainers.image.description="Prometheus exporter for cgroup usage, limits and PSI pressure, with a PSI-trigger alerting agent" \
      org.opencontainers.image.source="https://github.com/cgroup-psi-exporter/cgroup-psi-exporter" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/cgroup-psi-exporter /usr/local/bin/cgroup-psi-exporter
# USER: the image runs as root (uid 0) on purpose. The files it reads, every
# cgroup's stat files and other users' /proc/<pid>/*, are owned by root on
# the host, and PSI triggers are armed by writing to root-owned *.pressure
# files; a non-root uid could read only part of them and arm none. Contain
# it with capabilities instead: drop ALL and add back DAC_READ_SEARCH and
# SYS_PTRACE (plus SYS_RESOURCE only for PSI windows that are not multiples
# of 2s), a read-only root file system and no-new-privileges. For a
# metrics-only deployment that skips other users' processes (no namespace
# metrics) you may run as a non-root uid that has read access to cgroupfs:
#   USER 65532:65532
EXPOSE 9753
ENTRYPOINT ["/usr/local/bin/cgroup-psi-exporter"]
