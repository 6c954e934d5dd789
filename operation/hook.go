package operation

import (
	"context"
	"slices"

	"carefhir/fhir"
	"carefhir/store"
)

// Change is one write a hook sees: a create, update or delete made by the
// REST API, a transaction or batch entry, an operation or another hook.
type Change struct {
	Type, ID string
	// Resource is the content written; nil for a delete.
	Resource fhir.Resource
	// Version is the version written; nil in Check, before the write.
	Version *store.Version
	// Deleted marks a delete.
	Deleted bool
	// Created marks a write that creates its resource: a create, or an
	// update of an id that does not exist or was deleted, which R4 has
	// create the resource again (update as create), whatever its
	// version; a history shows it as created (201).
	Created bool
	// Written, for a write of a transaction's entry, returns the versions
	// of a type that the other entries of the transaction create or
	// update, whatever their order in it: they are kept with this write or
	// not at all, though some are not yet in the store when a hook runs
	// (entries that patch are not among them). A check that reads other
	// resources looks here first, so that the outcome of a transaction
	// does not depend on the order of its entries. Nil outside a
	// transaction.
	Written func(typ string) []*store.Version
	// AsRequester returns ctx in which the reads of the hook's store are
	// decided as reads by who asked for the write, not by the server: for
	// a hook that looks up what the write names (a patient by identifier,
	// a goal), so that what it finds, and what it refuses, says nothing of
	// records they may not read. Nil where no one asked (ctx stands).
	AsRequester func(ctx context.Context) context.Context

	// kept holds, by hook name, what each hook's Check keeps for its
	// After (Keep).
	kept map[string]any
}

// Keep keeps v, under the name of the hook whose Check runs, for the
// After of that hook (Kept): what it read before the write and needs
// after it, such as the version the write replaces, which the store
// holds no more once the write is made. It lives as long as the Change,
// so a write refused after its Check leaves nothing behind.
func (c *Change) Keep(hook string, v any) {
	if c.kept == nil {
		c.kept = map[string]any{}
	}
	c.kept[hook] = v
}

// Kept returns what the Check of the hook named hook kept (Keep), nil
// when it kept nothing.
func (c *Change) Kept(hook string) any {
	return c.kept[hook]
}

// Requester returns ctx as c.AsRequester makes it, or ctx when c has none.
func (c *Change) Requester(ctx context.Context) context.Context {
	if c.AsRequester == nil {
		return ctx
	}
	return c.AsRequester(ctx)
}

// Hook is run by the server on every write of its Types, in the unit of
// work of the write. Its reads and writes act for the server itself (an
// access principal of the system, named by the hook), since the write that
// triggers it is decided against who asked for it before any hook runs (a
// write they may not make runs none); they are recorded in that request's
// audit event.
type Hook struct {
	// Name names the hook in logs and in the audit trail, such as
	// "pam-scoring".
	Name string
	// Types are the resource types whose writes run the hook; nil: every
	// type.
	Types []string
	// Also, when set, reports whether writes of a type outside Types run
	// the hook too, as the hook's state has it at the write (notify: a
	// live Subscription of that type that another process may deliver).
	Also func(typ string) bool
	// Check, when set, runs before the write: an error refuses the write
	// and the unit of work it belongs to (an *Error with its status and
	// issues, typically 422).
	Check func(ctx context.Context, s Store, c *Change) error
	// After, when set, runs after the write: the writes it makes through s
	// are part of the same unit of work, kept or discarded with it. The
	// issues it returns are warnings the response to the write carries in
	// an OperationOutcome.
	After func(ctx context.Context, s Store, c *Change) ([]Issue, error)
}

// Applies reports whether writes of typ run h.
func (h Hook) Applies(typ string) bool {
	return h.Types == nil || slices.Contains(h.Types, typ) || (h.Also != nil && h.Also(typ))
}
