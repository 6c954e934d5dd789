// Package definitions embeds the vendored FHIR R4 4.0.1 definitions (see
// README.md): the StructureDefinitions of the data types and resources, the
// standard SearchParameters and the Patient CompartmentDefinition.
package definitions

import (
	"compress/gzip"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// FS holds profiles-types.json.gz, profiles-resources.json.gz,
// search-parameters.json.gz and compartmentdefinition-patient.json.
//
//go:embed *.json.gz *.json
var FS embed.FS

// DecodeJSON decodes the named JSON file of fsys into v, gunzipping it
// first when its name ends in .gz. It serves FS and the other embedded
// definition sets alike.
func DecodeJSON(fsys fs.FS, name string, v any) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
