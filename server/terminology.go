package server

import (
	"carefhir/fhir/search"
	"carefhir/profiles/terminology"
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
