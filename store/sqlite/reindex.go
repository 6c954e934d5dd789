package sqlite

import (
	"context"
	"errors"
	"fmt"

	"carefhir/store"
)

var _ store.Reindexer = (*Store)(nil)

// scanBatch is how many resources Scan reads per query: each batch is its
// own read transaction, so a long scan does not pin the WAL.
const scanBatch = 1000

// Scan calls fn with each current, non-deleted version of typ, in id order.
func (s *Store) Scan(ctx context.Context, typ string, fn func(v *store.Version) error) error {
	after := ""
	for {
		vs, err := s.scanPage(ctx, typ, after)
		if err != nil {
			return fmt.Errorf("sqlite: scan %s: %w", typ, err)
		}
		for _, v := range vs {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(vs) < scanBatch {
			return nil
		}
		after = vs[len(vs)-1].ID
	}
}

func (s *Store) scanPage(ctx context.Context, typ, after string) ([]*store.Version, error) {
	return s.reader.versions(ctx, typ, currentSelect+` AND r.id > ? ORDER BY r.id`+limit(scanBatch), typ, after)
}

// Reindex replaces the search rows of v's resource if v is still current.
func (s *Store) Reindex(ctx context.Context, v *store.Version, ix store.Index) error {
	err := s.Transact(ctx, func(store.Tx) error {
		w := s.writer
		// Under a background context, as tx.Put writes: a reindex stopped
		// half-way would leave the unit of work half-written.
		bg := context.Background()
		cur, err := w.state(bg, v.Type, v.ID)
		if err != nil {
			return err
		}
		if cur.version != v.VersionID {
			return &store.ConflictError{Type: v.Type, ID: v.ID, Expected: v.VersionID, Current: cur.version}
		}
		if err := w.index.remove(bg, cur.rid); err != nil {
			return err
		}
		if w.cache != nil {
			// Searches of its type may find it otherwise now.
			w.touched = append(w.touched, versionKey{v.Type, v.ID})
		}
		return w.index.add(bg, v.Type, cur.rid, &ix)
	})
	var conflict *store.ConflictError
	if err != nil && !errors.As(err, &conflict) {
		return fmt.Errorf("sqlite: reindex %s/%s: %w", v.Type, v.ID, err)
	}
	return err
}

// FinishReindex recomputes, from the search rows of typ as they now are,
// what the parameters of typ record of their dates (param.dateWidth,
// param.dateMulti). Writes only ever widen them; once a type is
// reindexed, a wide or repeated date that is gone no longer keeps date
// searches from scanning a narrow range.
func (s *Store) FinishReindex(ctx context.Context, typ string) error {
	err := s.Transact(ctx, func(store.Tx) error {
		w := s.writer
		_, err := w.recomputeDates.ExecContext(context.Background(), typ)
		if err != nil {
			return err
		}
		// The writer's cached parameters and, once committed, the
		// readers' are out of date. What a search finds is not: the
		// widths choose its plan, and each Reindex before dropped the
		// pages of searches of typ.
		w.index.params.changedAll()
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: finish reindex of %s: %w", typ, err)
	}
	return nil
}
