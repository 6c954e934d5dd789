package mongo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

// Read returns the current version of typ/id, which may be a tombstone, or
// store.ErrNotFound.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if !validType(typ) {
		return nil, fmt.Errorf("mongo: read %s/%s: %w", typ, id, store.ErrNotFound)
	}
	var d versionDoc
	err := s.db.Collection(typ).FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(currentProjection)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("mongo: read %s/%s: %w", typ, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: read %s/%s: %w", typ, id, err)
	}
	return d.version(typ, id), nil
}

// VRead returns version v of typ/id, which may be a tombstone, or
// store.ErrNotFound.
func (s *Store) VRead(ctx context.Context, typ, id string, v int64) (*store.Version, error) {
	if !validType(typ) || v < 1 {
		return nil, fmt.Errorf("mongo: vread %s/%s/%d: %w", typ, id, v, store.ErrNotFound)
	}
	var d versionDoc
	// Type and id are the shard key of a sharded history: they make the
	// read go to one shard.
	err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: historyKey(typ, id, v)},
		{Key: fieldType, Value: typ}, {Key: fieldID, Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// The version may be current with its history write cut short by a
		// crash of an engine that wrote history second.
		filter := bson.D{{Key: "_id", Value: id}, {Key: fieldVersion, Value: v}}
		err = s.db.Collection(typ).FindOne(ctx, filter, options.FindOne().SetProjection(currentProjection)).Decode(&d)
	}
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("mongo: vread %s/%s/%d: %w", typ, id, v, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: vread %s/%s/%d: %w", typ, id, v, err)
	}
	return d.version(typ, id), nil
}

// Search returns the current, non-deleted versions that match q, ordered by
// id.
func (s *Store) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	return s.search(ctx, q, q.Count)
}

// search is Search returning at most limit versions (0: no limit).
func (s *Store) search(ctx context.Context, q store.Query, limit int) ([]*store.Version, error) {
	if !validType(q.Type) {
		return []*store.Version{}, nil
	}
	f, err := s.compile(ctx, q.Type, q.Where)
	if err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if len(f.checks) == 0 {
		opts.SetProjection(currentProjection)
		if limit > 0 {
			opts.SetLimit(int64(limit))
		}
	}
	cur, err := s.db.Collection(q.Type).Find(ctx, f.filter, opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	defer cur.Close(ctx)
	vs := []*store.Version{}
	for cur.Next(ctx) && (limit <= 0 || len(vs) < limit) {
		if !f.check(cur.Current) {
			continue
		}
		var d versionDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
		}
		vs = append(vs, d.version(q.Type, d.Key))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	return vs, nil
}

// History returns a page of versions, newest first.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	vs, total, err := s.history(ctx, q, nil)
	if err != nil {
		return nil, err
	}
	return historyPage(vs, total, q.Count), nil
}

// historyPage returns the page of vs, the versions from the page's first on
// (at least Count+1 of them if there are more pages).
func historyPage(vs []*store.Version, total, count int) *store.HistoryPage {
	p := &store.HistoryPage{Versions: vs, Total: total}
	if len(vs) > count {
		p.Versions = vs[:count]
		c := position(vs[count-1])
		c.Total = total
		p.Next = c.encode()
	}
	return p
}

// history returns up to q.Count+1 versions that q selects, from its cursor
// on and newest first, and how many versions q selects over all pages.
// Versions named in exclude ({type, id, v} documents) are left out.
func (s *Store) history(ctx context.Context, q store.HistoryQuery, exclude bson.A) ([]*store.Version, int, error) {
	if q.Count <= 0 {
		return nil, 0, fmt.Errorf("mongo: history: page size %d, want > 0", q.Count)
	}
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, 0, err
	}
	if q.Type != "" && !validType(q.Type) {
		return []*store.Version{}, 0, nil
	}
	filter := historyFilter(q, exclude)
	// The total is counted for the first page and carried by the cursors
	// of the next ones: counting is a scan of every version selected.
	var total int64
	if after != nil && after.Total > 0 {
		total = int64(after.Total)
	} else if total, err = s.versions.CountDocuments(ctx, filter); err != nil {
		return nil, 0, fmt.Errorf("mongo: history: %w", err)
	}
	sort := historySort(q)
	if after != nil {
		filter = bson.D{{Key: "$and", Value: bson.A{filter, after.filter(sort)}}}
	}
	cur, err := s.versions.Find(ctx, filter, options.Find().SetSort(sort).SetLimit(int64(q.Count)+1))
	if err != nil {
		return nil, 0, fmt.Errorf("mongo: history: %w", err)
	}
	var docs []versionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, 0, fmt.Errorf("mongo: history: %w", err)
	}
	vs := make([]*store.Version, len(docs))
	for i := range docs {
		vs[i] = docs[i].version(docs[i].Type, docs[i].ID)
	}
	return vs, int(total), nil
}

// historyFilter returns the filter of the versions q selects over all pages,
// but those in exclude.
func historyFilter(q store.HistoryQuery, exclude bson.A) bson.D {
	f := bson.D{}
	if q.Type != "" {
		f = append(f, bson.E{Key: fieldType, Value: q.Type})
	} else if q.Types != nil {
		f = append(f, bson.E{Key: fieldType, Value: bson.D{{Key: "$in", Value: q.Types}}})
	}
	if q.ID != "" {
		f = append(f, bson.E{Key: fieldID, Value: q.ID})
	}
	ts := bson.D{}
	if !q.Since.IsZero() {
		ts = append(ts, bson.E{Key: "$gte", Value: bson.NewDateTimeFromTime(q.Since)})
	}
	if !q.AtHigh.IsZero() {
		ts = append(ts, bson.E{Key: "$lt", Value: bson.NewDateTimeFromTime(q.AtHigh)})
	}
	if len(ts) > 0 {
		f = append(f, bson.E{Key: fieldTime, Value: ts})
	}
	nor := bson.A{}
	if !q.AtLow.IsZero() {
		// Replaced at or before AtLow; current versions have no end.
		nor = append(nor, bson.D{{Key: fieldEnd, Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(q.AtLow)}}}})
	}
	nor = append(nor, exclude...)
	if len(nor) > 0 {
		f = append(f, bson.E{Key: "$nor", Value: nor})
	}
	return f
}

// historySort returns the order of history pages: newest lastUpdated first,
// then type, id and version, all descending. Fields q fixes are left out, so
// that each history level reads one of the indexes made by start.
func historySort(q store.HistoryQuery) bson.D {
	sort := bson.D{{Key: fieldTime, Value: -1}}
	if q.Type == "" {
		sort = append(sort, bson.E{Key: fieldType, Value: -1})
	}
	if q.ID == "" {
		sort = append(sort, bson.E{Key: fieldID, Value: -1})
	}
	return append(sort, bson.E{Key: fieldVersion, Value: -1})
}

// cursor is the position of the last version of a history page: the next
// page holds the versions that sort after it.
type cursor struct {
	Time    int64  `json:"t"` // lastUpdated, milliseconds since the epoch
	Type    string `json:"y"`
	ID      string `json:"i"`
	Version int64  `json:"v"`
	// Total is the number of versions over all pages, counted for the
	// first page (0 in cursors that do not carry it).
	Total int `json:"n,omitempty"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the position s names, nil for "".
func decodeCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.DisallowUnknownFields()
		err = d.Decode(&c)
	}
	if err != nil || c.Type == "" || c.ID == "" || c.Version < 1 || c.Total < 0 {
		return nil, fmt.Errorf("mongo: history: cursor %q: %w", s, store.ErrBadCursor)
	}
	return &c, nil
}

// value returns the cursor's value of a history field.
func (c *cursor) value(field string) any {
	switch field {
	case fieldTime:
		return bson.DateTime(c.Time)
	case fieldType:
		return c.Type
	case fieldID:
		return c.ID
	default:
		return c.Version
	}
}

// filter returns the filter of the versions after c in the order sort (all
// fields descending): for some field, equal on the fields before it and less
// on it.
func (c *cursor) filter(sort bson.D) bson.D {
	or := bson.A{}
	for i, e := range sort {
		d := bson.D{}
		for _, before := range sort[:i] {
			d = append(d, bson.E{Key: before.Key, Value: c.value(before.Key)})
		}
		d = append(d, bson.E{Key: e.Key, Value: bson.D{{Key: "$lt", Value: c.value(e.Key)}}})
		or = append(or, d)
	}
	return bson.D{{Key: "$or", Value: or}}
}

// after reports whether v sorts after c in history order.
func (c *cursor) after(v *store.Version) bool {
	if t := v.LastUpdated.UnixMilli(); t != c.Time {
		return t < c.Time
	}
	if v.Type != c.Type {
		return v.Type < c.Type
	}
	if v.ID != c.ID {
		return v.ID < c.ID
	}
	return v.VersionID < c.Version
}

// position returns the cursor that points at v.
func position(v *store.Version) cursor {
	return cursor{Time: v.LastUpdated.UnixMilli(), Type: v.Type, ID: v.ID, Version: v.VersionID}
}

// newer orders versions as history pages do, newest first.
func newer(a, b *store.Version) int {
	pa, pb := position(a), position(b)
	switch {
	case pa.after(b):
		return -1
	case pb.after(a):
		return 1
	}
	return 0
}

// selects reports whether the history query q, without its cursor, selects
// version v, which stopped being current at end (zero: still current).
func selects(q store.HistoryQuery, v *store.Version, end time.Time) bool {
	switch {
	case q.Type != "" && v.Type != q.Type,
		q.Type == "" && q.Types != nil && !slices.Contains(q.Types, v.Type),
		q.ID != "" && v.ID != q.ID,
		!q.Since.IsZero() && v.LastUpdated.Before(q.Since),
		!q.AtHigh.IsZero() && !v.LastUpdated.Before(q.AtHigh),
		!q.AtLow.IsZero() && !end.IsZero() && !end.After(q.AtLow):
		return false
	}
	return true
}
