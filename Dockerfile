# danegate container image: a multi-stage build; the final image holds the
# binary, the CA-less runtime it needs and nothing else, and runs as an
# unprivileged user.
#   docker build -t danegate .
#   docker run --rm -p 10025:10025 -v $PWD/danegate.toml:/etc/danegate/danegate.toml:ro danegate
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
    && strip target/release/danegate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/danegate /usr/local/bin/danegate
COPY config/danegate.toml /etc/danegate/danegate.toml
USER nonroot:nonroot
EXPOSE 10025 9425
ENTRYPOINT ["/usr/local/bin/danegate"]
CMD ["run", "--config", "/etc/danegate/danegate.toml"]
