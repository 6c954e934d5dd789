package access

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"carefhir/store"
)

// readAhead is a store.Reader answering reads of the current versions it
// fetched in batches, a search by id of each type, and every other call
// through the reader it wraps: deciding a page of versions one by one then
// costs a few searches, not a read or more for each version.
type readAhead struct {
	store.Reader
	current map[string]*store.Version // by Type/id
	sought  map[string]bool           // by Type/id: searched for, found or not
	listed  map[string]listedOf       // by Type/id: whom a resource listed belongs to
}

// readAheadIDs is the most ids one search of a readAhead names: a page of
// a filtered history (historyScan) in one search.
const readAheadIDs = historyScan

// readingAhead returns r reading ahead the current versions of refs, each
// Type/id, besides those it already reads ahead when it is a readAhead. A
// resource the searches do not find (deleted, or not held) is read
// through r when it is asked for.
func readingAhead(ctx context.Context, r store.Reader, refs []string) (*readAhead, error) {
	ra, ok := r.(*readAhead)
	if !ok {
		ra = &readAhead{Reader: r, current: map[string]*store.Version{}, sought: map[string]bool{}, listed: map[string]listedOf{}}
	}
	byType := map[string][]string{}
	var types []string
	for _, ref := range refs {
		if ra.sought[ref] {
			continue
		}
		ra.sought[ref] = true
		typ, id, _ := strings.Cut(ref, "/")
		if byType[typ] == nil {
			types = append(types, typ)
		}
		byType[typ] = append(byType[typ], id)
	}
	for _, typ := range types {
		for ids := range slices.Chunk(byType[typ], readAheadIDs) {
			found, err := ra.Reader.Search(ctx, store.Query{Type: typ, Where: []store.Clause{idClause(ids...)}, Count: len(ids)})
			if err != nil {
				return nil, fmt.Errorf("access: read ahead %d %s: %w", len(ids), typ, err)
			}
			for _, v := range found {
				ra.current[typ+"/"+v.ID] = v
			}
		}
	}
	return ra, nil
}

// Read implements store.Reader.
func (ra *readAhead) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if v, ok := ra.current[typ+"/"+id]; ok {
		return v, nil
	}
	return ra.Reader.Read(ctx, typ, id)
}

// VRead implements store.Reader: the current version read ahead is the
// version of its number.
func (ra *readAhead) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	if v, ok := ra.current[typ+"/"+id]; ok && v.VersionID == version {
		return v, nil
	}
	return ra.Reader.VRead(ctx, typ, id, version)
}

// refsOf returns the Type/id of the resources of vs.
func refsOf(vs []*store.Version) []string {
	refs := make([]string, len(vs))
	for i, v := range vs {
		refs[i] = v.Type + "/" + v.ID
	}
	return refs
}

// securityContexts returns the resources the Binaries of vs name as their
// securityContext, when the principal's reach of Binaries is decided by
// them (see grant.oneByOne), to be read ahead.
func (d *decider) securityContexts(vs []*store.Version) ([]string, error) {
	if g, err := d.grant("Binary", Read); err != nil || !g.oneByOne() {
		return nil, nil
	}
	var refs []string
	for _, v := range vs {
		if v.Type != "Binary" || v.Deleted {
			continue
		}
		ref, named, err := securityContextOf(v.JSON)
		if err != nil {
			return nil, err
		}
		if _, _, ok := d.heldRef(ref); named && ok {
			refs = append(refs, ref)
		}
	}
	return refs, nil
}

// listedResources returns the resources the versions of vs list (see
// listedRefs), when the principal's reach of their type, as grantOf
// returns it, is decided by whom they list (see grant.byMembers), to be
// read ahead.
func (d *decider) listedResources(vs []*store.Version, grantOf func(typ string) (*grant, error)) ([]string, error) {
	var refs []string
	for _, v := range vs {
		if v.Deleted || !listsMembers(v.Type) {
			continue
		}
		if g, err := grantOf(v.Type); err != nil || g.all || !g.byMembers() {
			continue
		}
		ix, err := d.rules.Index(v.Type, v.JSON)
		if err != nil {
			return nil, fmt.Errorf("access: index %s/%s: %w", v.Type, v.ID, err)
		}
		_, listed, _ := listedRefs(d.rules, listedParam(v.Type), &ix)
		refs = append(refs, listed...)
	}
	return refs, nil
}
