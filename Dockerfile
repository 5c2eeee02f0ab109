# syntax=docker/dockerfile:1
# The Federator image: one static binary (musl, rustls with ring: no OpenSSL, no libc at run time)
# on a distroless base, running as a non-root user.
#
#   docker build -t federator:dev .        (or: make image)

ARG RUST_VERSION=1.95
ARG ALPINE_VERSION=3.22

FROM docker.io/library/rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS build
# ring compiles a little C and assembly: musl's C toolchain is enough.
RUN apk add --no-cache musl-dev binutils
WORKDIR /src
COPY . .
# The binary must be static (no program interpreter): the build fails otherwise.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TERM_COLOR=never
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p federator --bin federator \
    && install -D -m 0755 target/release/federator /out/federator \
    && if readelf -l /out/federator | grep -q 'Requesting program interpreter'; then \
         echo "federator is not statically linked" >&2; exit 1; \
       fi \
    && /out/federator --version

# distroless/static: CA certificates, /etc/passwd with the nonroot user (65532), nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/federator /usr/local/bin/federator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/federator"]
CMD ["run"]
