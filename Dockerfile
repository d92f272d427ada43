# The packsync agent image, for the Helm chart in charts/packsync (stackstorm-k8s sites).
#
#   docker build --build-arg ST2_IMAGE=stackstorm/st2actionrunner:3.9 \
#       -t registry.example/packsync:0.1.0 .
#
# The runtime image is StackStorm's own, the version of the stackstorm-k8s release: a pack
# virtualenv links to the interpreter that built it (/opt/stackstorm/st2/bin/python3, packsync's
# default), and StackStorm's pods run it with theirs; the same image gives the same path and the
# same Python minor. The binary is static (musl), so it runs on whatever distribution the st2
# image is built on; it reads Git through libgit2, linked in.
ARG RUST_IMAGE=rust:1.95-alpine
ARG ST2_IMAGE=stackstorm/st2actionrunner:3.9

FROM ${RUST_IMAGE} AS build
# C toolchain for libgit2, zlib and aws-lc (rustls' crypto), all built in and linked statically.
RUN apk add --no-cache musl-dev cmake make perl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin packsync

FROM ${ST2_IMAGE}
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin packsync \
    && mkdir -p /etc/packsync
COPY --from=build /src/target/release/packsync /usr/local/bin/packsync
# The st2 CLI adapter (`registered`, `purge`) and the test gate of the reference site config.
COPY packaging/st2/packsync-st2 packaging/st2/packsync-pack-tests /usr/local/lib/packsync/
USER 10001
ENV PACKSYNC_CONFIG=/etc/packsync/packsync.toml
EXPOSE 9101
ENTRYPOINT ["/usr/local/bin/packsync"]
CMD ["run", "--log-format", "json"]
