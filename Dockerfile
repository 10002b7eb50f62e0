# danegate container image: a multi-stage build; the final image holds the
# binary, the CA-less runtime it needs and nothing else, and runs as an
# unprivileged user.
#   docker build -t danegate .
#   docker run --rm -p 10025:10025 -v $PWD/danegate.toml:/etc/danegate/danegate.toml:ro \
#       -v danegate-state:/var/lib/danegate danegate
FROM rust:1-bookworm AS build
# The legacy TLS engine links the system's OpenSSL (libssl3 is in the
# runtime image below).
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
# The test targets are not built, but Cargo wants their paths to exist.
COPY tests ./tests
COPY integration ./integration
RUN cargo build --release --locked --bin danegate \
    && strip target/release/danegate \
    && mkdir -p /state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/danegate /usr/local/bin/danegate
COPY config/danegate.toml /etc/danegate/danegate.toml
# [state] dir: cached MTA-STS policies, which must survive restarts.
# Owned by the unprivileged user; mount a volume here to keep it across
# container replacements (the system trust store, which MTA-STS
# validates against, is the base image's /etc/ssl/certs).
COPY --from=build --chown=nonroot:nonroot --chmod=0700 /state /var/lib/danegate
VOLUME /var/lib/danegate
USER nonroot:nonroot
EXPOSE 10025 9425
ENTRYPOINT ["/usr/local/bin/danegate"]
CMD ["run", "--config", "/etc/danegate/danegate.toml"]
