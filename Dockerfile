# The packsync agent image, for the Helm chart in charts/ (stackstorm-k8s sites).
#
#   docker build -t packsync:0.1.0 .
#
# The agent builds pack virtualenvs with StackStorm's Python, so the runtime stage is a Debian
# with the same Python minor as the st2 images (3.11 on bookworm here; set PYTHON_IMAGE to match
# your st2 image), pip and git-free: packsync reads Git repos through libgit2, linked in.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin packsync

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --home-dir /var/lib/packsync --shell /usr/sbin/nologin packsync \
    && mkdir -p /var/lib/packsync /etc/packsync \
    && chown packsync /var/lib/packsync
COPY --from=build /src/target/release/packsync /usr/local/bin/packsync
USER 10001
ENV PACKSYNC_CONFIG=/etc/packsync/packsync.toml
EXPOSE 9101
ENTRYPOINT ["/usr/local/bin/packsync"]
CMD ["run", "--log-format", "json"]
