package access

import (
	"strconv"

	"carefhir/internal/jsontext"
)

// appendJSON appends the JSON of ev, byte for byte what encoding/json
// makes of it (TestAuditJSONAsEncoded holds the two equal): the trail
// encodes an AuditEvent for every request, and encoding/json finds its
// way through the struct by reflection each time.
func (ev *auditEventJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"resourceType":`...)
	b = jsontext.AppendString(b, ev.ResourceType)
	b = append(b, `,"id":`...)
	b = jsontext.AppendString(b, ev.ID)
	b = append(b, `,"meta":{"versionId":`...)
	b = jsontext.AppendString(b, ev.Meta.VersionID)
	b = append(b, `,"lastUpdated":`...)
	b = ev.Meta.LastUpdated.appendJSON(b)
	b = append(b, `},"type":`...)
	b = ev.Type.appendJSON(b)
	b = append(b, `,"subtype":`...)
	b = appendCodings(b, ev.Subtype)
	b = append(b, `,"action":`...)
	b = jsontext.AppendString(b, ev.Action)
	b = append(b, `,"recorded":`...)
	b = ev.Recorded.appendJSON(b)
	b = append(b, `,"outcome":`...)
	b = jsontext.AppendString(b, ev.Outcome)
	if ev.OutcomeDesc != "" {
		b = append(b, `,"outcomeDesc":`...)
		b = jsontext.AppendString(b, ev.OutcomeDesc)
	}
	b = append(b, `,"agent":`...)
	if ev.Agent == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range ev.Agent {
			if i > 0 {
				b = append(b, ',')
			}
			b = ev.Agent[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"source":{"observer":`...)
	b = ev.Source.Observer.appendJSON(b)
	b = append(b, `,"type":`...)
	b = appendCodings(b, ev.Source.Type)
	b = append(b, '}')
	if len(ev.Entity) > 0 {
		b = append(b, `,"entity":[`...)
		for i := range ev.Entity {
			if i > 0 {
				b = append(b, ',')
			}
			b = ev.Entity[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// size is about the length of ev's JSON, so that its buffer is allocated
// once: the fixed text of an event, and its values.
func (ev *auditEventJSON) size() int {
	n := 768 + len(ev.ID) + len(ev.OutcomeDesc) + len(ev.Source.Observer.Display)
	for _, ag := range ev.Agent {
		n += 128 + len(ag.AltID)
		if ag.Who != nil {
			n += len(ag.Who.Reference) + len(ag.Who.Display)
			if ag.Who.Identifier != nil {
				n += len(ag.Who.Identifier.System) + len(ag.Who.Identifier.Value)
			}
		}
		if ag.Network != nil {
			n += len(ag.Network.Address)
		}
	}
	for _, en := range ev.Entity {
		n += 224 + len(en.What.Reference) + len(en.What.Display) + len(en.Query)
		if en.What.Identifier != nil {
			n += len(en.What.Identifier.System) + len(en.What.Identifier.Value)
		}
	}
	return n
}

func (c *coding) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if c.System != "" {
		b = append(b, `"system":`...)
		b = jsontext.AppendString(b, c.System)
		b = append(b, ',')
	}
	b = append(b, `"code":`...)
	b = jsontext.AppendString(b, c.Code)
	if c.Display != "" {
		b = append(b, `,"display":`...)
		b = jsontext.AppendString(b, c.Display)
	}
	return append(b, '}')
}

func appendCodings(b []byte, cs []coding) []byte {
	if cs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = cs[i].appendJSON(b)
	}
	return append(b, ']')
}

func (id *identifier) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if id.System != "" {
		b = append(b, `"system":`...)
		b = jsontext.AppendString(b, id.System)
		b = append(b, ',')
	}
	b = append(b, `"value":`...)
	b = jsontext.AppendString(b, id.Value)
	return append(b, '}')
}

func (r *reference) appendJSON(b []byte) []byte {
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(append(append(b, '"'), name...), `":`...)
	}
	if r.Reference != "" {
		field("reference")
		b = jsontext.AppendString(b, r.Reference)
	}
	if r.Identifier != nil {
		field("identifier")
		b = r.Identifier.appendJSON(b)
	}
	if r.Display != "" {
		field("display")
		b = jsontext.AppendString(b, r.Display)
	}
	return append(b, '}')
}

func (ag *agent) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if ag.Type != nil {
		b = append(b, `"type":{"coding":`...)
		b = appendCodings(b, ag.Type.Coding)
		b = append(b, "},"...)
	}
	if ag.Who != nil {
		b = append(b, `"who":`...)
		b = ag.Who.appendJSON(b)
		b = append(b, ',')
	}
	if ag.AltID != "" {
		b = append(b, `"altId":`...)
		b = jsontext.AppendString(b, ag.AltID)
		b = append(b, ',')
	}
	b = append(b, `"requestor":`...)
	b = strconv.AppendBool(b, ag.Requestor)
	if ag.Network != nil {
		b = append(b, `,"network":{"address":`...)
		b = jsontext.AppendString(b, ag.Network.Address)
		b = append(b, `,"type":`...)
		b = jsontext.AppendString(b, ag.Network.Type)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (en *entity) appendJSON(b []byte) []byte {
	b = append(b, `{"what":`...)
	b = en.What.appendJSON(b)
	if en.Type != nil {
		b = append(b, `,"type":`...)
		b = en.Type.appendJSON(b)
	}
	if en.Role != nil {
		b = append(b, `,"role":`...)
		b = en.Role.appendJSON(b)
	}
	if en.Query != "" {
		b = append(b, `,"query":`...)
		b = jsontext.AppendString(b, en.Query)
	}
	return append(b, '}')
}
