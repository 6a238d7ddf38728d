# syntax=docker/dockerfile:1
# The image `npm run image` builds, for Docker/BuildKit users:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg SOURCE_COMMIT="$(git rev-parse HEAD)" -t ghcr.io/sensorlet/sensorlet:0.1.0 .
# The builder writes the image's root filesystem with the same script and inputs as `npm run image`
# (node dist/cmd/release/main.js rootfs), and the final stage has the same configuration. The
# files and the config are the same; the digest is not (BuildKit makes its own layers). Releases are
# built with `npm run image` (.github/workflows/release.yml), which is reproducible.
FROM --platform=$BUILDPLATFORM node:24-bookworm AS build
ARG TARGETARCH
ARG SOURCE_COMMIT=unknown
RUN dpkg --add-architecture amd64 && dpkg --add-architecture arm64 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils binutils-x86-64-linux-gnu binutils-aarch64-linux-gnu
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && node dist/cmd/release/main.js rootfs --arch "$TARGETARCH" --out /rootfs

FROM scratch
ARG SOURCE_COMMIT=unknown
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/var/lib/sensorlet/ /var/lib/sensorlet/
USER 65532:65532
ENV PATH=/usr/lib/sensorlet/node/bin:/usr/bin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /var/lib/sensorlet
ENTRYPOINT ["/usr/lib/sensorlet/node/bin/node", "--max-semi-space-size=1", "--max-old-space-size=512", "--v8-pool-size=2", "/usr/lib/sensorlet/dist/cmd/sensorlet/main.js"]
CMD ["run", "--manifests", "/etc/sensorlet/manifests", "--state-dir", "/var/lib/sensorlet"]
LABEL org.opencontainers.image.title="sensorlet" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${SOURCE_COMMIT}" \
      org.opencontainers.image.source="https://github.com/sensorlet/sensorlet" \
      org.opencontainers.image.url="https://github.com/sensorlet/sensorlet" \
      org.opencontainers.image.licenses="Apache-2.0"
