# kproxy's image, for users with Docker (BuildKit):
#   docker buildx build --platform linux/amd64,linux/arm64 -t kproxy .
# FROM scratch: Debian's runtime libraries, iptables, kmod, Node from the npm registry and
# /opt/kproxy, running as uid 65532 with CAP_NET_ADMIN as a file capability on node. It is the
# layout scripts/image/build.sh makes with buildah: both run scripts/image/stage-app.sh and
# rootfs.sh, and tests/image/ compares the two images' files and configs.
#
# APP=prebuilt takes /opt/kproxy already staged in build/image/app-<arch> (stage-app.sh)
# instead of compiling it here; CI builds that way, with buildah, as rustup is out of its reach.
ARG APP=compiled

# Compiles the addon natively for the target platform (buildx runs arm64 under QEMU).
FROM docker.io/library/node:24-bookworm AS compiled
ARG TARGETARCH
RUN curl -fsSL https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN cargo fetch --locked \
 && npm ci --no-audit --no-fund \
 && bash scripts/image/stage-app.sh "$TARGETARCH" /app

FROM scratch AS prebuilt
ARG TARGETARCH
COPY build/image/app-${TARGETARCH}/ /app/

FROM ${APP} AS app

# Runs on the build platform: rootfs.sh fetches the target's packages with apt, so no emulation.
FROM --platform=$BUILDPLATFORM docker.io/library/debian:bookworm AS rootfs
ARG TARGETARCH
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends curl ca-certificates libcap2-bin >/dev/null \
 && if [ "$TARGETARCH" != "$(dpkg --print-architecture)" ]; then dpkg --add-architecture "$TARGETARCH" && apt-get update -qq; fi
COPY scripts/image/rootfs.sh /usr/local/bin/kproxy-rootfs.sh
COPY --from=app /app /app
RUN bash /usr/local/bin/kproxy-rootfs.sh "$TARGETARCH" /app /rootfs

FROM scratch
COPY --from=rootfs /rootfs/ /
USER 65532:65532
WORKDIR /opt/kproxy
ENV PATH=/usr/sbin:/usr/bin NODE_ENV=production
LABEL org.opencontainers.image.title=kproxy org.opencontainers.image.licenses=Apache-2.0 org.opencontainers.image.version=0.1.0
ENTRYPOINT ["/usr/bin/node", "--max-semi-space-size=2", "/opt/kproxy/bin/kproxy.js"]
