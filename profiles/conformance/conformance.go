// Package conformance embeds the conformance resources that package profiles
// validates against besides the R4 base definitions in fhir/definitions: the
// R4 core extensions, the R4 terminology the definitions bind to, and UK Core
// (see README.md for their sources and licences).
package conformance

import "embed"

// FS holds r4-extensions.json.gz, r4-terminology.json.gz and ukcore.json.gz,
// each a collection Bundle of JSON resources.
//
// They are vendored data, not generated code: they are refreshed by hand from
// the published FHIR R4 and UK Core packages with
//
//	go run ./profiles/internal/vendorgen -shared DIR -out .
//
// run from the repository root, DIR holding the unpacked sources.
//
//go:embed *.json.gz
var FS embed.FS
