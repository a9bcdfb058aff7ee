# syntax=docker/dockerfile:1
# Multi-stage build of the agora release binary into a slim runtime image.

FROM rust:1.95-slim-bookworm AS build
# libclang: RocksDB's bindgen; clang + mold: the linker setup in .cargo/config.toml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev clang mold g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild RocksDB and DataFusion.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
# The manifest declares a criterion bench, so cargo wants its file to exist: a stub will do
# (benchmarks are not built into the image).
RUN mkdir src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/policy_decisions.rs \
 && cargo build --release --locked --bin agora \
 && rm -rf src
COPY src src
COPY ontologies ontologies
COPY policies policies
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin agora

# The web UI's SPARQL editor bundle (CodeMirror 6 from npm, bundled by esbuild). Without it the
# node still serves every page; the editor is then a plain textarea.
FROM node:20-bookworm-slim AS ui
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ui/build.sh ./
COPY ui/src src
RUN ./build.sh

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/agora --create-home agora
COPY --from=build /src/target/release/agora /usr/local/bin/agora
COPY connectors /usr/share/agora/connectors
COPY policies /usr/share/agora/policies
COPY --from=ui /ui/dist /usr/share/agora/ui
USER agora
WORKDIR /var/lib/agora
ENV AGORA_DATA_DIR=/var/lib/agora/data \
    AGORA_CONNECTORS_DIR=/usr/share/agora/connectors \
    AGORA_UI_DIR=/usr/share/agora/ui \
    AGORA_BIND=0.0.0.0:8080 \
    AGORA_PUBLIC_URL=http://localhost:8080
VOLUME ["/var/lib/agora/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/agora"]
CMD ["serve"]
