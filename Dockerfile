# syntax=docker/dockerfile:1
# flux-metrics-api in a Flux image.
#
#   docker build -t flux-metrics-api .
#   docker run --rm -p 8443:8443 flux-metrics-api
#   curl -k https://localhost:8443/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count
#
# `docker run` starts a small Flux instance in the container (`flux start --test-size=2`, two
# brokers) whose initial program is `flux-metrics-api start`, so the server reads that instance's
# state and listens on 0.0.0.0:8443 with a certificate generated at start. Arguments replace
# `start`: `docker run --rm IMAGE get` prints the metrics once; with certificates of
# `flux-metrics-api certs --out certs`:
#   docker run --rm -p 8443:8443 -v "$PWD/certs:/certs:ro" IMAGE \
#     start --ssl-certfile /certs/tls.crt --ssl-keyfile /certs/tls.key
#
# Where libflux-core is found (--flux-core-lib, or the FLUX_CORE_LIB environment variable):
# - in this image: /usr/lib/libflux-core.so.2, the flux-core of the base image, which the dynamic
#   loader finds with no setting;
# - in a Flux Operator MiniCluster (manifests/minicluster.yaml runs this image): the broker is the
#   Flux that the operator copies into /mnt/flux/view, so pass
#   --flux-core-lib /mnt/flux/view/lib/libflux-core.so.2 and the server speaks the broker's own
#   version (the image's copy would be found otherwise);
# - the binary copied anywhere else (into a Flux Operator view, say): it needs glibc 2.31 or later
#   (it is built on Debian bullseye) and the libflux-core.so.2 of the broker it talks to.
# The binary links glibc dynamically, never static musl: it loads libflux-core with dlopen, which
# a static musl binary cannot do.

# Bullseye's glibc (2.31) is no newer than that of the Flux images the binary runs on (Ubuntu
# focal 2.31, jammy 2.35, noble 2.39; Debian bookworm 2.36). rustup installs the toolchain that
# rust-toolchain.toml pins.
ARG RUST_IMAGE=rust:1.95-slim-bullseye
ARG FLUX_IMAGE=fluxrm/flux-core:jammy

FROM ${RUST_IMAGE} AS builder
# .dockerignore leaves out .git, so the commit `version` and /version report comes in here:
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t flux-metrics-api .
# SOURCE_DATE_EPOCH (seconds) fixes the build date they report, for reproducible images.
ARG GIT_COMMIT=
ARG SOURCE_DATE_EPOCH=
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    FLUX_METRICS_GIT_COMMIT="${GIT_COMMIT}" SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH}" \
    cargo build --release --locked --bin flux-metrics-api \
 && cp target/release/flux-metrics-api /usr/local/bin/flux-metrics-api

FROM ${FLUX_IMAGE}
COPY --from=builder /usr/local/bin/flux-metrics-api /usr/local/bin/flux-metrics-api
# The unprivileged user of the Flux images; a Flux Operator MiniCluster runs the container as
# root instead (manifests/minicluster.yaml says why).
USER fluxuser
WORKDIR /home/fluxuser
EXPOSE 8443
ENTRYPOINT ["flux", "start", "--test-size=2", "/usr/local/bin/flux-metrics-api"]
CMD ["start"]
