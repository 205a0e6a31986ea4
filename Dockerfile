# Signal Factory: one image for every program (sf-api, sf-worker,
# sf-scheduler, sf-migrate, sfctl), built in three stages:
#   build    debian:bookworm with the compiler and the -dev packages;
#   base     debian:bookworm-slim with the runtime libraries only and the
#            non-root user 10001 (the uid the Kubernetes manifests run as);
#   ops      base + pg_dump/pg_restore 15, the AWS CLI and the backup scripts
#            (the backup CronJob's image: --target ops);
#   runtime  base + the programs and the migrations: the default target.
# scripts/build-image builds it (podman or docker); the Kubernetes pods pick
# the program with `command:`; CMD runs sf-api.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libpq-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev \
      libmicrohttpd-dev libssl-dev \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
WORKDIR /src
# Only what CMakeLists.txt needs without the tests (.dockerignore keeps the
# rest out of the context).
COPY CMakeLists.txt ./
COPY shared/ shared/
COPY api/ api/
COPY scheduler/ scheduler/
COPY worker/ worker/
COPY sfctl/ sfctl/
COPY migrate/ migrate/
COPY bench/ bench/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSF_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
      --target sf-api sf-worker sf-scheduler sf-migrate sfctl \
 && mkdir -p /out \
 && cd /build \
 && install -m 0755 -s sf-api sf-worker sf-scheduler sf-migrate sfctl /out/

FROM debian:bookworm-slim AS base
# Runtime libraries only: libpq, hiredis, jansson, libcurl (webhooks, with
# the CA bundle), libmicrohttpd and OpenSSL's libcrypto. apt-get clean: a
# base without Docker's apt clean-up hook would keep the downloaded .debs.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpq5 libhiredis0.14 libjansson4 libcurl4 libmicrohttpd12 libssl3 \
      ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --system --gid 10001 sf \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin sf
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="signal-factory" \
      org.opencontainers.image.description="Signal Factory backtest farm: sf-api, sf-worker, sf-scheduler, sf-migrate, sfctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.vendor="Signal Factory" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
ENV LANG=C.UTF-8

FROM base AS ops
# The backup CronJob: scripts/backup-db and scripts/restore-db need pg_dump
# and pg_restore of the server's major version (15) and the AWS CLI.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client-15 awscli \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --chmod=0755 scripts/backup-db scripts/restore-db scripts/backup-store.sh /usr/local/bin/
LABEL org.opencontainers.image.title="signal-factory-ops"
USER 10001:10001
CMD ["backup-db"]

FROM base AS runtime
COPY --from=build /out/ /usr/local/bin/
COPY migrations/ /usr/share/signal-factory/migrations/
# sf-migrate's built-in default is the build's source tree; the image's
# copy is here. sf-api listens on 3000 in the cluster (the Service maps 80).
ENV MIGRATIONS_DIR=/usr/share/signal-factory/migrations \
    PORT=3000
EXPOSE 3000
USER 10001:10001
CMD ["sf-api"]
