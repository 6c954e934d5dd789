package server

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// registerVersions serves $versions, which tells a client the FHIR
// versions the fhirVersion parameter of a media type may name here, and
// the one served when it names none (https://hl7.org/fhir/R4/capabilitystatement-operation-versions.html).
func (a *api) registerVersions() {
	a.addOperation(operation{
		name:       "versions",
		definition: "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions",
		levels:     systemLevel,
		idempotent: true,
		handle: func(c *gin.Context, _ invocation) {
			writeFHIR(c, http.StatusOK, versionsBody)
		},
	})
}

// versionsBody is the answer of $versions: one version, R4, the default.
var versionsBody = []byte(`{"resourceType":"Parameters","parameter":[` +
	`{"name":"version","valueCode":"` + servedVersion + `"},` +
	`{"name":"default","valueCode":"` + servedVersion + `"}]}`)
