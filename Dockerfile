# syntax=docker/dockerfile:1
# berth's container image: static binaries on an empty (scratch) base, a
# numeric non-root user, no shell. make image builds the same image without a
# Docker engine (test/imagebuild; TestImageMatchesDockerfile keeps the two in
# step). docs/deploy/image.md.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#     --build-arg CREATED=$(date -u -d @$(git log -1 --format=%ct) +%Y-%m-%dT%H:%M:%SZ) -t berth .

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS TARGETARCH VERSION=dev COMMIT=unknown SOURCE_DATE_EPOCH=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The binaries of scripts/release.sh (its list, its flags), cross-compiled on
# the build platform; the same base files as test/imagebuild.
RUN VERSION=$VERSION COMMIT=$COMMIT SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH \
      scripts/release.sh /out $TARGETOS/$TARGETARCH \
 && mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /rootfs/tmp /data \
 && cp /out/${TARGETOS}_${TARGETARCH}/* /rootfs/usr/local/bin/ \
 && cp -R deploy/image/rootfs/. /rootfs/ \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=dev COMMIT=unknown CREATED=1970-01-01T00:00:00Z
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /data /data
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="An OCI container registry with OIDC workload identity and CEL access policies" \
      org.opencontainers.image.source="https://github.com/berth-registry/berth" \
      org.opencontainers.image.url="https://github.com/berth-registry/berth" \
      org.opencontainers.image.documentation="https://github.com/berth-registry/berth/blob/main/docs/deploy/image.md" \
      org.opencontainers.image.vendor="berth" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}"
ENV PATH=/usr/local/bin
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 5000/tcp
ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["serve", "-c", "/etc/berth/config.toml"]
