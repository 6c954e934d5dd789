package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"carefhir/store"
)

// readBudget is what the GET entries of one Bundle may still return
// (Limits.BundleReads).
type readBudget struct{ left, limit int }

func newReadBudget(limit int) *readBudget { return &readBudget{left: limit, limit: limit} }

// spend takes n bytes from the budget, refusing them, and any once it is
// spent (spend(0) asks before a read runs).
func (b *readBudget) spend(n int) error {
	if b.left == 0 || n > b.left {
		b.left = 0
		return errorf(http.StatusBadRequest, "too-costly",
			"the GET entries of this Bundle return more than %d bytes: split it into several Bundles, or narrow its searches", b.limit)
	}
	b.left -= n
	return nil
}

// read runs a GET or HEAD entry: a read, a vread, or a search on a type or
// in a Patient's compartment, through the unit's reader, so that inside a
// transaction it sees the transaction's writes. What a GET returns counts
// against the Bundle's budget of reads.
func (u *unit) read(ctx context.Context, e *entry, r *entryResult) error {
	if err := u.settleCriteria(ctx, e, r); err != nil {
		return err
	}
	if e.method == http.MethodHead {
		return u.readTarget(ctx, e, r)
	}
	if err := u.reads.spend(0); err != nil {
		return err // spent: the read would be refused after it ran
	}
	if err := u.readTarget(ctx, e, r); err != nil {
		return err
	}
	return u.reads.spend(len(r.body))
}

func (u *unit) readTarget(ctx context.Context, e *entry, r *entryResult) error {
	t := e.target
	if r.query != nil {
		t.query = r.query // with placeholders replaced
	}
	switch t.kind {
	case targetInstance, targetVersion:
		var (
			v   *store.Version
			err error
		)
		if t.kind == targetInstance {
			if v, err = u.tx.Read(ctx, t.typ, t.id); err != nil {
				return notFound(err, t.typ, t.id)
			}
		} else if v, err = u.tx.VRead(ctx, t.typ, t.id, t.vid); err != nil {
			return notFound(err, t.typ, t.id+"/_history/"+strconv.FormatInt(t.vid, 10))
		}
		if v.Deleted {
			return gone(v)
		}
		if err := e.versionMatch().check(v); err != nil {
			return err
		}
		r.v = v
		if current(e.ifNoneMatch, e.ifModifiedSince, v) {
			r.status = http.StatusNotModified
			return nil
		}
		body, err := subset(v.Type, v.JSON, t.query)
		r.status, r.body = http.StatusOK, body
		return err
	case targetType:
		return u.search(ctx, r, t.typ, nil, t)
	case targetCompartment:
		clause, ok := u.a.search.Compartment(t.compartment, t.id)
		if !ok {
			return errorf(http.StatusNotFound, "not-supported", "%s resources are not in the Patient compartment", t.compartment)
		}
		return u.search(ctx, r, t.compartment, &clause, t)
	}
	return errorf(http.StatusBadRequest, "not-supported", "history is not supported in a transaction or batch: read it with GET [type]/[id]/_history")
}

// search runs a search on typ, narrowed by extra when set, and keeps the
// searchset Bundle as the entry's resource.
func (u *unit) search(ctx context.Context, r *entryResult, typ string, extra *store.Clause, t requestTarget) error {
	plan, err := u.a.parseSearchIn(u.c, u.tx, typ, t.query)
	if err != nil {
		return err
	}
	if extra != nil {
		plan.Query.Where = append(plan.Query.Where, *extra)
	}
	page, more, err := find(ctx, u.tx, plan.Query)
	if err != nil {
		return err
	}
	path := typ
	if t.kind == targetCompartment {
		path = "Patient/" + t.id + "/" + typ
	}
	link := func(cursor string) string {
		p := cloneValues(plan.Params)
		if cursor != "" {
			p.Set("_cursor", cursor)
		}
		s := u.a.baseURL(u.c) + "/" + path
		if enc := p.Encode(); enc != "" {
			s += "?" + enc
		}
		return s
	}
	b := u.a.searchBundle(u.c, link(plan.Query.Cursor), plan, page.Total)
	b.Link = append(b.Link, bundleLink{Relation: "first", URL: link("")})
	if page.Prev != "" {
		b.Link = append(b.Link, bundleLink{Relation: "previous", URL: link(page.Prev)})
	}
	if page.Next != "" {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: link(page.Next)})
	}
	if err := u.a.addEntries(u.c, b, plan, page); err != nil {
		return err
	}
	if more {
		b.Entry = append(b.Entry, bundleEntry{Search: &entrySearch{Mode: "outcome"}, Resource: newOutcome(Issue{
			Severity: "warning", Code: "incomplete",
			Diagnostics: "more resources match than this page holds; pages cannot be followed inside a transaction on this storage engine: search outside the transaction"}).marshal()})
	}
	r.status = http.StatusOK
	r.body, err = json.Marshal(b)
	return err
}

// find runs q with the reader's plan executor. The unit of work of an
// engine that has none, or whose executor cannot answer q
// (errors.ErrUnsupported: on MongoDB without transactions, once the unit
// wrote what q reads), answers from Search: the criteria and the total
// alone, without sort, includes or paging; more matches than a page holds
// are left out and reported (more).
func find(ctx context.Context, r store.Reader, q store.Query) (page *store.Page, more bool, err error) {
	if f, ok := r.(store.Finder); ok {
		page, err = f.Find(ctx, q)
		if !errors.Is(err, errors.ErrUnsupported) {
			return page, false, err
		}
	}
	if len(q.Sort) > 0 || len(q.Include) > 0 || len(q.RevInclude) > 0 || q.Cursor != "" {
		return nil, false, errorf(http.StatusBadRequest, "not-supported",
			"_sort, _include, _revinclude and paging are not available in a search inside a transaction on this storage engine: search outside the transaction")
	}
	all, err := r.Search(ctx, store.Query{Type: q.Type, Where: q.Where})
	if err != nil {
		return nil, false, err
	}
	page = &store.Page{Matches: all, Total: -1}
	if q.Total != store.TotalNone {
		page.Total = len(all)
	}
	if len(all) > q.Count {
		page.Matches, more = all[:q.Count], q.Count > 0
	}
	return page, more, nil
}
