package access

import "carefhir/store"

// Unwrap returns the engine's unit of work below the access decisions,
// for the server's own records written with it (see Store.Unwrap).
func (t *tx_) Unwrap() store.Tx { return t.tx }
