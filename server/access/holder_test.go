package access

import (
	"context"
	"reflect"
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

// A Holder answers each interaction as WithInteraction would put it, and
// no interaction for none.
func TestHolderBoxesEveryInteraction(t *testing.T) {
	for _, i := range []Interaction{InteractionRead, InteractionVRead, InteractionSearchType, InteractionSearchSystem,
		InteractionHistoryInstance, InteractionHistoryType, InteractionHistorySystem, InteractionCreate, InteractionUpdate,
		InteractionPatch, InteractionDelete, InteractionBatch, InteractionTransaction, InteractionCapabilities,
		InteractionOperation, Interaction("unlisted")} {
		ctx := &heldContext{Context: context.Background()}
		ctx.h.Begin(i, true)
		if got := InteractionFrom(ctx); got != i {
			t.Errorf("Begin(%q): InteractionFrom answers %q", i, got)
		}
	}
	ctx := &heldContext{Context: WithInteraction(context.Background(), InteractionRead)}
	ctx.h.Begin("", true)
	if got := InteractionFrom(ctx); got != InteractionRead {
		t.Errorf("Begin with no interaction: InteractionFrom answers %q, want the parent's", got)
	}
}

// SetOpenPrincipal makes the request act for an open principal of the
// address, as OpenPrincipal does.
func TestHolderOpenPrincipal(t *testing.T) {
	ctx := &heldContext{Context: context.Background()}
	ctx.h.SetOpenPrincipal("192.0.2.7")
	if p := PrincipalFrom(ctx); p == nil || !reflect.DeepEqual(p, OpenPrincipal("192.0.2.7")) {
		t.Errorf("PrincipalFrom answers %+v, want %+v", p, OpenPrincipal("192.0.2.7"))
	}
}
