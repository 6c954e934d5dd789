package access

// Holder holds the access state of one request (its Record, interaction
// and principal) inside a context its owner makes, whose Value method
// answers through Lookup first: what Begin, WithInteraction and
// WithPrincipal would put in three context values, each a request's copy
// made by the server's middleware, without any. A context derived from
// the owner's still overrides it, as a Begin, WithInteraction or
// WithPrincipal above it does (ActingAs, a Bundle entry's interaction).
//
// A Holder is set up by the goroutine serving the request, before the
// store is first called with its context, and not changed after.
type Holder struct {
	state struct {
		request
		record Record
	}
	begun       bool
	interaction any // an Interaction, boxed once rather than at each Lookup
	principal   *Principal
}

// Begin begins the request of h, as Begin does, performing interaction i;
// unaudited as BeginUnaudited does.
func (h *Holder) Begin(i Interaction, unaudited bool) *Record {
	h.state.record = Record{unaudited: unaudited}
	h.state.request.record = &h.state.record
	h.begun, h.interaction = true, nil
	if i != "" {
		h.interaction = i
	}
	return &h.state.record
}

// SetPrincipal makes p the principal h's request acts for, as
// WithPrincipal does.
func (h *Holder) SetPrincipal(p *Principal) { h.principal = p }

// Lookup answers for the context values h holds, reporting false for any
// other key and for a value not set, which the owner's parent answers.
func (h *Holder) Lookup(key any) (any, bool) {
	switch key.(type) {
	case requestKey:
		if h.begun {
			return &h.state.request, true
		}
	case interactionKey:
		if h.interaction != nil {
			return h.interaction, true
		}
	case principalKey:
		if h.principal != nil {
			return h.principal, true
		}
	}
	return nil, false
}
