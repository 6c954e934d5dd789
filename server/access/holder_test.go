package access

import (
	"context"
	"testing"
)

// heldContext is a context that holds a request's access state, as the
// server's request state does.
type heldContext struct {
	context.Context
	h Holder
}

func (c *heldContext) Value(key any) any {
	if v, ok := c.h.Lookup(key); ok {
		return v
	}
	return c.Context.Value(key)
}

// A Holder answers for the Record, interaction and principal it was given,
// as Begin, WithInteraction and WithPrincipal would; what it was not given
// comes from the parent; and a context derived from its owner overrides it
// as one derived from theirs does.
func TestHolderAnswersAsContextValues(t *testing.T) {
	system := SystemPrincipal("mllp")
	ctx := &heldContext{Context: WithPrincipal(context.Background(), system)}
	if RecordFrom(ctx) != nil || InteractionFrom(ctx) != "" {
		t.Fatalf("a Holder not begun answers a Record %v, interaction %q", RecordFrom(ctx), InteractionFrom(ctx))
	}
	if PrincipalFrom(ctx) != system {
		t.Fatalf("a Holder without a principal answers %v, want the parent's", PrincipalFrom(ctx))
	}

	rec := ctx.h.Begin(InteractionRead, true)
	open := OpenPrincipal("192.0.2.1")
	ctx.h.SetPrincipal(open)
	if RecordFrom(ctx) != rec || !rec.unaudited || InteractionFrom(ctx) != InteractionRead || PrincipalFrom(ctx) != open {
		t.Fatalf("begun: Record %p (want %p), unaudited %v, interaction %q, principal %v",
			RecordFrom(ctx), rec, rec.unaudited, InteractionFrom(ctx), PrincipalFrom(ctx))
	}
	if audited := ctx.h.Begin(InteractionSearchType, false); audited.unaudited {
		t.Errorf("Begin(…, false) made an unaudited Record")
	}

	acting := WithInteraction(ActingAs(ctx, system), InteractionVRead)
	if PrincipalFrom(acting) != system || InteractionFrom(acting) != InteractionVRead || RecordFrom(acting) != RecordFrom(ctx) {
		t.Errorf("derived: principal %v, interaction %q, Record %p; want the system, vread and the request's Record",
			PrincipalFrom(acting), InteractionFrom(acting), RecordFrom(acting))
	}
	if Requester(acting) != open {
		t.Errorf("Requester %v, want the held principal", Requester(acting))
	}
	if PrincipalFrom(ctx) != open || InteractionFrom(ctx) != InteractionSearchType {
		t.Errorf("the owner's answers changed by a derived context: %v, %q", PrincipalFrom(ctx), InteractionFrom(ctx))
	}
}
