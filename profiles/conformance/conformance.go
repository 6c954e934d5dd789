// Package conformance embeds the conformance resources that package profiles
// validates against besides the R4 base definitions in fhir/definitions: the
// R4 core extensions, the R4 terminology the definitions bind to, and UK Core
// (see README.md for their sources and licences).
package conformance

import "embed"

// FS holds r4-extensions.json.gz, r4-terminology.json.gz and ukcore.json.gz,
// each a collection Bundle of JSON resources.
//
//go:generate go run ../internal/vendorgen -shared ../../../shared -out ../..
//go:embed *.json.gz
var FS embed.FS
