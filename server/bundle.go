package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	ext "carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
)

// registerBundle registers the transaction and batch interactions: a
// Bundle POSTed to the base (FHIR R4 RESTful API, 3.1.0.11).
func (a *api) registerBundle(g *gin.RouterGroup) {
	g.POST("", a.bundle)
	// Clients that join the base and an empty path post to /fhir/.
	g.POST("/", a.bundle)
	a.caps.addSystem("transaction", "batch")
}

// bundle answers a transaction or a batch with a transaction-response or
// batch-response Bundle. A transaction that fails answers one
// OperationOutcome naming the entry that failed, and has changed nothing.
func (a *api) bundle(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		c.Error(err)
		return
	}
	b, err := a.readBundle(c, body)
	if err != nil {
		c.Error(err)
		return
	}
	var entries [][]byte
	if b.kind == "transaction" {
		access.RecordFrom(c.Request.Context()).SetInteraction(access.InteractionTransaction)
	}
	if b.kind == "transaction" {
		entries, err = a.transaction(c.Request.Context(), c, b.entries, preferReturn(c))
	} else {
		entries, err = encodeEntries(a.batch(c, b.entries)).result()
	}
	if err != nil {
		c.Error(err)
		return
	}
	out, err := json.Marshal(bundle{
		ResourceType: "Bundle",
		ID:           newID(),
		Meta:         bundleMeta{LastUpdated: formatInstant(time.Now())},
		Type:         b.kind + "-response",
	})
	if err != nil {
		c.Error(err)
		return
	}
	writeFHIR(c, http.StatusOK, withEntries(out, entries))
}

// transaction runs every entry in one unit of work of the store: all take
// effect or none does. It returns the response entries in request order,
// encoded.
func (a *api) transaction(ctx context.Context, c *gin.Context, entries []*entry, ret string) ([][]byte, error) {
	for _, e := range entries {
		if e.err != nil {
			return nil, entryFailure(e, e.err)
		}
	}
	var (
		attempt int
		enc     *entryEncoder
	)
	err := a.svc.transact(ctx, func(ctx context.Context, tx store.Tx) error {
		attempt++
		if enc != nil { // the store runs the unit again: its outcome will differ
			enc.stop()
			enc = nil
		}
		var err error
		enc, err = a.transactionIn(ctx, c, tx, entries, attempt > 1, ret)
		return err
	})
	if err != nil && enc != nil {
		enc.stop()
	}
	return transactionResult(enc, err)
}

// transactionIn runs the entries of a transaction in tx, a unit of work
// already begun, and starts encoding their response entries, which return
// what ret (a Prefer return value) asks. fresh is as for newUnit.
func (a *api) transactionIn(ctx context.Context, c *gin.Context, tx store.Tx, entries []*entry, fresh bool, ret string) (*entryEncoder, error) {
	u := a.newUnit(c, tx, entries, nil, fresh)
	// Every version the transaction writes carries its time.
	if err := u.run(withWriteTime(ctx, a.svc.timestamp(ctx))); err != nil {
		return nil, err
	}
	// The response is encoded while the store commits; it is dropped if
	// the commit fails.
	out := make([]bundleEntry, len(entries))
	for i, e := range entries {
		out[i] = a.responseEntry(c, e, u.results[e], ret)
	}
	return encodeEntries(out), nil
}

// transactionResult returns the response entries of a transaction that
// ended with err, or the error that names the entry that failed.
func transactionResult(enc *entryEncoder, err error) ([][]byte, error) {
	var ee *entryError
	switch {
	case errors.As(err, &ee):
		return nil, entryFailure(ee.entry, ee.err)
	case err != nil:
		return nil, err
	}
	return enc.result()
}

// entryEncoder encodes the entries of a response Bundle side by side (see
// parallel): the resources they return make up most of the response.
type entryEncoder struct {
	parts [][]byte
	errs  []error
	work  *parallel
}

func encodeEntries(entries []bundleEntry) *entryEncoder {
	enc := &entryEncoder{parts: make([][]byte, len(entries)), errs: make([]error, len(entries))}
	enc.work = startParallel(len(entries), func(i int) { enc.parts[i], enc.errs[i] = entries[i].appendJSON(nil) })
	return enc
}

// result returns the encoded entries once all are.
func (enc *entryEncoder) result() ([][]byte, error) {
	defer enc.stop()
	for i := range enc.parts {
		enc.work.wait(i)
		if enc.errs[i] != nil {
			return nil, enc.errs[i]
		}
	}
	return enc.parts, nil
}

func (enc *entryEncoder) stop() { enc.work.stop() }

// batch runs each entry on its own, as if it were a request of its own,
// each write in a unit of work of its own. Entries are run in the order a
// transaction's are; a failure is the response of its entry.
func (a *api) batch(c *gin.Context, entries []*entry) []bundleEntry {
	ctx := c.Request.Context()
	fullURLs := make(map[string]int)
	for _, e := range entries {
		if e.fullURL != "" {
			fullURLs[e.fullURL] = e.index
		}
	}
	out := make([]bundleEntry, len(entries))
	for _, e := range entries {
		if e.err != nil {
			out[e.index] = failedEntry(e, e.err)
		}
	}
	reads := newReadBudget(a.cfg.Limits.BundleReads)
	for _, e := range processingOrder(entries) {
		if e.err != nil {
			continue
		}
		var (
			u       *unit
			attempt int
		)
		run := func(ctx context.Context, tx store.Tx) error {
			attempt++
			u = a.newUnit(c, tx, []*entry{e}, fullURLs, attempt > 1)
			u.reads = reads
			return u.run(ctx)
		}
		var err error
		if e.method == http.MethodGet || e.method == http.MethodHead {
			err = run(ctx, a.svc.store)
		} else {
			err = a.svc.transact(ctx, run)
		}
		var ee *entryError
		if errors.As(err, &ee) {
			err = ee.err
		}
		if err != nil {
			out[e.index] = failedEntry(e, err)
			continue
		}
		out[e.index] = a.responseEntry(c, e, u.results[e], preferReturn(c))
	}
	return out
}

// processingOrder returns entries in the order a transaction processes
// them (FHIR R4 RESTful API, 3.1.0.11.2): DELETE, then POST, then PUT and
// PATCH, then GET and HEAD, each group in request order.
func processingOrder(entries []*entry) []*entry {
	out := make([]*entry, 0, len(entries))
	for _, group := range [][]string{
		{http.MethodDelete}, {http.MethodPost}, {http.MethodPut, http.MethodPatch}, {http.MethodGet, http.MethodHead},
	} {
		for _, e := range entries {
			for _, m := range group {
				if e.method == m {
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// entryError is the failure of one entry of a bundle.
type entryError struct {
	entry *entry
	err   error
}

func (e *entryError) Error() string { return e.entry.label() + ": " + e.err.Error() }
func (e *entryError) Unwrap() error { return e.err }

// entryFailure renders the failure of an entry as the server's Error: the
// status the failure has on its own, and its issues naming the entry, with
// their paths into the entry's resource.
func entryFailure(e *entry, err error) *Error {
	status, oo, _ := fromError(err)
	issues := make([]Issue, len(oo.Issue))
	for i, is := range oo.Issue {
		exprs := []string{e.path()}
		for _, x := range is.Expression {
			exprs = append(exprs, entryExpression(e, x))
		}
		is.Expression = exprs
		is.Diagnostics = e.label() + ": " + is.Diagnostics
		issues[i] = is
	}
	return &Error{Status: status, Issues: issues}
}

// entryExpression turns an expression rooted at the resource a POST or PUT
// entry carries (Patient.name[0]) into one rooted at the Bundle
// (Bundle.entry[3].resource.name[0]). Other expressions stay as they are:
// those of a PATCH are rooted at the patched resource, not at the patch
// the entry carries.
func entryExpression(e *entry, x string) string {
	typ := e.target.typ
	switch {
	case e.method != http.MethodPost && e.method != http.MethodPut:
		return x
	case typ == "" || len(x) < len(typ) || x[:len(typ)] != typ:
		return x
	case len(x) == len(typ):
		return e.path() + ".resource"
	case x[len(typ)] == '.':
		return e.path() + ".resource" + x[len(typ):]
	}
	return x
}

// failedEntry is the response entry of a batch entry that failed.
func failedEntry(e *entry, err error) bundleEntry {
	fe := entryFailure(e, err)
	return bundleEntry{Response: &entryResponse{
		Status:  statusLine(fe.Status),
		Outcome: newOutcome(fe.Issues...).marshal(),
	}}
}

// statusLine is an HTTP status as Bundle.entry.response.status gives it:
// "201 Created".
func statusLine(status int) string {
	return strconv.Itoa(status) + " " + http.StatusText(status)
}

// unit processes entries of a bundle in one unit of work of the store.
type unit struct {
	a       *api
	c       *gin.Context // the request, for search links and preferences
	tx      store.Tx
	entries []*entry
	results map[*entry]*entryResult
	// reads bounds what the GET entries return, over the whole Bundle:
	// a batch's units share one.
	reads *readBudget
	refs  *refResolver
	// targets maps each resource the unit changes, as Type/id, to the
	// entry that changes it.
	targets map[string]*entry
	// established maps the conditional URL (criteriaKey) of each
	// conditional create or update that matched nothing to the entry,
	// the first in processing order, whose resource a conditional
	// reference with the same criteria names (see writesMatching).
	established map[string]*entry
	// writeValues indexes the POSTs and PUTs by exact search values of
	// the resources they carry (see candidates): token codes, as sent,
	// and, once a query needs them (refsIndexed), references as they
	// will be stored. unindexed are those whose resources could not be
	// indexed; unresolved those whose references name an entry not
	// settled yet, each listed in waiting under the fullUrl of one such
	// entry, and indexed once it is settled (newlySettled). nil until
	// asked for.
	writeValues  map[writeKey][]*entry
	refsIndexed  bool
	unindexed    []*entry
	unresolved   map[*entry]bool
	waiting      map[string][]*entry
	newlySettled []string
	// byFullURL maps the fullUrl of each POST, PUT and PATCH to it, for the
	// placeholders of conditional criteria (see settleCriteria).
	byFullURL map[string]*entry
	// partly resolves the references of resources to match them before
	// every identity is settled (see matchIndexOf); nil until asked for.
	partly *refResolver
	// work prepares the writes of POSTs and PUTs (see prepare).
	work *parallel
	// createMatches holds what one search found stored for each
	// conditional create searched for with others (see storedMatch); nil
	// until the first is settled.
	createMatches map[*entry][]*store.Version
}

// entryResult is what processing an entry gave.
type entryResult struct {
	status int
	// res is the resource a POST or PUT writes: the entry's, or a fresh
	// copy of it when the unit runs again.
	res fhir.Resource
	id  string // the id of the resource the entry writes
	// exists is set when a conditional create found its match: nothing is
	// written and v is the match.
	exists bool
	// same is set when the match is the resource another entry of the
	// transaction writes: v is that entry's once written.
	same *entry
	// unchanged is set when a PUT's content is its target's current
	// version: nothing is written and v is that version.
	unchanged bool
	v         *store.Version // the version written, deleted or read; nil if none
	body      []byte         // what a search returns
	// invalid is what validating res found, and stage the write of res,
	// both prepared before the entry's turn (see prepare); stage also
	// holds the current version of a PUT's target.
	invalid error
	stage   *staged
	job     int // the entry's place in the work of prepare; -1 if none
	// named is set when a version-specific reference of the transaction
	// names the version a PUT or PATCH writes: the entry writes it even
	// when its content is the current version's, or the reference would
	// name a version that does not exist.
	named bool
	// index is the search values of the resource a POST or PUT writes,
	// as sent, for looking it up by token value (see indexWrites); nil
	// until asked for. resolved is so the resource with its references
	// to other entries resolved, for matching conditional criteria in
	// memory, and unsettled the references to entries whose identity was
	// not settled when it was indexed (see matchIndexOf).
	index     *store.Index
	resolved  *store.Index
	unsettled []string
	// criteria are the entry's conditional criteria (ifNoneExist, or
	// those of a conditional update, patch or delete) and establishes
	// their criteriaKey, with placeholders replaced (see
	// settleCriteria); query is so a GET's query, nil if it has none.
	criteria    *store.Query
	establishes string
	query       url.Values
	// settling is set while the entry's identity is being settled, and
	// settled once it is (see identify).
	settling, settled bool
}

// newUnit prepares entries to run in tx. fullURLs, for a batch, are the
// fullUrls of all its entries, which entries may not reference. fresh
// decodes the resources again, for a unit of work that the store runs
// again after it ran once.
func (a *api) newUnit(c *gin.Context, tx store.Tx, entries []*entry, fullURLs map[string]int, fresh bool) *unit {
	u := &unit{a: a, c: c, tx: tx, entries: entries, results: make(map[*entry]*entryResult, len(entries)),
		refs: newRefResolver(), targets: make(map[string]*entry, len(entries)), reads: newReadBudget(a.cfg.Limits.BundleReads)}
	u.refs.others = fullURLs
	u.refs.conditional = u.conditionalRef
	u.refs.version = u.version
	u.byFullURL = make(map[string]*entry)
	for _, e := range entries {
		if e.fullURL != "" && (e.method == http.MethodPost || e.method == http.MethodPut || e.method == http.MethodPatch) {
			u.byFullURL[e.fullURL] = e
		}
		// A create or update that names its resource itself is known
		// from the start; a conditional one once settled (identify).
		switch {
		case e.err != nil:
		case e.method == http.MethodPost && e.ifNoneExist == nil:
			u.refs.add(e.fullURL, e.target.typ+"/"+e.newID)
		case (e.method == http.MethodPut || e.method == http.MethodPatch) && !e.conditional():
			u.refs.add(e.fullURL, e.target.typ+"/"+e.target.id)
		}
		r := &entryResult{res: e.res, job: -1, criteria: e.target.criteria, establishes: e.establishes}
		if e.method == http.MethodPost {
			r.criteria = e.ifNoneExist
		}
		if fresh && e.res != nil {
			// The entry decoded when the bundle was read; so does the copy.
			if res, err := decodeEntry(e.raw, e.target.typ); err == nil {
				r.res = res
			}
		}
		u.results[e] = r
	}
	return u
}

// run processes the entries in the order of FHIR R4 RESTful API
// 3.1.0.11.2. The identities of all the resources written are settled, and
// the references between them resolved, before anything is written:
// conditional creates and updates and conditional references are matched
// against the state after the deletes, and in memory against the
// resources the other entries write (see writesMatching). Then
// the resources of POSTs and PUTs are validated and encoded side by side
// (see prepare) while they are written one after the other, in order.
func (u *unit) run(ctx context.Context) error {
	order := processingOrder(u.entries)
	if err := u.steps(ctx, order, []step{
		{[]string{http.MethodDelete}, u.delete},
		{[]string{http.MethodPost}, u.identify},
		{[]string{http.MethodPut}, u.identify},
		{[]string{http.MethodPatch}, u.identify},
		{[]string{http.MethodPost, http.MethodPut}, u.resolve},
	}); err != nil {
		return err
	}
	u.work = u.prepare(ctx, order)
	defer u.work.stop()
	ctx = withWritten(ctx, u.written)
	if err := u.steps(ctx, order, []step{
		{[]string{http.MethodPost}, u.create},
		{[]string{http.MethodPut, http.MethodPatch}, u.update},
		{[]string{http.MethodGet, http.MethodHead}, u.read},
	}); err != nil {
		return err
	}
	for _, r := range u.results {
		if r.same != nil {
			r.v = u.results[r.same].v
		}
	}
	return nil
}

// step is one pass of run over the entries of some methods.
type step struct {
	methods []string
	do      func(context.Context, *entry, *entryResult) error
}

// steps runs steps, each over the entries of order it applies to, and
// stops at the first failure.
func (u *unit) steps(ctx context.Context, order []*entry, steps []step) error {
	for _, step := range steps {
		for _, e := range order {
			if !slices.Contains(step.methods, e.method) {
				continue
			}
			if err := step.do(e.context(ctx), e, u.results[e]); err != nil {
				var (
					ce *conflictingEntries
					ee *entryError // of an entry settled on the way (identityOf)
				)
				switch {
				case errors.As(err, &ce):
					return ce.err
				case errors.As(err, &ee):
					return ee
				}
				return &entryError{entry: e, err: err}
			}
		}
	}
	return nil
}

// prepare starts the work on the resources that POSTs and PUTs write that
// needs no store: validating each, then stamping, encoding and indexing
// the version to write (service.encode). The current version of each PUT's
// target was read when its identity was settled (identifyUpdate), as the
// version written depends on it. Nothing in this work depends on another entry, so it runs
// on every core, in processing order, ahead of the writes; create and
// update wait for their entry's. Its outcome is used as the entry's turn
// comes, so the first failure in processing order is still the one
// reported. In a transaction, every version carries the transaction's time
// (withWriteTime).
func (u *unit) prepare(ctx context.Context, order []*entry) *parallel {
	var jobs []*entry
	for _, e := range order {
		r := u.results[e]
		if (e.method == http.MethodPost || e.method == http.MethodPut) && !r.exists {
			r.job = len(jobs)
			jobs = append(jobs, e)
			if e.method == http.MethodPost {
				r.stage = &staged{readErr: store.ErrNotFound}
			}
		}
	}
	now := u.a.svc.timestamp(ctx)
	return startParallel(len(jobs), func(i int) {
		e := jobs[i]
		r := u.results[e]
		ifMatch := e.ifMatch
		if e.method == http.MethodPost {
			ifMatch = 0 // a create writes version 1 whatever the entry says
		}
		if stampable(r.res) {
			// Validated as a single create's is: the version written,
			// with the id and meta it is stamped with again when staged.
			// A conditional PUT's resource may carry no id either: r.id
			// is the one settled for it.
			stamp(r.res, r.id, 1, now)
		}
		if r.invalid = u.a.validateWrite(ctx, r.res); r.invalid == nil {
			u.a.svc.stageWrite(r.stage, e.target.typ, r.id, r.res, ifMatch, now, e.method)
		}
	})
}

// written returns the versions of typ that the POSTs and PUTs of the unit
// write, in request order: as written, or as prepared for those whose turn
// has not come. The hooks of each write see them (see withWritten), so
// that what they check of other resources does not depend on the order of
// the entries.
func (u *unit) written(typ string) []*store.Version {
	var out []*store.Version
	for _, e := range u.entries {
		r := u.results[e]
		switch {
		case e.target.typ != typ || r.job < 0:
		case r.v != nil:
			out = append(out, r.v)
		default:
			u.work.wait(r.job)
			if r.invalid == nil && r.stage.wr != nil {
				out = append(out, r.stage.wr.Version())
			}
		}
	}
	return out
}

// conflictingEntries is the failure of a transaction in which two entries
// change the same resource: its Error names both entries.
type conflictingEntries struct{ err *Error }

func (c *conflictingEntries) Error() string { return c.err.Error() }
func (c *conflictingEntries) Unwrap() error { return c.err }

// claim records that e changes typ/id, refusing a second entry that
// changes the same resource: which would win is not defined.
func (u *unit) claim(e *entry, typ, id string) error {
	ref := typ + "/" + id
	if other, ok := u.targets[ref]; ok {
		return overlap(other, e, "both change "+ref)
	}
	u.targets[ref] = e
	return nil
}

// overlap is the failure of a transaction in which entries a and b change
// the same resource, as why says.
func overlap(a, b *entry, why string) error {
	if b.index < a.index {
		a, b = b, a
	}
	err := errorf(http.StatusBadRequest, "invalid",
		"%s and %s %s: a transaction changes each resource at most once", a.label(), b.label(), why)
	err.Issues[0].Expression = []string{a.path(), b.path()}
	return &conflictingEntries{err}
}

func (u *unit) delete(ctx context.Context, e *entry, r *entryResult) error {
	typ := e.target.typ
	r.status = http.StatusNoContent
	if e.conditional() {
		if err := u.settleCriteria(ctx, e, r); err != nil {
			return err
		}
		v, err := u.a.svc.conditionalDeleteIn(ctx, u.tx, typ, r.criteria, e.versionMatch())
		if err != nil || v == nil {
			return err
		}
		r.v = v
		return u.claim(e, typ, v.ID)
	}
	if err := u.claim(e, typ, e.target.id); err != nil {
		return err
	}
	v, err := u.a.svc.deleteIn(ctx, u.tx, typ, e.target.id, e.ifMatch)
	r.v = v
	return err
}

// identify settles the identity of the resource a POST, PUT or PATCH
// writes, once: the criteria of another entry of its step may have
// settled it first (see identityOf).
func (u *unit) identify(ctx context.Context, e *entry, r *entryResult) error {
	if r.settled {
		return nil
	}
	r.settling = true
	if err := u.settleCriteria(ctx, e, r); err != nil {
		return err
	}
	var err error
	switch e.method {
	case http.MethodPost:
		err = u.identifyCreate(ctx, e, r)
	case http.MethodPut:
		err = u.identifyUpdate(ctx, e, r)
	case http.MethodPatch:
		err = u.identifyPatch(ctx, e, r)
	}
	r.settling, r.settled = false, err == nil
	if r.settled && len(u.waiting[e.fullURL]) > 0 {
		u.newlySettled = append(u.newlySettled, e.fullURL)
	}
	return err
}

// identifyCreate settles the id a POST creates, or the resource its
// ifNoneExist matches.
func (u *unit) identifyCreate(ctx context.Context, e *entry, r *entryResult) error {
	r.id = e.newID
	if e.ifNoneExist != nil {
		if err := u.settleCreate(ctx, e, r); err != nil {
			return err
		}
	}
	u.refs.add(e.fullURL, e.target.typ+"/"+r.id)
	if r.same != nil {
		return nil // the entry that writes it claims it
	}
	return u.claim(e, e.target.typ, r.id)
}

// settleCreate settles a conditional create: its ifNoneExist criteria are
// matched against the store and against the resources the other entries
// write (writesMatching). A resource another entry writes is found as a
// stored one is, the entry answering 200 with it: so of two conditional
// creates with the same criteria, the first in processing order creates
// and the second finds what it creates. A conditional update's resource
// that they match is refused as the same resource written twice, as its
// own criteria would find what the create writes, or what it finds.
// Several matches are 412.
func (u *unit) settleCreate(ctx context.Context, e *entry, r *entryResult) error {
	match, err := u.storedMatch(ctx, e, r)
	if err != nil {
		return err
	}
	others, err := u.writesMatching(ctx, e, r.criteria, r.establishes)
	if err != nil {
		return err
	}
	if match != nil {
		// An entry that writes the stored match is one match with it.
		others = slices.DeleteFunc(others, func(o *entry) bool { return u.writtenID(o) == match.ID })
	}
	if i := slices.IndexFunc(others, (*entry).conditional); i >= 0 {
		return overlap(others[i], e, "would write the same "+e.target.typ+": the criteria of one match the resource the other writes")
	}
	switch {
	case len(others) > 1 || len(others) == 1 && match != nil:
		return errorf(http.StatusPreconditionFailed, "multiple-matches",
			"ifNoneExist criteria match more than one %s, stored or written by the transaction", e.target.typ)
	case match != nil:
		r.id, r.v, r.exists = match.ID, match, true
	case len(others) == 1:
		r.id, r.exists, r.same = u.writtenID(others[0]), true, others[0]
	default:
		u.establish(e, r)
	}
	return nil
}

// establish records that e, a conditional create or update whose criteria
// matched nothing, writes the resource its conditional URL names.
func (u *unit) establish(e *entry, r *entryResult) {
	if r.establishes == "" {
		return
	}
	if u.established == nil {
		u.established = make(map[string]*entry)
	}
	if _, ok := u.established[r.establishes]; !ok {
		u.established[r.establishes] = e
	}
}

// identifyUpdate settles the id a PUT writes.
func (u *unit) identifyUpdate(ctx context.Context, e *entry, r *entryResult) error {
	r.id = e.target.id
	if e.conditional() {
		id, matched, err := updateTarget(ctx, u.tx, e.target.typ, r.res, r.criteria)
		if err != nil {
			return err
		}
		if id == "" {
			id = e.newID
		}
		// A resource another entry writes that the criteria match would
		// be written twice: refused, whatever the order of the entries.
		others, err := u.writesMatching(ctx, e, r.criteria, r.establishes)
		if err != nil {
			return err
		}
		if len(others) > 0 {
			return overlap(others[0], e, "would write the same "+e.target.typ+": the criteria of one match the resource the other writes")
		}
		if !matched {
			u.establish(e, r)
		}
		r.id = id
	}
	// The version written depends on the current one, which references
	// to the version the entry writes name (see version).
	r.stage = stage(ctx, u.tx, e.target.typ, r.id)
	u.refs.add(e.fullURL, e.target.typ+"/"+r.id)
	return u.claim(e, e.target.typ, r.id)
}

// identifyPatch settles the resource a PATCH changes.
func (u *unit) identifyPatch(ctx context.Context, e *entry, r *entryResult) error {
	r.id = e.target.id
	if e.conditional() {
		id, err := patchTarget(ctx, u.tx, e.target.typ, r.criteria)
		if err != nil {
			return err
		}
		r.id = id
	}
	u.refs.add(e.fullURL, e.target.typ+"/"+r.id)
	return u.claim(e, e.target.typ, r.id)
}

// version returns the version of ref, Type/id of a resource an entry
// writes, that the transaction leaves: 1 for a create, the current
// version for a conditional create that found it, and the version after
// the current one for a PUT or PATCH, which then writes it whatever its
// content (named). It is false when the current version cannot be read:
// the entry that writes ref fails then.
func (u *unit) version(ctx context.Context, ref string) (int64, bool) {
	e, ok := u.targets[ref]
	if !ok {
		return 0, false
	}
	r := u.results[e]
	switch {
	case e.method == http.MethodDelete:
		return 0, false
	case r.v != nil: // found by a conditional create, or already written
		return r.v.VersionID, true
	}
	switch e.method {
	case http.MethodPost:
		return 1, true
	case http.MethodPut:
		cur, ok := r.stage.expected()
		r.named = ok
		return cur + 1, ok
	case http.MethodPatch:
		cur, err := u.tx.Read(e.context(ctx), e.target.typ, r.id)
		if err != nil || cur.Deleted {
			return 0, false
		}
		r.named = true
		return cur.VersionID + 1, true
	}
	return 0, false
}

// resolve rewrites the references of the resource a POST or PUT writes.
func (u *unit) resolve(ctx context.Context, e *entry, r *entryResult) error {
	if r.exists {
		return nil
	}
	return u.refs.resolve(ctx, e, r.res)
}

// conditionalRef resolves a conditional reference Type?criteria to the
// Type/id of the one resource it matches.
//
// R4 resolves conditional references after the creates and updates
// (3.1.0.11.2), so the resources the transaction writes count; here they
// are resolved before anything is written: the criteria are matched
// against the state after the deletes, and in memory against the
// resources the POSTs and PUTs write (see writesMatching), which also
// count a conditional create (ifNoneExist) or update with the same
// criteria that matched nothing: the pattern of bundles that create a
// patient if absent and reference it by its identifier. Matches of a
// resource stored and one written, or of two written, are several (412).
func (u *unit) conditionalRef(ctx context.Context, ref string) (string, error) {
	typ, query, _ := strings.Cut(ref, "?")
	if !isServed(typ) {
		return "", errorf(http.StatusBadRequest, "not-supported", "conditional reference %q: resource type %q is not served here", truncate(ref, 200), typ)
	}
	// Placeholders stand for what they name: every identity is settled
	// by now.
	query, _, err := u.a.replacePlaceholders(typ, query, func(value string) (string, bool, error) {
		to, ok := u.refs.ids[value]
		if err := u.refs.batchLink("conditional reference", value); !ok && err != nil && isPlaceholder(value) {
			return "", false, err
		}
		return to, ok, nil
	})
	if err != nil {
		return "", err
	}
	criteria, err := u.a.parseCriteria(typ, query, "conditional reference")
	if err != nil {
		return "", err
	}
	match, err := matchOne(ctx, u.tx, criteria, "conditional reference")
	if err != nil {
		return "", err
	}
	others, err := u.writesMatching(ctx, nil, criteria, criteriaKey(typ, query))
	if err != nil {
		return "", err
	}
	var ids []string
	if match != nil {
		ids = append(ids, match.ID)
	}
	for _, o := range others {
		if id := u.writtenID(o); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch len(ids) {
	case 0:
		return "", errorf(http.StatusPreconditionFailed, "not-found", "conditional reference %q matches no %s", truncate(ref, 200), typ)
	case 1:
		return typ + "/" + ids[0], nil
	}
	return "", errorf(http.StatusPreconditionFailed, "multiple-matches",
		"conditional reference %q matches more than one %s, stored or written by the transaction", truncate(ref, 200), typ)
}

// writesMatching returns the entries other than e, in request order, that
// write a resource of q's type matching q: by the content they carry,
// matched in memory (store.Match; criteria with a chain or _has clause,
// which needs the resources it points to or from, are refused when an
// entry meets their other clauses: see undecidedMatch), or because they
// are the conditional create or update of the conditional URL key that
// matched nothing (established). Writers are the POSTs, but conditional
// creates not yet settled or that found their match, and the PUTs. Only
// the candidates of the clause of q that narrows them most are matched
// (see candidates), so that a transaction of conditional creates by
// identifier, or by subject and code, costs in proportion to its entries.
func (u *unit) writesMatching(ctx context.Context, e *entry, q *store.Query, key string) ([]*entry, error) {
	var out []*entry
	now := u.a.svc.timestamp(ctx)
	for _, o := range u.candidates(ctx, q, key) {
		if o == e || o.err != nil || o.target.typ != q.Type || !u.writes(o) {
			continue
		}
		if key != "" && u.established[key] == o {
			out = append(out, o)
			continue
		}
		ix, err := u.matchIndexOf(ctx, o)
		if err != nil {
			return nil, err
		}
		match, undecided := matchesAll(q.Where, u.writtenID(o), now, ix)
		if undecided != nil {
			return nil, undecidedMatch(e, undecided, o)
		}
		if match {
			out = append(out, o)
		}
	}
	return out, nil
}

// undecidedMatch is the failure of criteria, those of entry e (nil for a
// conditional reference), whose clause c cannot be matched in memory
// against the resource entry o writes, which meets the others: a chain or
// _has clause needs the resources it points to or from, which the
// transaction may write too. Left unmatched, the criteria would miss a
// resource that the same search finds once stored.
func undecidedMatch(e *entry, c *store.Clause, o *entry) error {
	what := "the chained parameter " + c.Param
	if c.Has != nil {
		what = "the parameter _has:" + c.Has.Type + ":" + c.Has.Param
	}
	err := errorf(http.StatusBadRequest, "not-supported",
		"criteria with %s cannot be matched against the %s that %s writes in the same transaction: name the resource by a parameter of its own, such as identifier",
		what, o.target.typ, o.label())
	if e != nil {
		_, where := criteriaWhere(e)
		err.at(where)
	}
	return err
}

// writeKey is an exact search value of a resource some entry writes: its
// type, parameter, and the code of a token or the stored form of a
// reference (store.Reference.Keys). A parameter is of one type, so codes
// and references never share a key.
type writeKey struct{ typ, param, value string }

// candidates returns, in request order, the entries that may write a
// resource matching q: those holding one of the exact values that the
// clause of q with the fewest such entries needs, the entries whose
// resources could not be indexed or, for a reference clause, whose
// references are not resolved yet, and the established entry of key; all
// the entries when no clause of q needs an exact value. The matcher then
// decides among them as among all the entries.
func (u *unit) candidates(ctx context.Context, q *store.Query, key string) []*entry {
	var (
		best     []writeKey
		bestRefs bool
		fewest   = -1
	)
	for i := range q.Where {
		keys, refs, ok := exactValues(q.Type, &q.Where[i])
		if !ok {
			continue
		}
		u.indexWrites(ctx, refs)
		n := 0
		for _, k := range keys {
			n += len(u.writeValues[k])
		}
		if refs {
			n += len(u.unresolved)
		}
		if fewest < 0 || n < fewest {
			best, bestRefs, fewest = keys, refs, n
		}
	}
	if fewest < 0 {
		return u.entries
	}
	var out []*entry
	for _, k := range best {
		out = append(out, u.writeValues[k]...)
	}
	if bestRefs {
		for o := range u.unresolved {
			out = append(out, o)
		}
	}
	out = append(out, u.unindexed...)
	if o := u.established[key]; key != "" && o != nil {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *entry) int { return a.index - b.index })
	return slices.Compact(out)
}

// exactValues returns the keys of the values of which a resource of typ
// must hold one to satisfy c, and whether they are references; ok is
// false when c can be satisfied otherwise: it has no tokens or references,
// or a token of any code, a reference of any id, a modifier that negates
// or tests presence, a chain, a _has or alternatives, or it matches the
// id or lastUpdated, which are no indexed values.
func exactValues(typ string, c *store.Clause) (keys []writeKey, refs, ok bool) {
	if c.Not || c.Presence != store.PresenceAny || c.Chain != nil || c.Has != nil || c.Any != nil ||
		c.Param == "_id" || c.Param == "_lastUpdated" {
		return nil, false, false
	}
	switch {
	case len(c.Tokens) > 0:
		for _, m := range c.Tokens {
			if m.AnyCode {
				return nil, false, false
			}
			keys = append(keys, writeKey{typ, c.Param, m.Code})
		}
		return keys, false, true
	case len(c.References) > 0:
		for _, m := range c.References {
			if m.AnyID() {
				return nil, false, false
			}
			keys = append(keys, writeKey{typ, c.Param, m.Key()})
		}
		return keys, true, true
	}
	return nil, false, false
}

// indexWrites indexes by token code the resources the POSTs and PUTs of
// the unit carry, as sent, and with refs by reference too, as far as
// identities are settled (see indexReferences). An entry whose resource
// cannot be indexed is left among the candidates of every query, so that
// writesMatching reports the failure as it would.
func (u *unit) indexWrites(ctx context.Context, refs bool) {
	if u.writeValues == nil {
		u.writeValues = make(map[writeKey][]*entry)
		for _, o := range u.entries {
			if o.err != nil || (o.method != http.MethodPost && o.method != http.MethodPut) {
				continue
			}
			ix, err := u.indexOf(o)
			if err != nil {
				u.unindexed = append(u.unindexed, o)
				continue
			}
			for _, t := range ix.Tokens {
				u.indexValue(writeKey{o.target.typ, t.Param, t.Code}, o)
			}
		}
	}
	if !refs {
		return
	}
	if !u.refsIndexed {
		u.refsIndexed = true
		u.unresolved = make(map[*entry]bool)
		u.waiting = make(map[string][]*entry)
		for _, o := range u.entries {
			if r := u.results[o]; r.index != nil {
				u.indexReferences(ctx, o)
			}
		}
	}
	for len(u.newlySettled) > 0 {
		fullURL := u.newlySettled[0]
		u.newlySettled = u.newlySettled[1:]
		waiting := u.waiting[fullURL]
		delete(u.waiting, fullURL)
		for _, o := range waiting {
			u.indexReferences(ctx, o)
		}
	}
}

// indexReferences indexes the references of the resource o writes as
// matchIndexOf gives them, which is how they will be stored once the
// entries they name are settled. Until then o is unresolved: a candidate
// of every reference clause, waiting for one of those entries.
func (u *unit) indexReferences(ctx context.Context, o *entry) {
	ix, err := u.matchIndexOf(ctx, o)
	if err != nil {
		delete(u.unresolved, o)
		u.unindexed = append(u.unindexed, o)
		return
	}
	if unsettled := u.results[o].unsettled; len(unsettled) > 0 {
		u.unresolved[o] = true
		u.waiting[unsettled[0]] = append(u.waiting[unsettled[0]], o)
		return
	}
	delete(u.unresolved, o)
	for _, ref := range ix.References {
		for _, k := range ref.Keys() {
			u.indexValue(writeKey{o.target.typ, ref.Param, k}, o)
		}
	}
}

// indexValue lists o under k, once.
func (u *unit) indexValue(k writeKey, o *entry) {
	if list := u.writeValues[k]; len(list) == 0 || list[len(list)-1] != o {
		u.writeValues[k] = append(list, o)
	}
}

// writes reports whether e writes a resource, as far as is settled: a
// POST, unless a conditional create that found its match or is not
// settled yet, or a PUT.
func (u *unit) writes(e *entry) bool {
	r := u.results[e]
	switch e.method {
	case http.MethodPost:
		return !r.exists && (e.ifNoneExist == nil || r.id != "")
	case http.MethodPut:
		return true
	}
	return false
}

// writtenID returns the id of the resource e, a POST or PUT, writes; ""
// for a conditional update not settled yet.
func (u *unit) writtenID(e *entry) string {
	switch {
	case e.method == http.MethodPost:
		return e.newID
	case !e.conditional():
		return e.target.id
	}
	return u.results[e].id
}

// indexOf returns the search values of the resource e writes, as sent.
func (u *unit) indexOf(e *entry) (*store.Index, error) {
	r := u.results[e]
	if r.index == nil {
		ix, err := u.a.svc.index.IndexJSON(e.target.typ, e.raw)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", e.label(), err)
		}
		r.index = &ix
	}
	return r.index, nil
}

// matchIndexOf returns the search values of the resource e writes as it
// will be stored, as far as identities are settled: its references to
// other entries (their fullUrls, or the Type/id of a RESTful fullUrl) are
// indexed as the Type/id those entries' resources are given. R4 resolves
// them before it processes the entries (3.1.0.11.2), so criteria naming a
// resource of the transaction, by its Type/id or by its placeholder, find
// the entries that refer to it by placeholder, as a search would once
// they are stored. Conditional references, resolved once every identity
// is settled, are matched as written. The values are indexed again when
// an entry they named unsettled has been settled since.
func (u *unit) matchIndexOf(ctx context.Context, e *entry) (*store.Index, error) {
	r := u.results[e]
	if r.resolved != nil && !slices.ContainsFunc(r.unsettled, u.settled) {
		return r.resolved, nil
	}
	ix, err := u.indexOf(e)
	if err != nil {
		return nil, err
	}
	if !u.namesEntries(ix) {
		r.resolved = ix
		return ix, nil
	}
	res, err := decodeEntry(e.raw, e.target.typ)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", e.label(), err)
	}
	if u.partly == nil {
		u.partly = &refResolver{ids: u.refs.ids, local: u.refs.local, fields: u.refs.fields, partly: true,
			unsettled: func(ref string) bool { return u.byFullURL[ref] != nil && !u.settled(ref) }}
	}
	unsettled, err := u.partly.walk(ctx, e, res)
	if err != nil {
		return nil, err
	}
	raw, err := fhirjson.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", e.label(), err)
	}
	resolved, err := u.a.svc.index.IndexJSON(e.target.typ, raw)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", e.label(), err)
	}
	r.resolved, r.unsettled = &resolved, unsettled
	return r.resolved, nil
}

// settled reports whether the identity of the entry with fullURL is
// settled.
func (u *unit) settled(fullURL string) bool {
	_, ok := u.refs.ids[fullURL]
	return ok
}

// namesEntries reports whether search values ix, of a resource as sent,
// hold a reference or uri that may name an entry of the unit.
func (u *unit) namesEntries(ix *store.Index) bool {
	for _, r := range ix.References {
		if u.byFullURL[r.Target()] != nil || len(u.refs.local[r.Target()]) > 0 {
			return true
		}
	}
	return slices.ContainsFunc(ix.URIs, func(v store.URI) bool { return u.byFullURL[v.Value] != nil })
}

// matchesAll reports whether a resource with id, lastUpdated and search
// values ix satisfies every clause of where. When it satisfies every
// clause memory can tell but not one that memory cannot (a chain or
// _has), match is false and undecided is that clause.
func matchesAll(where []store.Clause, id string, lastUpdated time.Time, ix *store.Index) (match bool, undecided *store.Clause) {
	for i := range where {
		m, ok := store.Match(&where[i], id, lastUpdated, ix)
		switch {
		case !ok && undecided == nil:
			undecided = &where[i]
		case ok && !m:
			return false, nil
		}
	}
	return undecided == nil, undecided
}

func (u *unit) create(ctx context.Context, e *entry, r *entryResult) error {
	if r.exists {
		r.status = http.StatusOK
		return nil
	}
	u.work.wait(r.job)
	if r.invalid != nil {
		return r.invalid
	}
	if r.stage.err != nil {
		return r.stage.err
	}
	v, err := u.a.svc.writePrepared(ctx, u.tx, r.stage.prepared())
	r.v, r.status = v, http.StatusCreated
	return err
}

// update writes a PUT, or applies a PATCH.
func (u *unit) update(ctx context.Context, e *entry, r *entryResult) error {
	typ := e.target.typ
	if e.method == http.MethodPatch {
		var patched fhir.Resource
		v, did, err := u.a.svc.patchIn(ctx, u.tx, typ, r.id, e.ifMatch, func(cur *store.Version) (fhir.Resource, error) {
			res, err := u.a.applyPatch(ctx, typ, cur, e.patchType, e.patch)
			if err != nil {
				return nil, err
			}
			patched = res
			return res, u.refs.resolve(ctx, e, res)
		})
		if err == nil && did == updateUnchanged && r.named {
			v, did, err = u.writeNamed(ctx, typ, patched, v, http.MethodPatch)
		}
		r.v, r.status, r.unchanged = v, http.StatusOK, did == updateUnchanged
		return err
	}
	u.work.wait(r.job)
	if r.invalid != nil {
		return r.invalid
	}
	if e.noneMatch.asked() {
		if err := e.noneMatch.check(ctx, u.tx, typ, r.id); err != nil {
			return err
		}
	}
	v, did, err := u.a.svc.updateStaged(ctx, u.tx, typ, r.id, r.res, e.ifMatch, r.stage)
	if err == nil && did == updateUnchanged && r.named {
		v, did, err = u.writeNamed(ctx, typ, r.res, v, http.MethodPut)
	}
	r.v, r.status, r.unchanged = v, http.StatusOK, did == updateUnchanged
	if did == updateCreated {
		r.status = http.StatusCreated
	}
	return err
}

// writeNamed writes res, whose content is that of cur, the current
// version, as the next version, by the entry's method: another entry
// references that version.
func (u *unit) writeNamed(ctx context.Context, typ string, res fhir.Resource, cur *store.Version, method string) (*store.Version, updateOutcome, error) {
	v, err := u.a.svc.put(ctx, u.tx, typ, cur.ID, res, cur, method)
	return v, updateReplaced, err
}

// responseEntry renders the response entry of a processed entry. Written
// resources are returned as ret (a Prefer return value) asks: whole
// (representation, the default), not at all (minimal) or as an
// OperationOutcome.
func (a *api) responseEntry(c *gin.Context, e *entry, r *entryResult, ret string) bundleEntry {
	resp := &entryResponse{Status: statusLine(r.status)}
	be := bundleEntry{Response: resp}
	v := r.v
	if v != nil {
		resp.Etag = etag(v.VersionID)
		resp.LastModified = formatInstant(v.LastUpdated)
		if !v.Deleted {
			be.FullURL = a.baseURL(c) + "/" + v.Type + "/" + v.ID
		}
	}
	switch e.method {
	case http.MethodDelete:
		if ret == "OperationOutcome" {
			resp.Status = statusLine(http.StatusOK)
			resp.Outcome = deletedOutcome(v)
		}
	case http.MethodGet, http.MethodHead:
		if r.body != nil {
			be.Resource = r.body
		}
		if e.method == http.MethodHead {
			be.Resource = nil
		}
	default:
		resp.Location = v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)
		switch ret {
		case "minimal":
		case "OperationOutcome":
			resp.Outcome = writtenOutcome(r.status, v)
		default:
			be.Resource = v.JSON
		}
		if r.unchanged {
			// Whatever the preference, so that an import can count
			// what it left as it was.
			resp.Outcome = unchangedOutcome(v)
		}
	}
	return be
}

// unchangedOutcome is the OperationOutcome of an update that wrote
// nothing, its content being that of v, the current version.
func unchangedOutcome(v *store.Version) []byte {
	return newOutcome(Issue{Severity: "information", Code: "informational",
		Details:     &issueDetails{Coding: []issueCoding{{System: ext.StorageResponseCodes, Code: ext.UpdateNoChange}}},
		Diagnostics: fmt.Sprintf("%s/%s is unchanged: the update's content is version %d's, so no version was written", v.Type, v.ID, v.VersionID)}).marshal()
}

// writtenOutcome is the OperationOutcome that reports a write, for Prefer
// return=OperationOutcome.
func writtenOutcome(status int, v *store.Version) []byte {
	return newOutcome(Issue{Severity: "information", Code: "informational",
		Diagnostics: fmt.Sprintf("%s: %s/%s version %d", http.StatusText(status), v.Type, v.ID, v.VersionID)}).marshal()
}

// deletedOutcome is the OperationOutcome that reports a delete; v is nil
// when there was nothing to delete.
func deletedOutcome(v *store.Version) []byte {
	msg := "nothing to delete"
	if v != nil {
		msg = fmt.Sprintf("deleted %s/%s (version %d)", v.Type, v.ID, v.VersionID)
	}
	return newOutcome(Issue{Severity: "information", Code: "informational", Diagnostics: msg}).marshal()
}
