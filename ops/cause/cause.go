// Package cause carries why a request failed from a plain HTTP handler,
// which answers the client without internals, to the request log, which
// keeps the cause beside the request id: every 5xx is logged with it.
package cause

import "context"

type key struct{}

// holder is the cause of one request's failure.
type holder struct{ err error }

// With returns ctx carrying a place for the cause of a request's failure,
// and a function that returns the cause recorded there, if any.
func With(ctx context.Context) (context.Context, func() error) {
	h := &holder{}
	return context.WithValue(ctx, key{}, h), func() error { return h.err }
}

// Record keeps err as the cause of the failure of the request of ctx; the
// first one recorded is kept. Without a place made by With, it does
// nothing: the handler runs outside a server that logs causes.
func Record(ctx context.Context, err error) {
	if h, ok := ctx.Value(key{}).(*holder); ok && h.err == nil && err != nil {
		h.err = err
	}
}
