package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"carefhir/store"
)

// The values of _profile, _tag and _security in use are read from the
// search tables by a loose scan: each statement seeks the next distinct
// value of one parameter past the last found, so that a tag on a million
// resources costs one seek, not a million rows, and the whole costs a seek
// per distinct value (and one per parameter past its last).
const (
	metaParamsSQL = `SELECT pid, type, name FROM params WHERE name IN ('_profile', '_tag', '_security') ORDER BY pid`
	nextTokenSQL  = `SELECT code, system FROM tokens WHERE pid = ?1 AND (code, system) > (?2, ?3) ORDER BY code, system LIMIT 1`
	nextURISQL    = `SELECT value FROM uris WHERE pid = ?1 AND value > ?2 ORDER BY value LIMIT 1`
)

// MetaInUse implements store.MetaLister.
func (s *Store) MetaInUse(ctx context.Context, types []string, limit int) (*store.MetaValues, error) {
	rows, err := s.rdb.QueryContext(ctx, metaParamsSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite: meta in use: %w", err)
	}
	type metaParam struct {
		pid  int64
		name string
	}
	var params []metaParam
	for rows.Next() {
		var p metaParam
		var typ string
		if err := rows.Scan(&p.pid, &typ, &p.name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: meta in use: %w", err)
		}
		if slices.Contains(types, typ) {
			params = append(params, p)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: meta in use: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: meta in use: %w", err)
	}
	found := store.NewMetaCollector(limit)
	for _, p := range params {
		if err := s.distinct(ctx, p.pid, p.name, found); err != nil {
			return nil, fmt.Errorf("sqlite: meta in use: %s: %w", p.name, err)
		}
		if !found.More() {
			break
		}
	}
	return found.Values(), nil
}

// distinct adds the distinct values of the parameter pid, named name, to
// found, until it takes no more.
func (s *Store) distinct(ctx context.Context, pid int64, name string, found *store.MetaCollector) error {
	var t store.Token
	t.Param = name
	for found.More() {
		var err error
		if name == "_profile" {
			err = s.rdb.QueryRowContext(ctx, nextURISQL, pid, t.Code).Scan(&t.Code)
		} else {
			err = s.rdb.QueryRowContext(ctx, nextTokenSQL, pid, t.Code, t.System).Scan(&t.Code, &t.System)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found.Add(t)
	}
	return nil
}
