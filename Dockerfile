# syntax=docker/dockerfile:1

# Build a static carefhir binary.
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a change to the source reuses their layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/carefhir ./cmd/carefhir \
 && mkdir -p /out/data

# Run it as a non-root user on an image with nothing else in it.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/carefhir /usr/local/bin/carefhir
# An empty /data owned by the runtime user, so a fresh volume is writable.
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot:nonroot
VOLUME /data
EXPOSE 8080
# Set CAREFHIR_MONGO_URI (e.g. docker run -e CAREFHIR_MONGO_URI=mongodb://db:27017/carefhir)
# to serve from MongoDB instead of the SQLite files in /data.
# On 0.0.0.0 the server refuses to start without an auth file (docs/security.md):
# run it with e.g. serve --addr 0.0.0.0:8080 --data /data --auth /data/auth.yaml
# --base-url https://fhir.example.nhs.uk/fhir, or knowingly --insecure-no-auth.
ENTRYPOINT ["/usr/local/bin/carefhir"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--data", "/data"]
