package sqlite

import (
	"context"
	"database/sql"
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
	rows, err := s.reader.stmts.query(ctx, `SELECT r.id, r.version, v.last_updated, v.json
FROM resources r JOIN versions v ON v.seq = r.seq
WHERE r.type = ? AND r.id > ? AND r.deleted = 0 ORDER BY r.id LIMIT ?`, typ, after, scanBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Version
	for rows.Next() {
		v := &store.Version{Type: typ}
		var ms int64
		if err := rows.Scan(&v.ID, &v.VersionID, &ms, &v.JSON); err != nil {
			return nil, err
		}
		v.LastUpdated = fromMillis(ms)
		out = append(out, v)
	}
	return out, rows.Err()
}

// Reindex replaces the search rows of v's resource if v is still current.
func (s *Store) Reindex(ctx context.Context, v *store.Version, ix store.Index) error {
	err := s.Transact(ctx, func(store.Tx) error {
		w := s.writer
		var current, seq int64
		err := w.current.QueryRowContext(ctx, v.Type, v.ID).Scan(&current, &seq)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if current != v.VersionID {
			return &store.ConflictError{Type: v.Type, ID: v.ID, Expected: v.VersionID, Current: current}
		}
		if _, err := w.deleteTokens.ExecContext(ctx, v.Type, v.ID); err != nil {
			return err
		}
		if err := w.index.remove(ctx, v.Type, v.ID); err != nil {
			return err
		}
		if err := w.insertTokens(ctx, &store.Write{Type: v.Type, ID: v.ID, Index: ix}); err != nil {
			return err
		}
		return w.index.add(ctx, v.Type, v.ID, &ix)
	})
	var conflict *store.ConflictError
	if err != nil && !errors.As(err, &conflict) {
		return fmt.Errorf("sqlite: reindex %s/%s: %w", v.Type, v.ID, err)
	}
	return err
}
