package access

import (
	"context"
	"fmt"

	"carefhir/store"
)

// MetaInUse implements store.MetaLister when the wrapped store does. The
// profiles, tags and security labels in use are those of every resource
// of types, which no search narrowed to the principal's reach can tell:
// a principal who may read only some resources of one of them (a patient
// context, the care-team rule, a scope's restriction) is denied, as the
// values would tell of resources they may not read. A whole system's
// (types nil, every type served) is denied unless they may read every
// resource of every type.
func (s *Store) MetaInUse(ctx context.Context, types []string, limit int) (*store.MetaValues, error) {
	m, ok := s.next.(store.MetaLister)
	if !ok {
		return nil, fmt.Errorf("access: the store does not list the meta in use")
	}
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	system := types == nil
	if system {
		types = s.rules.Types
	}
	for _, t := range types {
		g, err := req.grant(t, Read)
		switch {
		case err != nil && system:
			return nil, forbidden("the profiles, tags and security labels in use on the system are those of every type: the access token's scopes do not allow read on %s", t)
		case err != nil:
			return nil, err
		case !g.all && system:
			return nil, forbidden("the profiles, tags and security labels in use on the system are those of every resource: the access token's scopes allow reading only some of %s", t)
		case !g.all:
			return nil, forbidden("the profiles, tags and security labels in use on %s are those of every %s: the access token's scopes allow reading only some", t, t)
		}
	}
	return m.MetaInUse(ctx, types, limit)
}
