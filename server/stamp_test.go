package server_test

import (
	"strings"
	"testing"
	"time"

	"carefhir/server"
)

// Stamp changes a stored version's meta.lastUpdated alone, and leaves the
// bytes of the server's own records, which are no resources, as they are.
func TestStampChangesLastUpdatedAlone(t *testing.T) {
	body := `{"resourceType":"Patient","id":"p","meta":{"versionId":"2","lastUpdated":"2024-03-01T10:00:00.000Z"},"name":[{"family":"Smith","given":["Ann"]}],"birthDate":"1950-01-02"}`
	got, err := server.Stamp("Patient", []byte(body), time.Date(2024, 3, 1, 10, 5, 0, 0, time.UTC))
	if want := strings.Replace(body, "10:00:00.000Z", "10:05:00.000Z", 1); err != nil || string(got) != want {
		t.Errorf("Stamp: %s, %v; want %s", got, err, want)
	}
	record := `{"holder":"a"}`
	if got, err := server.Stamp("NotifyClaim", []byte(record), time.Now()); err != nil || string(got) != record {
		t.Errorf("Stamp of a record: %s, %v; want it unchanged", got, err)
	}
}
