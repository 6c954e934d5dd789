package sqlite

import (
	"context"
	"fmt"
	"time"

	"carefhir/store"
)

var _ store.Purger = (*Store)(nil)

// Purge removes every version of each resource of typ named in ids, its
// row in resources and its search rows, in one unit of work.
func (s *Store) Purge(ctx context.Context, typ string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.Transact(ctx, func(store.Tx) error { return s.writer.purge(typ, ids) })
	if err != nil {
		return fmt.Errorf("sqlite: purge %s: %w", typ, err)
	}
	return nil
}

// PurgeDeleted removes the resources of typ whose current version is a
// tombstone written before before, at most the given number of them, in id order.
func (s *Store) PurgeDeleted(ctx context.Context, typ string, before time.Time, most int) (int, error) {
	if most <= 0 {
		return 0, nil // LIMIT 0 or less would read as no limit in SQLite
	}
	var n int
	err := s.Transact(ctx, func(store.Tx) error {
		rows, err := s.wconn.QueryContext(context.Background(), `SELECT r.id FROM resources r JOIN versions v ON v.seq = r.seq
WHERE r.type = ? AND r.deleted = 1 AND v.last_updated < ? ORDER BY r.id`+limit(most), typ, before.UnixMilli())
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(ids)
		return s.writer.purge(typ, ids)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge deleted %s: %w", typ, err)
	}
	return n, nil
}

// purge removes typ/id of each of ids within the open unit of work. Under a
// background context, as tx.Put writes: a purge stopped half-way would
// leave the unit of work half-written.
func (w *writer) purge(typ string, ids []string) error {
	bg := context.Background()
	for _, id := range ids {
		cur, err := w.state(bg, typ, id)
		if err != nil {
			return err
		}
		if cur.rid == 0 {
			continue
		}
		if w.cache != nil {
			w.touched = append(w.touched, versionKey{typ, id})
		}
		if err := w.index.remove(bg, cur.rid); err != nil {
			return err
		}
		if _, err := w.purgeResource.ExecContext(bg, cur.rid); err != nil {
			return err
		}
		if _, err := w.purgeVersions.ExecContext(bg, typ, id); err != nil {
			return err
		}
	}
	return nil
}

// PurgeEarlier removes the versions of typ/id before its current one.
func (s *Store) PurgeEarlier(ctx context.Context, typ, id string) error {
	err := s.Transact(ctx, func(store.Tx) error {
		bg := context.Background()
		cur, err := s.writer.state(bg, typ, id)
		if err != nil || cur.rid == 0 {
			return err
		}
		_, err = s.writer.purgeEarlier.ExecContext(bg, typ, id, cur.version)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge earlier versions of %s/%s: %w", typ, id, err)
	}
	return nil
}
