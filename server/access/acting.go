package access

import "context"

// ActingAs returns ctx in which the store decides as p, while what is
// touched is still recorded for the request of ctx: the server deriving
// records from a write it was allowed (a hook) acts for itself within the
// request that caused it.
func ActingAs(ctx context.Context, p *Principal) context.Context {
	rec := RecordFrom(ctx)
	if rec == nil {
		rec = &Record{}
	}
	r := &request{record: rec}
	r.p = p
	return context.WithValue(WithPrincipal(ctx, p), requestKey{}, r)
}
