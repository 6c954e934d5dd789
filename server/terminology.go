package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/profiles/terminology"
	"carefhir/store"
)

// searchTerminology returns the terminology that answers the token
// modifiers :in, :not-in, :above and :below of search: the bundled
// ValueSets and CodeSystems of the validator (a *profiles.Validator has
// them), or nil, which leaves those modifiers unsupported.
func searchTerminology(v Validator) search.Terminology {
	t := termsOf(v)
	if t == nil {
		return nil
	}
	return t.ForSearch()
}

// termsOf returns the terminology of a validator (a *profiles.Validator
// has one), or nil.
func termsOf(v Validator) *terminology.Terminology {
	tv, ok := v.(interface {
		Terminology() *terminology.Terminology
	})
	if !ok {
		return nil
	}
	return tv.Terminology()
}

// needsTerminology reports whether a search uses a token modifier that
// consults the terminology.
func needsTerminology(params url.Values) bool {
	for name := range params {
		if _, modifier, ok := strings.Cut(name, ":"); ok {
			switch modifier {
			case "in", "not-in", "below", "above":
				return true
			}
		}
	}
	return false
}

// storedTerms is the terminology of one search request: the bundled one,
// and the ValueSets and CodeSystems stored here, read through the request's
// access to the store. R4 (search.html, :in) names a ValueSet by "a URI
// (relative or absolute)": "If the server can treat the reference as a
// literal URL, it does, else it tries to match known logical ValueSet.url
// values".
type storedTerms struct {
	a       *api
	c       *gin.Context
	bundled search.Terminology
}

// Expand implements search.Terminology.
func (t storedTerms) Expand(canonical string) ([]search.Coding, error) {
	body, err := t.literalValueSet(canonical)
	if err != nil && !errors.Is(err, search.ErrUnknown) {
		return nil, err
	}
	if body == nil {
		codes, err := t.bundled.Expand(canonical)
		if !errors.Is(err, search.ErrUnknown) {
			return codes, err
		}
		u, version, _ := strings.Cut(canonical, "|")
		v, err := t.a.findCanonical(t.c, "ValueSet", u, version)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, fmt.Errorf("%w: ValueSet %s is not known to this server", search.ErrUnknown, canonical)
		}
		body = v.JSON
	}
	vs, err := t.a.storedValueSet(t.c, body)
	if err != nil {
		return nil, err
	}
	return vs.terms.ForSearch().Expand(vs.url)
}

// literalValueSet reads the stored ValueSet that ref names as ValueSet/id,
// relative or under this server's base; nil when ref is not such a URL.
func (t storedTerms) literalValueSet(ref string) ([]byte, error) {
	rest, _ := strings.CutPrefix(ref, t.a.baseURL(t.c)+"/")
	id, ok := strings.CutPrefix(rest, "ValueSet/")
	if !ok || checkID(id, "") != nil {
		return nil, nil
	}
	v, err := t.a.svc.store.Read(t.c.Request.Context(), "ValueSet", id)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted:
		return nil, fmt.Errorf("%w: ValueSet/%s is not held here", search.ErrUnknown, id)
	case err != nil:
		return nil, err
	}
	return v.JSON, nil
}

// Below implements search.Terminology.
func (t storedTerms) Below(system, code string) ([]string, error) {
	terms, err := t.codeSystem(system)
	if err != nil {
		return nil, err
	}
	return terms.Below(system, code)
}

// Above implements search.Terminology.
func (t storedTerms) Above(system, code string) ([]string, error) {
	terms, err := t.codeSystem(system)
	if err != nil {
		return nil, err
	}
	return terms.Above(system, code)
}

// codeSystem returns the terminology that holds system: the bundled one,
// or the bundled one with the CodeSystem stored here.
func (t storedTerms) codeSystem(system string) (search.Terminology, error) {
	base := termsOf(t.a.cfg.Validator)
	if base.HasCodeSystem(system) {
		return t.bundled, nil
	}
	v, err := t.a.findCanonical(t.c, "CodeSystem", system, "")
	if err != nil || v == nil {
		return t.bundled, err
	}
	terms, err := base.With(v.JSON)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "CodeSystem %s: %v", system, err)
	}
	return terms.ForSearch(), nil
}
