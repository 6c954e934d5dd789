// Package definitions embeds the vendored FHIR R4 4.0.1 definitions (see
// README.md): the StructureDefinitions of the data types and resources, the
// standard SearchParameters and the Patient CompartmentDefinition.
package definitions

import "embed"

// FS holds profiles-types.json.gz, profiles-resources.json.gz,
// search-parameters.json.gz and compartmentdefinition-patient.json.
//
//go:embed *.json.gz *.json
var FS embed.FS
