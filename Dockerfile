# syntax=docker/dockerfile:1

# Build a static carefhir binary.
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a change to the source reuses their layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not in the build context, so Go cannot stamp the revision: the
# version and commit come as build arguments (see README.md, Docker) and
# are what `carefhir version` and the CapabilityStatement report. Without
# them the version is "(devel)".
ARG VERSION=
ARG COMMIT=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION} -X main.buildCommit=${COMMIT}" -o /out/carefhir ./cmd/carefhir \
 && mkdir -p /out/data

# Run it as a non-root user on an image with nothing else in it: no shell,
# no curl. The health check runs the binary itself.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/carefhir /usr/local/bin/carefhir
# An empty /data owned by the runtime user, so a fresh volume is writable.
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot:nonroot

# Every flag is also read from CAREFHIR_<FLAG> (--mongo-uri from
# CAREFHIR_MONGO_URI); a flag on the command line wins. The server listens
# on every interface of the container, so it serves only with an auth file
# (-e CAREFHIR_AUTH=/run/secrets/carefhir-auth.json, mounted) or with
# -e CAREFHIR_INSECURE_NO_AUTH=1, which says out loud that anyone who
# reaches the port may read and write every record: for a laptop, never for
# patient data. Without either it refuses to start.
ENV CAREFHIR_ADDR=0.0.0.0:8080 \
    CAREFHIR_DATA=/data

# /data holds the SQLite database (carefhir.db and its -wal and -shm files)
# and the token-signing keys (with an auth file), and with either engine the
# bulk export files: mount a named volume or a host directory there, or
# lose them with the container. With CAREFHIR_MONGO_URI set, the records
# and the signing keys are in MongoDB; replicas share one /data for the
# export files (docs/operations.md).
VOLUME /data
# The FHIR API under /fhir, /livez, /readyz and /metrics. Set
# CAREFHIR_METRICS_ADDR=0.0.0.0:9090 (and publish 9090 to the monitoring
# network only) to serve /metrics on a port of its own.
EXPOSE 8080

# carefhir probe asks /livez on CAREFHIR_ADDR's port through loopback, over
# HTTPS when CAREFHIR_TLS_CERT is set.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/carefhir", "probe"]

ENTRYPOINT ["/usr/local/bin/carefhir"]
CMD ["serve"]
