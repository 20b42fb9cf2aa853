# kproxy image for amd64 and arm64:
#   docker buildx build --platform linux/amd64,linux/arm64 -t kproxy .
# Each platform builds natively (buildx runs arm64 under QEMU when needed).

FROM node:22-bookworm AS build
RUN curl -fsSL https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY package.json package-lock.json Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY ts ./ts
COPY bin ./bin
COPY tsconfig.json ./
RUN cargo fetch --locked \
 && npm ci --no-audit --no-fund \
 && npm prune --omit=dev

FROM node:22-bookworm-slim
# nftables and iproute2 are for operators' debugging; kproxy itself speaks netlink.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iproute2 conntrack \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/kproxy
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/native ./native
COPY --from=build /src/bin ./bin
COPY LICENSE README.md ./
ENTRYPOINT ["node", "--max-semi-space-size=2", "/opt/kproxy/bin/kproxy.js"]
