// Package csv imports cohort reports exported as CSV from GP clinical
// systems (EMIS Web Population Reporting, SystmOne Clinical Reporting) and
// exports coded entries as CSV for bulk upload back to them.
//
// No two practices' reports have the same columns, so the layout comes
// from a mapping file (YAML or JSON) that names the column holding each
// item; ready mappings for typical EMIS and SystmOne layouts are built in
// (see Layout). The importer streams: it reads a few rows at a time and
// yields one Result per batch, so memory does not grow with the file.
package csv

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Mapping says where each item is in the rows of a report. Columns are
// named by their header text, matched without regard to case and
// surrounding spaces.
type Mapping struct {
	// Name says what layout this is, for people.
	Name string `json:"name" validate:"required"`
	// Source says where the layout was taken from.
	Source string `json:"source"`
	// Delimiter is the field separator, one character; "," when empty.
	Delimiter string `json:"delimiter" validate:"omitempty,delimiter"`
	// Encoding is utf-8 (the default) or windows-1252, which EMIS and
	// SystmOne write.
	Encoding string `json:"encoding" validate:"omitempty,oneof=utf-8 windows-1252"`
	// DateFormats are the layouts of dates in the file, tried in order;
	// DefaultDateFormats when empty.
	DateFormats []string `json:"dateFormats" validate:"dive,oneof=dd-MMM-yyyy dd/MM/yyyy yyyy-MM-dd 'dd MMM yyyy' yyyyMMdd"`
	// FillDown names the columns whose blank cells belong to the value in
	// the nearest row above, as in the grouping rows of EMIS reports.
	FillDown []string `json:"fillDown"`
	// Patient names the columns of the person.
	Patient PatientColumns `json:"patient" validate:"required"`
	// Observations map columns to Observations with a code and a unit.
	Observations []ObservationColumn `json:"observations" validate:"dive"`
	// Conditions map columns to Conditions: a non-blank cell other than
	// a "no" (N, No, False, 0) records the condition.
	Conditions []CodedColumn `json:"conditions" validate:"dive"`
	// Flags map columns to Flags, read like Conditions.
	Flags []CodedColumn `json:"flags" validate:"dive"`
}

// PatientColumns names the columns of the person. Only the NHS number is
// required: records are matched on it.
type PatientColumns struct {
	NHSNumber    string   `json:"nhsNumber" validate:"required"`
	Title        string   `json:"title"`
	Given        string   `json:"given"`
	Middle       string   `json:"middle"`
	Family       string   `json:"family"`
	BirthDate    string   `json:"birthDate"`
	Sex          string   `json:"sex"`
	AddressLines []string `json:"addressLines"`
	Postcode     string   `json:"postcode"`
	Phone        string   `json:"phone"`
	Mobile       string   `json:"mobile"`
	Email        string   `json:"email"`
	// Practice is the ODS code of the registered practice.
	Practice     string `json:"practice"`
	PracticeName string `json:"practiceName"`
	// UsualGP is the usual GP's name, UsualGPCode their GMP (G and 7
	// digits) or GMC number.
	UsualGP     string `json:"usualGP"`
	UsualGPCode string `json:"usualGPCode"`
}

// Code is a coded concept.
type Code struct {
	System  string `json:"system" validate:"required,uri"`
	Code    string `json:"code" validate:"required"`
	Display string `json:"display"`
}

// ObservationColumn maps a column to an Observation: the cell is the
// value, and DateColumn the date it was recorded.
type ObservationColumn struct {
	Column     string `json:"column" validate:"required"`
	DateColumn string `json:"dateColumn" validate:"required"`
	Code       Code   `json:"code" validate:"required"`
	// Unit is the unit of a numeric value, as people write it; UnitCode
	// its UCUM code.
	Unit     string `json:"unit"`
	UnitCode string `json:"unitCode"`
}

// CodedColumn maps a column to a Condition or a Flag.
type CodedColumn struct {
	Column string `json:"column" validate:"required"`
	// DateColumn holds the onset (a Condition) or start (a Flag); the
	// cell itself is read as the date when DateColumn is empty and the
	// cell is a date.
	DateColumn string `json:"dateColumn"`
	Code       Code   `json:"code" validate:"required"`
}

// DefaultDateFormats are the date layouts EMIS and SystmOne write.
var DefaultDateFormats = []string{"dd-MMM-yyyy", "dd/MM/yyyy", "yyyy-MM-dd", "dd MMM yyyy", "yyyyMMdd"}

// ParseMapping reads a mapping file, YAML or JSON, and checks it: unknown
// keys are errors, so a misspelt key is not silently ignored.
func ParseMapping(data []byte) (*Mapping, error) {
	m := &Mapping{}
	if err := decodeStrict(data, m); err != nil {
		return nil, fmt.Errorf("csv: mapping: %w", err)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeStrict reads YAML or JSON into v, refusing unknown keys.
func decodeStrict(data []byte, v any) error {
	js := data
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		if err := boundAliases(data); err != nil {
			return err
		}
		var err error
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return wrongType(dec.Decode(v))
}

// wrongType says, of a value of the wrong kind, where it is (by the keys
// of the file) and what is expected there, in the file's terms: the JSON
// decoder's error names the Go struct field and type it was decoded into,
// which mean nothing to whoever wrote the file.
func wrongType(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	where := te.Field
	if where == "" {
		where = "the file"
	}
	return fmt.Errorf("%s: %s, where %s is expected", where, kindOf(te.Value), kindOf(te.Type.Kind().String()))
}

// kindOf names a kind of value, as the JSON decoder or package reflect
// names it, in the terms of a YAML or JSON file.
func kindOf(kind string) string {
	switch {
	case kind == "string":
		return "text"
	case kind == "array" || kind == "slice":
		return "a list"
	case kind == "object" || kind == "struct" || kind == "map":
		return "a mapping of keys to values"
	case kind == "bool":
		return "true or false"
	default: // number, or a Go number kind such as int
		return "a number"
	}
}

// maxMappingNodes bounds the nodes of a mapping once its YAML aliases are
// expanded: a real mapping has a few hundred, and a few lines of aliases
// of aliases ("billion laughs") would otherwise expand to gigabytes.
const maxMappingNodes = 100_000

// boundAliases refuses YAML whose aliases expand it beyond
// maxMappingNodes nodes, before it is expanded.
func boundAliases(data []byte) error {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return err
	}
	c := &nodeCounter{anchors: map[string]int{}}
	for _, doc := range f.Docs {
		ast.Walk(c, doc)
	}
	if c.n > maxMappingNodes {
		return fmt.Errorf("its aliases expand it to more than %d nodes", maxMappingNodes)
	}
	return nil
}

// nodeCounter counts the nodes of YAML as if its aliases were expanded,
// each alias counting the nodes of its anchor. Counts stop growing past
// maxMappingNodes, so they cannot overflow.
type nodeCounter struct {
	n       int
	anchors map[string]int // anchor name → the nodes it stands for
}

func (c *nodeCounter) add(n int) { c.n = min(c.n+n, maxMappingNodes+1) }

func (c *nodeCounter) Visit(node ast.Node) ast.Visitor {
	switch n := node.(type) {
	case *ast.AnchorNode:
		inner := &nodeCounter{anchors: c.anchors}
		if n.Value != nil {
			ast.Walk(inner, n.Value)
		}
		c.anchors[n.Name.GetToken().Value] = inner.n
		c.add(inner.n)
		return nil
	case *ast.AliasNode:
		c.add(max(c.anchors[n.Value.GetToken().Value], 1))
		return nil
	}
	c.add(1)
	return c
}

// validate checks the struct tags of mappings; it holds a cache of their
// types, and is safe for concurrent use.
var validate = newValidate()

// newValidate returns the checker of mappings and export layouts, with
// the delimiter tag: a field separator the CSV reader and writer can use.
func newValidate() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	err := v.RegisterValidation("delimiter", func(fl validator.FieldLevel) bool {
		_, ok := comma(fl.Field().String())
		return ok
	})
	if err != nil {
		panic(err) // the tag and function are fixed: a failure is a bug here
	}
	return v
}

// comma returns the character delimiter names, "," when it is empty, and
// whether it can separate fields: one character (of any width: a UK
// extract may use ¬), not a quote, a line break or U+FFFD, which
// encoding/csv refuses.
func comma(delimiter string) (rune, bool) {
	if delimiter == "" {
		return ',', true
	}
	r, size := utf8.DecodeRuneInString(delimiter)
	return r, size == len(delimiter) && r != utf8.RuneError && r != '"' && r != '\r' && r != '\n' && r != 0
}

// Check reports what is wrong with m, naming each field.
func (m *Mapping) Check() error {
	if err := checkStruct(m, "Mapping."); err != nil {
		return fmt.Errorf("csv: mapping: %w", err)
	}
	return nil
}

// checkStruct validates the tags of v and says what fails, by field path
// without the root's name (prefix).
func checkStruct(v any, prefix string) error {
	err := validate.Struct(v)
	var ve validator.ValidationErrors
	if !errors.As(err, &ve) {
		return err
	}
	var msgs []string
	for _, fe := range ve {
		path := strings.TrimPrefix(fe.Namespace(), prefix)
		switch fe.Tag() {
		case "required":
			msgs = append(msgs, path+" is required")
		case "oneof":
			msgs = append(msgs, fmt.Sprintf("%s %q is not one of: %s", path, fe.Value(), fe.Param()))
		case "delimiter":
			msgs = append(msgs, fmt.Sprintf("%s %q is not a field separator: one character, not a quote or a line break", path, fe.Value()))
		default:
			msgs = append(msgs, fmt.Sprintf("%s %q fails %s %s", path, fe.Value(), fe.Tag(), fe.Param()))
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

//go:embed layouts/*.yaml
var layouts embed.FS

// Layout returns a built-in mapping by name: the file name under layouts/
// without .yaml, such as emis-patient-list.
func Layout(name string) (*Mapping, error) {
	data, err := layouts.ReadFile("layouts/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("csv: no built-in layout %q (have %s)", name, strings.Join(Layouts(), ", "))
	}
	return ParseMapping(data)
}

// Layouts lists the built-in mappings.
func Layouts() []string {
	entries, _ := fs.Glob(layouts, "layouts/*.yaml")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(e, "layouts/"), ".yaml"))
	}
	sort.Strings(names)
	return names
}
