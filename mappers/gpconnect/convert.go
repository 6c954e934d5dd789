package gpconnect

import (
	"encoding/json"
	"fmt"
	"strings"
)

// conv maps one STU3 resource. Every element it meets is either carried
// into the R4 resource or reported with its STU3 path.
type conv struct {
	rec *record
	ent *entry
}

func (c *conv) warn(path, format string, args ...any) {
	c.rec.warn(path, format, args...)
}

func (c *conv) info(path, format string, args ...any) {
	c.rec.info(path, format, args...)
}

// resource maps the top level of the entry's resource by m's rules.
func (c *conv) resource(m *mapping) map[string]any {
	src, path := c.ent.src, c.ent.path
	out := map[string]any{"resourceType": m.r4Type}
	for _, k := range sortedKeys(src) {
		v, p := src[k], path+"."+k
		switch k {
		case "resourceType", "contained":
			// contained resources are entries of their own.
		case "id":
			// The provider's id keys the write (or is kept as an identifier
			// by the source); the server gives its own.
		case "meta":
			c.info(p, "meta not carried: STU3 profiles, version ids and update times belong to the source system")
		case "text", "identifier", "language", "implicitRules":
			put(out, k, c.value(v, p))
		case "extension", "modifierExtension":
			list, _ := v.([]any)
			var exts []any
			for i, x := range list {
				ext, _ := x.(map[string]any)
				ep := fmt.Sprintf("%s[%d]", p, i)
				u, _ := ext["url"].(string)
				if f := m.extensions[u]; f != nil {
					f(c, out, ext, ep)
					continue
				}
				if k == "modifierExtension" {
					c.rec.fail(ep, "modifier extension %s is not understood, so the %s cannot be read safely", u, c.ent.typ)
					continue
				}
				if r4 := c.extension(ext, ep); r4 != nil {
					exts = append(exts, r4)
				}
			}
			if len(exts) > 0 {
				out[k] = append(asList(out[k]), exts...)
			}
		default:
			if f := m.elements[k]; f != nil {
				f(c, out, v, p)
				continue
			}
			c.warn(p, "%s.%s is not mapped to R4 %s", c.ent.typ, k, m.r4Type)
		}
	}
	if m.finish != nil {
		m.finish(c, out)
	}
	return out
}

// value copies an STU3 value to R4, for the many data types whose shape
// did not change: references are rewritten to the entries' full URLs,
// codings' systems to the URLs R4 moved them to, and extensions are mapped
// or reported. It returns nil for what is left empty.
func (c *conv) value(v any, path string) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for _, k := range sortedKeys(v) {
			x, p := v[k], path+"."+k
			switch k {
			case "extension", "modifierExtension":
				list, _ := x.([]any)
				var exts []any
				for i, e := range list {
					ext, _ := e.(map[string]any)
					ep := fmt.Sprintf("%s[%d]", p, i)
					if k == "modifierExtension" {
						u, _ := ext["url"].(string)
						c.rec.fail(ep, "modifier extension %s is not understood, so the %s cannot be read safely", u, c.ent.typ)
						continue
					}
					if r4 := c.extension(ext, ep); r4 != nil {
						exts = append(exts, r4)
					}
				}
				if len(exts) > 0 {
					out[k] = exts
				}
			case "reference":
				s, _ := x.(string)
				if full, ok := c.rec.resolve(c.ent, s); ok {
					out[k] = full
					continue
				}
				c.warn(p, "reference %q is to nothing in the payload: only its display and identifier are kept", s)
				if v["display"] == nil && v["identifier"] == nil {
					// The element may be mandatory (Appointment.participant
					// needs an actor): say in words what it pointed at.
					out["display"] = s + " in the source record"
				}
			default:
				put(out, k, c.value(x, p))
			}
		}
		if len(out) == 0 {
			return nil
		}
		if system, ok := out["system"].(string); ok {
			if code, ok := out["code"].(string); ok {
				// A Coding: in the system R4 knows it by.
				out["system"] = c.rec.systems.r4(system, code)
			}
		}
		return out
	case []any:
		var out []any
		for i, x := range v {
			if y := c.value(x, fmt.Sprintf("%s[%d]", path, i)); y != nil {
				out = append(out, y)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case string:
		if strings.TrimSpace(v) == "" {
			// STU3 parsers let empty strings by; FHIR forbids them.
			c.warn(path, "an empty string is not carried")
			return nil
		}
		return v
	default:
		return v
	}
}

// put sets out[k] unless v is nil.
func put(out map[string]any, k string, v any) {
	if v != nil {
		out[k] = v
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// object returns v as a JSON object, or reports that it is not one.
func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// Element rules, each consuming one STU3 element.

// copied carries the element unchanged (but for references and
// extensions inside it).
func copied(c *conv, out map[string]any, v any, path string) {
	put(out, lastName(path), c.value(v, path))
}

// renamed carries the element under a new R4 name.
func renamed(name string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		put(out, name, c.value(v, path))
	}
}

// listed carries a single STU3 element into an R4 element that repeats.
func listed(name string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		if x := c.value(v, path); x != nil {
			out[name] = append(asList(out[name]), x)
		}
	}
}

// concept turns an STU3 code into the R4 CodeableConcept of the same code
// in system, for the statuses R4 made CodeableConcepts; codes is the R4
// code list, and an STU3 code without an R4 equal is reported.
func concept(name, system string, codes ...string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		code, _ := v.(string)
		for _, k := range codes {
			if k == code {
				out[name] = map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}
				return
			}
		}
		c.warn(path, "%q has no equal in R4 %s, so it is not carried", code, system)
	}
}

// partsRenamed carries a repeating element whose parts R4 renamed, by
// their STU3 names; the other parts are copied.
func partsRenamed(names map[string]string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		name := lastName(path)
		for i, x := range asList(v) {
			p := fmt.Sprintf("%s[%d]", path, i)
			item := object(x)
			r4 := map[string]any{}
			for _, k := range sortedKeys(item) {
				to := k
				if n, ok := names[k]; ok {
					to = n
				}
				put(r4, to, c.value(item[k], p+"."+k))
			}
			if len(r4) > 0 {
				out[name] = append(asList(out[name]), r4)
			}
		}
	}
}

// recoded carries a code through a table of STU3 → R4 codes.
func recoded(name string, table map[string]string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		code, _ := v.(string)
		if r4, ok := table[code]; ok {
			out[name] = r4
			return
		}
		c.warn(path, "code %q has no equal in R4, so it is not carried", code)
	}
}

// dropped reports an element R4 has no place for, with why.
func dropped(why string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		c.warn(path, "not carried: %s", why)
	}
}

// noted carries a string into an R4 note.
func noted(c *conv, out map[string]any, v any, path string) {
	if s, ok := v.(string); ok && s != "" {
		out["note"] = append(asList(out["note"]), map[string]any{"text": s})
	}
}

// agent carries an STU3 requester {agent, onBehalfOf} into the R4
// reference to the agent.
func agent(name string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		req := object(v)
		for _, k := range sortedKeys(req) {
			switch k {
			case "agent":
				put(out, name, c.value(req[k], path+".agent"))
			default:
				c.warn(path+"."+k, "not carried: R4 %s is one reference, to the agent", name)
			}
		}
	}
}

func lastName(path string) string {
	return path[strings.LastIndex(path, ".")+1:]
}

// jsonText is v as JSON, for messages.
func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
