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
	open        Principal // the principal of SetOpenPrincipal
}

// boxed returns i as an interface value: for each interaction named here
// one made by the compiler, without an allocation, and nil for none.
func boxed(i Interaction) any {
	switch i {
	case "":
		return nil
	case InteractionRead:
		return InteractionRead
	case InteractionVRead:
		return InteractionVRead
	case InteractionSearchType:
		return InteractionSearchType
	case InteractionSearchSystem:
		return InteractionSearchSystem
	case InteractionHistoryInstance:
		return InteractionHistoryInstance
	case InteractionHistoryType:
		return InteractionHistoryType
	case InteractionHistorySystem:
		return InteractionHistorySystem
	case InteractionCreate:
		return InteractionCreate
	case InteractionUpdate:
		return InteractionUpdate
	case InteractionPatch:
		return InteractionPatch
	case InteractionDelete:
		return InteractionDelete
	case InteractionBatch:
		return InteractionBatch
	case InteractionTransaction:
		return InteractionTransaction
	case InteractionCapabilities:
		return InteractionCapabilities
	case InteractionOperation:
		return InteractionOperation
	}
	return i
}

// Begin begins the request of h, as Begin does, performing interaction i;
// unaudited as BeginUnaudited does.
func (h *Holder) Begin(i Interaction, unaudited bool) *Record {
	h.state.record = Record{unaudited: unaudited}
	h.state.request.record = &h.state.record
	h.begun, h.interaction = true, boxed(i)
	return &h.state.record
}

// SetPrincipal makes p the principal h's request acts for, as
// WithPrincipal does.
func (h *Holder) SetPrincipal(p *Principal) { h.principal = p }

// SetOpenPrincipal makes the request act for OpenPrincipal(address), held
// in h rather than allocated.
func (h *Holder) SetOpenPrincipal(address string) {
	h.open = Principal{Open: true, Address: address}
	h.principal = &h.open
}

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
