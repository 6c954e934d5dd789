//go:build unix

package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"carefhir/server"
	"carefhir/server/access"
	"carefhir/server/auth/authtest"
)

// BenchmarkReadSecured reads Patients by id through HTTP on an open server
// and on one that verifies a bearer token on every request and writes the
// audit trail, in the same run: the cost of security on the hottest path.
//
//	go test ./server/ -run '^$' -bench ReadSecured -benchtime 20000x
func BenchmarkReadSecured(b *testing.B) {
	const readSet = 10_000
	for _, clients := range benchClients {
		b.Run(fmt.Sprintf("open/clients=%d", clients), func(b *testing.B) {
			st := seedPatients(b, sqliteBenchStore(b), readSet)
			base, client := benchServer(b, st)
			runClients(b, clients, "reads", func(i int64) error {
				req, _ := http.NewRequest(http.MethodGet, base+"/Patient/"+benchID(i%readSet), nil)
				return send(client, req, http.StatusOK)
			})
		})
		for _, audit := range []bool{false, true} {
			name := map[bool]string{false: "token", true: "token+audit"}[audit]
			b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
				benchSecuredReads(b, clients, readSet, audit)
			})
		}
	}
}

// benchSecuredReads reads Patients with a bearer token, writing the audit
// trail when audit is set.
func benchSecuredReads(b *testing.B, clients, readSet int, audit bool) {
	st := seedPatients(b, sqliteBenchStore(b), readSet)
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String() + "/fhir"
	svc, idp := authtest.Service(b, externalIssuer, base)
	var auditor *access.Auditor
	if audit {
		auditor = access.NewAuditor(st, access.AuditConfig{Source: "bench"})
	}
	srv.Config.Handler = server.New(server.Config{Store: st, BaseURL: base, Auth: svc, Auditor: auditor,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), SoftwareVersion: "bench"})
	srv.Start()
	b.Cleanup(func() {
		srv.Close()
		if auditor != nil {
			auditor.Close()
		}
	})
	token := "Bearer " + idp.Sign(b, authtest.Claims(externalIssuer, base, map[string]any{"scope": "user/Patient.rs", "fhirUser": "Practitioner/p1"}))
	// Without gzip, which the benchmark clients do not ask for: the
	// figures are the server's own work, comparable from run to run.
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	runClients(b, clients, "reads", func(i int64) error {
		req, _ := http.NewRequest(http.MethodGet, base+"/Patient/"+benchID(i%int64(readSet)), nil)
		req.Header.Set("Authorization", token)
		return send(client, req, http.StatusOK)
	})
	if auditor == nil {
		return
	}
	auditor.Flush()
	if d := auditor.Dropped(); d > 0 {
		b.Errorf("%d audit events dropped", d)
	}
	b.ReportMetric(float64(auditor.Written()), "events")
}
