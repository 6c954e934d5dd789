// Package conformance embeds the conformance resources that package profiles
// validates against besides the R4 base definitions in fhir/definitions: the
// R4 core extensions, the R4 vital signs profiles, the R4 terminology the
// definitions bind to, and UK Core (see README.md for their sources and
// licences); and the R4 OperationDefinitions, which the server serves
// (the validator has no use for them).
package conformance

import (
	"embed"
	"io/fs"

	"carefhir/fhir/definitions"
)

// FS holds r4-extensions.json.gz, r4-vitalsigns.json.gz,
// r4-terminology.json.gz, r4-operations.json.gz and ukcore.json.gz, each a
// collection Bundle of JSON resources.
//
// They are vendored data, not generated code: they are refreshed by hand from
// the published FHIR R4 and UK Core packages with
//
//	go run ./profiles/internal/vendorgen -shared DIR -others FILE -v2 TABLES -out .
//
// run from the repository root, DIR holding the unpacked sources, FILE
// the R4 profiles-others.json and TABLES the R4 v2-tables.json.
//
//go:embed *.json.gz
var FS embed.FS

// Bundle is one file of bundled conformance resources.
type Bundle struct {
	FS   fs.FS
	Name string
}

// Bundles returns every file of bundled conformance resources, base
// definitions first. Package profiles validates against them and Load
// serves them: one list, so that both always hold the same resources.
func Bundles() []Bundle {
	return []Bundle{
		{definitions.FS, "profiles-types.json.gz"},
		{definitions.FS, "profiles-resources.json.gz"},
		{FS, "r4-extensions.json.gz"},
		{FS, "r4-vitalsigns.json.gz"},
		{FS, "r4-terminology.json.gz"},
		{FS, "r4-operations.json.gz"},
		{FS, "ukcore.json.gz"},
	}
}
