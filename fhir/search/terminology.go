package search

import (
	"errors"
	"fmt"
	"net/http"

	"carefhir/store/query"
)

// Terminology is the terminology service the token modifiers consult:
// :in and :not-in expand a ValueSet, :below and :above walk the hierarchy
// of a CodeSystem (https://hl7.org/fhir/R4/search.html#token). It is safe
// for concurrent use.
//
// An error wrapping ErrUnknown means the ValueSet, CodeSystem or code is
// not known; any other error, that the question cannot be answered here,
// such as a ValueSet drawing on a code system that is not available.
type Terminology interface {
	// Expand returns the codes of the ValueSet with this canonical URL,
	// which may end in "|version".
	Expand(url string) ([]Coding, error)
	// Below returns code and every code of system it subsumes, at any
	// depth.
	Below(system, code string) ([]string, error)
	// Above returns code and every code of system that subsumes it.
	Above(system, code string) ([]string, error)
}

// Coding is one code of a code system.
type Coding struct {
	System, Code string
}

// ErrUnknown is wrapped by the errors of a Terminology about a ValueSet,
// CodeSystem or code it does not know.
var ErrUnknown = errors.New("search: unknown to the terminology")

// ErrTooCostly is wrapped by the errors of a Terminology about a ValueSet
// too costly to expand; the search is refused as too costly.
var ErrTooCostly = errors.New("search: too costly for the terminology")

// MaxExpansion is the most codes one :in, :not-in, :above or :below
// parameter may stand for: a larger ValueSet or hierarchy is refused rather
// than compiled into a query of that size.
const MaxExpansion = 10000

// WithTerminology returns a registry that parses as r does and answers
// :in, :not-in, :above and :below on tokens with t. Without one, those
// modifiers are unsupported.
func (r *Registry) WithTerminology(t Terminology) *Registry {
	c := *r
	c.terms = t
	return &c
}

// terminology compiles the token modifiers that need terminology into the
// clause: :in and :not-in (Not) hold for the codes of the ValueSets listed,
// :below and :above for the codes the system|code values subsume or are
// subsumed by. Each code matches with its system and, for elements of type
// code, which carry none, by itself.
func (p *parser) terminology(c *query.Clause, name, modifier string, values []string) error {
	terms := p.r.terms
	if terms == nil {
		return unsupported(name, "token modifier :%s needs terminology services, which this server does not have", modifier)
	}
	var codings []Coding
	seen := map[Coding]bool{}
	add := func(cs []Coding) error {
		for _, cd := range cs {
			if !seen[cd] {
				seen[cd] = true
				codings = append(codings, cd)
			}
		}
		if len(codings) > MaxExpansion {
			return &Error{Status: http.StatusBadRequest, Code: "too-costly", Expression: name,
				Diagnostics: fmt.Sprintf(":%s stands for more than %d codes; narrow it", modifier, MaxExpansion)}
		}
		return nil
	}
	for _, v := range values {
		switch modifier {
		case "in", "not-in":
			url := unescape(v)
			if url == "" {
				return invalid(name, "empty value in %q", name)
			}
			cs, err := terms.Expand(url)
			if err != nil {
				return terminologyError(name, "ValueSet "+clip(url), err)
			}
			if err := add(cs); err != nil {
				return err
			}
		default:
			m, err := parseToken(name, v)
			if err != nil {
				return err
			}
			if m.AnySystem || m.AnyCode || m.System == "" {
				return invalid(name, ":%s takes system|code, the code system whose hierarchy to follow and a code, not %q", modifier, clip(v))
			}
			walk := terms.Below
			if modifier == "above" {
				walk = terms.Above
			}
			codes, err := walk(m.System, m.Code)
			if err != nil {
				return terminologyError(name, fmt.Sprintf("code %s in CodeSystem %s", clip(m.Code), clip(m.System)), err)
			}
			cs := make([]Coding, len(codes))
			for i, code := range codes {
				cs[i] = Coding{System: m.System, Code: code}
			}
			if err := add(cs); err != nil {
				return err
			}
		}
	}
	c.Not = modifier == "not-in"
	bare := map[string]bool{}
	for _, cd := range codings {
		c.Tokens = append(c.Tokens, query.TokenMatch{System: cd.System, Code: cd.Code})
		if cd.System != "" && !bare[cd.Code] && !seen[Coding{Code: cd.Code}] {
			bare[cd.Code] = true
			c.Tokens = append(c.Tokens, query.TokenMatch{Code: cd.Code})
		}
	}
	// An empty ValueSet leaves no tokens: nothing is in it, everything is
	// not.
	return nil
}

// terminologyError turns what the terminology said about what (a ValueSet
// or a code) into a 400: not-found when it is unknown, too-costly when its
// expansion would cost too much, not-supported when it cannot be computed
// here. Neither is ignored under lenient handling: the
// client named something specific that cannot be searched.
func terminologyError(name, what string, err error) *Error {
	switch {
	case errors.Is(err, ErrUnknown):
		return &Error{Status: http.StatusBadRequest, Code: "not-found", Expression: name,
			Diagnostics: fmt.Sprintf("%s is not known to this server", what)}
	case errors.Is(err, ErrTooCostly):
		return &Error{Status: http.StatusBadRequest, Code: "too-costly", Expression: name,
			Diagnostics: fmt.Sprintf("%s is too costly to expand here", what), fatal: true}
	}
	return &Error{Status: http.StatusBadRequest, Code: "not-supported", Expression: name,
		Diagnostics: fmt.Sprintf("%s cannot be searched here: %v", what, err), fatal: true}
}

// implicitSystem reports whether m, a system|code value of sp, also
// names the code stored without a system in an element of type code: sp
// searches such elements and the terminology holds the code in that
// system. A system the terminology does not know, or without that code,
// is not one a code element can stand for.
func (p *parser) implicitSystem(sp *Param, m query.TokenMatch) bool {
	if !sp.codes || p.r.terms == nil || m.System == "" || m.AnySystem || m.AnyCode {
		return false
	}
	_, err := p.r.terms.Below(m.System, m.Code)
	return err == nil
}
