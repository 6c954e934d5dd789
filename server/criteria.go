package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"carefhir/store"
)

// resultParams are query parameters that shape a response rather than
// select resources; conditional criteria ignore them.
var resultParams = map[string]bool{"_format": true, "_pretty": true, "_summary": true, "_elements": true}

// parseCriteria turns the search parameters of a conditional interaction
// into a store query. Conditional interactions must be exact, so a parameter
// that cannot be evaluated is a 400, never silently ignored. Supported:
// _id and identifier (token forms system|value, |value, value, system|).
func parseCriteria(typ, raw, what string) (*store.Query, error) {
	raw = strings.TrimPrefix(raw, typ+"?")
	values, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "%s criteria %q are not a valid query string: %v", what, truncate(raw, 200), err)
	}
	q := &store.Query{Type: typ}
	for name, list := range values {
		if resultParams[name] {
			continue
		}
		if name != "_id" && name != "identifier" {
			return nil, errorf(http.StatusBadRequest, "not-supported",
				"%s criteria: search parameter %q is not supported here (supported: _id, identifier)", what, name)
		}
		for _, value := range list {
			clause := store.Clause{Param: name}
			for _, v := range splitUnescaped(value, ',') {
				m, err := parseToken(name, v)
				if err != nil {
					return nil, err
				}
				clause.Tokens = append(clause.Tokens, m)
			}
			q.Where = append(q.Where, clause)
		}
	}
	if len(q.Where) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid", "%s needs search criteria, e.g. identifier=system|value", what)
	}
	return q, nil
}

func parseToken(param, v string) (store.TokenMatch, error) {
	if v == "" {
		return store.TokenMatch{}, errorf(http.StatusBadRequest, "invalid", "search parameter %s has an empty value", param)
	}
	if param == "_id" {
		if err := checkID(v, ""); err != nil {
			return store.TokenMatch{}, err
		}
		return store.TokenMatch{Code: v, AnySystem: true}, nil
	}
	parts := splitUnescaped(v, '|')
	switch len(parts) {
	case 1:
		return store.TokenMatch{Code: unescape(parts[0]), AnySystem: true}, nil
	case 2:
		m := store.TokenMatch{System: unescape(parts[0]), Code: unescape(parts[1])}
		if m.Code == "" {
			m.AnyCode = true
		}
		return m, nil
	default:
		return store.TokenMatch{}, errorf(http.StatusBadRequest, "invalid",
			"search parameter %s value %q has more than one unescaped '|'", param, truncate(v, 80))
	}
}

// splitUnescaped splits s at sep, except where sep is escaped with '\'.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescape removes the search escapes \, \| \$ and \\.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// indexValues extracts the search values stored with a resource version:
// its identifiers as tokens.
func indexValues(body []byte) (store.Index, error) {
	var doc struct {
		Identifier json.RawMessage `json:"identifier"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return store.Index{}, err
	}
	if len(doc.Identifier) == 0 {
		return store.Index{}, nil
	}
	type identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	var list []identifier
	if doc.Identifier[0] == '[' {
		if err := json.Unmarshal(doc.Identifier, &list); err != nil {
			return store.Index{}, err
		}
	} else {
		var one identifier
		if err := json.Unmarshal(doc.Identifier, &one); err != nil {
			return store.Index{}, err
		}
		list = append(list, one)
	}
	var idx store.Index
	for _, id := range list {
		if id.Value == "" && id.System == "" {
			continue
		}
		idx.Tokens = append(idx.Tokens, store.Token{Param: "identifier", System: id.System, Code: id.Value})
	}
	return idx, nil
}
