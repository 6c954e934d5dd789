package operation

import "carefhir/fhir"

// An update whose content is that of its resource's current version (its
// meta.versionId and meta.lastUpdated aside) writes nothing, as HAPI FHIR
// does: the server answers 200 with the current version, and its
// OperationOutcome (in a transaction or batch response, the entry's
// response.outcome, whatever the Prefer header) carries an informational
// issue with this code, in HAPI FHIR's code system of storage outcomes.
const (
	StorageResponseCodes = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"
	UpdateNoChange       = "SUCCESSFUL_UPDATE_NO_CHANGE"
)

// Unchanged reports whether e, an entry of the transaction-response or
// batch-response Bundle that Store.Transaction returns, answers an update
// that wrote nothing because its content was the current version's.
func Unchanged(e *fhir.BundleEntry) bool {
	if e == nil || e.Response == nil {
		return false
	}
	oo, ok := e.Response.Outcome.(*fhir.OperationOutcome)
	if !ok {
		return false
	}
	for _, is := range oo.Issue {
		if is.Details == nil {
			continue
		}
		for _, c := range is.Details.Coding {
			if c.System.Get() == StorageResponseCodes && c.Code.Get() == UpdateNoChange {
				return true
			}
		}
	}
	return false
}
