package access

import "context"

type requesterKey struct{}

// ActingAs returns ctx in which the store decides as p, while what is
// touched is still recorded for the request of ctx: the server deriving
// records from a write it was allowed (a hook) acts for itself within the
// request that caused it. Requester still names who asked.
func ActingAs(ctx context.Context, p *Principal) context.Context {
	rec := RecordFrom(ctx)
	if rec == nil {
		rec = &Record{}
	}
	if asker := PrincipalFrom(ctx); asker != nil && ctx.Value(requesterKey{}) == nil {
		ctx = context.WithValue(ctx, requesterKey{}, asker)
	}
	r := &request{record: rec}
	r.p = p
	return context.WithValue(WithPrincipal(ctx, p), requestKey{}, r)
}

// Requester returns who the request of ctx acts for, even where the server
// acts for itself within it (ActingAs): the owner a subscription records.
func Requester(ctx context.Context) *Principal {
	if p, ok := ctx.Value(requesterKey{}).(*Principal); ok {
		return p
	}
	return PrincipalFrom(ctx)
}
