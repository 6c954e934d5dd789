// Command vendorgen writes the conformance resources and test data that
// package profiles vendors, from a copy of the published sources:
//
//	go run ./profiles/internal/vendorgen -shared ../shared -others profiles-others.json -v2 v2-tables.json
//
// It writes, relative to the module root:
//
//   - profiles/conformance/r4-extensions.json.gz: the R4 core extension
//     StructureDefinitions;
//   - profiles/conformance/r4-vitalsigns.json.gz: the R4 vital signs profiles
//     (vitalsigns and the profiles derived from it, such as bp), from the R4
//     profiles-others.json, which the shared folder does not hold;
//   - profiles/conformance/r4-terminology.json.gz: the R4 and HL7 v3 ValueSets
//     reachable from a binding of a vendored definition, and the ValueSets and
//     CodeSystems they and the UK Core ValueSets include, HL7 v2 tables among
//     them (from the R4 v2-tables.json, which the shared folder does not
//     hold);
//   - profiles/conformance/r4-operations.json.gz: the R4 OperationDefinitions,
//     from the R4 profiles-resources.json;
//   - profiles/conformance/ukcore.json.gz: the UK Core StructureDefinitions,
//     ValueSets and CodeSystems, converted from XML;
//   - profiles/testdata/validator: the HL7 validator test cases (unchanged).
//
// Narrative text, and descriptive parts the validator never reads, are
// dropped to keep the embedded files small.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"carefhir/fhir/definitions"
	"carefhir/profiles/internal/xmljson"
)

func main() {
	shared := flag.String("shared", "../shared", "folder holding fhir-r4 and fixtures")
	others := flag.String("others", "", "the R4 profiles-others.json (or .json.gz), which holds the vital signs profiles")
	v2 := flag.String("v2", "", "the R4 v2-tables.json (or .json.gz), which holds the HL7 v2 tables")
	out := flag.String("out", ".", "module root to write into")
	flag.Parse()
	if *others == "" {
		// Without it r4-vitalsigns.json.gz, and the terminology its
		// profiles bind, would be dropped from the vendored files.
		log.Fatal("vendorgen: -others is required")
	}
	if *v2 == "" {
		// Without it the v2 tables UK Core and R4 value sets draw on
		// (v2-0131 for relationships...) would be dropped.
		log.Fatal("vendorgen: -v2 is required")
	}
	if err := run(*shared, *others, *v2, *out); err != nil {
		log.Fatal(err)
	}
}

type resource = map[string]any

func run(shared, others, v2, out string) error {
	conv, err := xmljson.New()
	if err != nil {
		return err
	}
	var ukcore []resource
	for _, dir := range []string{"structuredefinitions", "valuesets", "codesystems"} {
		files, err := filepath.Glob(filepath.Join(shared, "fixtures/uk-core", dir, "*.xml"))
		if err != nil {
			return err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			js, err := conv.Convert(data)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			var r resource
			if err := json.Unmarshal(js, &r); err != nil {
				return err
			}
			ukcore = append(ukcore, strip(r))
		}
	}
	extensions, err := readBundle(filepath.Join(shared, "fhir-r4/extension-definitions.json.gz"))
	if err != nil {
		return err
	}
	extensions = snapshotsOnly(extensions)
	vitals, err := vitalSigns(others)
	if err != nil {
		return err
	}
	base, err := baseDefinitions()
	if err != nil {
		return err
	}
	var terms []resource
	for _, name := range []string{"valuesets.json.gz", "v3-codesystems.json.gz"} {
		rs, err := readBundle(filepath.Join(shared, "fhir-r4", name))
		if err != nil {
			return err
		}
		terms = append(terms, rs...)
	}
	tables, err := v2Tables(v2)
	if err != nil {
		return err
	}
	terms = append(terms, tables...)
	terms = reachable(terms, append(append(append(base, extensions...), vitals...), ukcore...))
	for i, r := range terms {
		terms[i] = strip(r)
	}
	operations, err := operationDefinitions(filepath.Join(shared, "fhir-r4/profiles-resources.json.gz"))
	if err != nil {
		return err
	}
	conf := filepath.Join(out, "profiles/conformance")
	for name, rs := range map[string][]resource{
		"r4-extensions.json.gz":  extensions,
		"r4-vitalsigns.json.gz":  vitals,
		"r4-terminology.json.gz": terms,
		"r4-operations.json.gz":  operations,
		"ukcore.json.gz":         ukcore,
	} {
		if err := writeBundle(filepath.Join(conf, name), rs); err != nil {
			return err
		}
	}
	return copyFiles(filepath.Join(shared, "fixtures/validator"), filepath.Join(out, "profiles/testdata/validator"))
}

// operationDefinitions returns the OperationDefinitions of a published
// bundle, without their narrative: the server serves them as the
// definitions of the R4 operations it names in its CapabilityStatement.
func operationDefinitions(path string) ([]resource, error) {
	rs, err := readBundle(path)
	if err != nil {
		return nil, err
	}
	var out []resource
	for _, r := range rs {
		if r["resourceType"] == "OperationDefinition" {
			out = append(out, strip(r))
		}
	}
	return out, nil
}

// snapshotsOnly strips published StructureDefinitions and drops their
// differentials: they carry snapshots, which are all the validator reads.
func snapshotsOnly(rs []resource) []resource {
	for i, r := range rs {
		delete(r, "differential")
		rs[i] = strip(r)
	}
	return rs
}

// vitalSignsProfile is the R4 vital signs profile, on which the profiles
// of the specific vital signs (bp, bodytemp, heartrate...) are constraints.
const vitalSignsProfile = "http://hl7.org/fhir/StructureDefinition/vitalsigns"

// vitalSigns reads the R4 profiles-others.json at path and returns the vital
// signs profiles: vitalsigns and those whose base it is. R4 says vital signs
// Observations SHALL conform to them
// (https://hl7.org/fhir/R4/observation-vitalsigns.html); the other profiles
// of that file are not vendored.
func vitalSigns(path string) ([]resource, error) {
	others, err := readBundle(path)
	if err != nil {
		return nil, err
	}
	var out []resource
	for _, r := range others {
		url, _ := r["url"].(string)
		base, _ := r["baseDefinition"].(string)
		if r["resourceType"] == "StructureDefinition" && (url == vitalSignsProfile || base == vitalSignsProfile) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no vital signs profiles (%s)", path, vitalSignsProfile)
	}
	return snapshotsOnly(out), nil
}

// v2TablePrefix begins the canonical of every HL7 v2 table, as R4 names
// them: http://terminology.hl7.org/CodeSystem/v2-0131 and its ValueSet
// http://terminology.hl7.org/ValueSet/v2-0131.
const v2TablePrefix = "http://terminology.hl7.org/"

// v2Tables reads the Bundle at path and returns its HL7 v2 tables (the
// CodeSystems and ValueSets named v2-NNNN), and nothing else: path may be
// the R4 v2-tables.json, or a vendored r4-terminology.json.gz, whose other
// resources come from the shared folder.
func v2Tables(path string) ([]resource, error) {
	rs, err := readBundle(path)
	if err != nil {
		return nil, err
	}
	var out []resource
	for _, r := range rs {
		url, _ := r["url"].(string)
		typ, _ := r["resourceType"].(string)
		if (typ == "CodeSystem" || typ == "ValueSet") && strings.HasPrefix(url, v2TablePrefix+typ+"/v2-") {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no HL7 v2 tables (%sCodeSystem/v2-...)", path, v2TablePrefix)
	}
	return out, nil
}

// strip drops what validation never reads: narrative, mappings and prose.
func strip(r resource) resource {
	delete(r, "text")
	delete(r, "mapping")
	for _, part := range []string{"snapshot", "differential"} {
		p, _ := r[part].(map[string]any)
		els, _ := p["element"].([]any)
		for _, e := range els {
			el, _ := e.(map[string]any)
			for _, k := range []string{"mapping", "definition", "comment", "requirements", "alias", "meaningWhenMissing", "isModifierReason"} {
				delete(el, k)
			}
		}
	}
	var concepts func([]any)
	concepts = func(cs []any) {
		for _, c := range cs {
			m, _ := c.(map[string]any)
			delete(m, "definition")
			delete(m, "designation")
			sub, _ := m["concept"].([]any)
			concepts(sub)
		}
	}
	if cs, ok := r["concept"].([]any); ok {
		concepts(cs)
	}
	return r
}

// readBundle returns the resources of a Bundle file, gzipped when its name
// ends in .gz.
func readBundle(path string) ([]resource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = zr
	}
	var b struct {
		Entry []struct {
			Resource resource `json:"resource"`
		} `json:"entry"`
	}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var rs []resource
	for _, e := range b.Entry {
		rs = append(rs, e.Resource)
	}
	return rs, nil
}

func baseDefinitions() ([]resource, error) {
	var all []resource
	for _, name := range []string{"profiles-types.json.gz", "profiles-resources.json.gz"} {
		f, err := definitions.FS.Open(name)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		var b struct {
			Entry []struct {
				Resource resource `json:"resource"`
			} `json:"entry"`
		}
		err = json.NewDecoder(zr).Decode(&b)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, e := range b.Entry {
			all = append(all, e.Resource)
		}
	}
	return all, nil
}

func canonical(s string) string {
	s, _, _ = strings.Cut(s, "|")
	return s
}

// reachable keeps the ValueSets bound by some element of defs, the ValueSets
// those include, and the CodeSystems they draw codes from; and, for the
// ValueSets among defs (UK Core's), the ValueSets and CodeSystems they draw
// on, so that they can be expanded from what is bundled.
func reachable(terms, defs []resource) []resource {
	byURL := map[string]resource{}
	for _, r := range terms {
		if u, ok := r["url"].(string); ok {
			byURL[u] = r
		}
	}
	keep := map[string]bool{}
	var visit func(url string)
	visit = func(url string) {
		url = canonical(url)
		r, ok := byURL[url]
		if !ok || keep[url] {
			return
		}
		keep[url] = true
		if vs, ok := r["valueSet"].(string); ok { // a CodeSystem's implicit value set
			visit(vs)
		}
		drawsOn(r, visit)
	}
	for _, d := range defs {
		if d["resourceType"] == "ValueSet" {
			drawsOn(d, visit)
		}
		for _, part := range []string{"snapshot", "differential"} {
			p, _ := d[part].(map[string]any)
			els, _ := p["element"].([]any)
			for _, e := range els {
				el, _ := e.(map[string]any)
				b, _ := el["binding"].(map[string]any)
				if vs, ok := b["valueSet"].(string); ok {
					visit(vs)
				}
			}
		}
	}
	var out []resource
	for _, r := range terms {
		if u, ok := r["url"].(string); ok && keep[u] {
			out = append(out, r)
		}
	}
	return out
}

// drawsOn calls visit with the canonical of every code system and value set
// the compose of ValueSet vs includes or excludes.
func drawsOn(vs resource, visit func(url string)) {
	compose, _ := vs["compose"].(map[string]any)
	for _, part := range []string{"include", "exclude"} {
		incs, _ := compose[part].([]any)
		for _, i := range incs {
			inc, _ := i.(map[string]any)
			if s, ok := inc["system"].(string); ok {
				visit(s)
			}
			vss, _ := inc["valueSet"].([]any)
			for _, v := range vss {
				if s, ok := v.(string); ok {
					visit(s)
				}
			}
		}
	}
}

func writeBundle(path string, rs []resource) error {
	sort.SliceStable(rs, func(i, j int) bool {
		a, _ := rs[i]["url"].(string)
		b, _ := rs[j]["url"].(string)
		return a < b
	})
	var entries []any
	for _, r := range rs {
		entries = append(entries, map[string]any{"resource": r})
	}
	js, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(js); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func copyFiles(from, to string) error {
	files, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, f.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, f.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
