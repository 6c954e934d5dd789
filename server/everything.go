package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/search"
	"carefhir/server/access"
	"carefhir/store"
)

// everythingIncludes are the types of the referenced resources that
// $everything adds to a record, as include entries: the resources of these
// types that a page's resources reference, through a search parameter
// (Patient.generalPractitioner and managingOrganization,
// Observation.performer, Appointment participants, CareTeam members,
// Encounter.serviceProvider and location…) or through any other element
// (Condition.recorder, CarePlan.author…), and the practitioner,
// organisation and location of an included PractitionerRole. These are the
// people, places, organisations and medicines a record names, which a reader
// needs to make sense of it; they hold no patient's data of their own.
// Medplum returns the same types (and Device, not served here), and Firely
// Server returns those its AdditionalResources setting lists. Referenced resources of compartment types
// (another patient's Observation that an Observation names as a member) are
// left out, so that $everything never shows another patient's data. Includes
// follow _type but not _since (a new observation still needs its performer)
// and are repeated on each page that references them.
var everythingIncludes = []string{"Location", "Medication", "Organization", "Practitioner", "PractitionerRole"}

// maxEverythingQueries bounds the store queries of one type-level page.
const maxEverythingQueries = 2000

// selfSegment is the segment of a record that holds the Patient itself,
// and replacedSegment the one of the Patient records merged into it.
const (
	selfSegment     = "self"
	replacedSegment = "replaced"
)

// registerEverything serves Patient $everything
// (http://hl7.org/fhir/R4/patient-operation-everything.html) on a patient
// (GET or POST Patient/{id}/$everything) and on the Patient type (GET or POST
// Patient/$everything, for bulk-minded clients). The answer is a searchset
// Bundle holding a patient's record: the Patient, every resource of a served
// type in its compartment (the official Patient CompartmentDefinition,
// through the same clause as compartment search, so GET Patient/{id}/{type}
// and $everything agree on membership), with mode match, and the resources
// of everythingIncludes they reference and the Binaries their attachments
// name, with mode include.
//
// Merged records. The Patient records merged into the patient (those its
// links of type replaces name, and theirs in turn, up to maxMerged) are
// part of its record, as R4 has a replaced record consulted for more of the
// patient's information: the record is the union of their compartments.
//
// Order and paging. A record is read in segments: the Patient itself first,
// the records merged into it in id order, then the compartment one resource
// type at a time, types in name order (the Patient segment holds the other
// Patient records that link to this one), each type in id order. A page holds up to _count matches, taken across
// segments; its next link is a cursor naming the segment and the engine's
// keyset cursor within it, so walking the pages while others write returns
// every resource that stays in the record exactly once. A page that fills up
// looks ahead, so that it has a next link only when more remains (at the
// type level, unless it stopped at the bound on queries below), or may:
// what the engine found there may be left out by the access layer (a
// Group of a patient out of reach), and the next page then holds less
// than _count, even nothing, as a search of Groups does.
//
// At the type level patients are walked in id order, each followed by its
// record; the cursor also holds the engine's cursor of the patients after
// the current one. A resource in the records of several patients (an
// appointment of two patients) comes under each of them, but never twice in
// one page. Patients are walked whatever _since and _type say, since their
// records are read through them; a page stops at the first patient boundary
// after maxEverythingQueries store queries, so that a sparse selection (a
// recent _since) cannot make one request read the whole database, and such a
// page may hold fewer than _count matches.
//
// Parameters: _since (only resources last updated at or after it), _type
// (comma-separated or repeated: only these types, and the Patient always), and
// _count (page size, as for search), and _cursor, of the next-page links.
// start and end (a care date range), and _offset (pages are reached by
// their links alone), are not applied: they are reported in an outcome
// entry, or refused with 400 under Prefer: handling=strict. A
// parameter the definition does not state is refused by the dispatcher
// (checkParams); without the definition bundled it is reported as start
// and end are. POST takes the
// same parameters in a Parameters resource.
func (a *api) registerEverything() {
	a.addOperation(operation{
		name:       "everything",
		definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything",
		levels:     typeLevel | instanceLevel,
		types:      []string{"Patient"},
		idempotent: true,
		extra:      []string{"_cursor"},
		handle:     a.everything,
	})
}

// everythingParams are the parameters of one $everything request.
type everythingParams struct {
	types   []string // _type; nil asks for every type
	since   time.Time
	count   int
	cursor  string
	applied url.Values // for the links
	ignored []*search.Error
}

func (p *everythingParams) wants(typ string) bool {
	return p.types == nil || slices.Contains(p.types, typ)
}

// everything answers $everything on a patient (inv.ID set) or on the
// Patient type with one page of the record(s).
func (a *api) everything(c *gin.Context, inv invocation) {
	p, err := a.parseEverything(c)
	if err != nil {
		c.Error(err)
		return
	}
	f, err := a.finder()
	if err != nil {
		c.Error(err)
		return
	}
	w := &walk{f: f, r: a.svc.store, base: a.baseURL(c), p: p, segs: a.segments(p), search: a.search, seen: map[string]bool{}}
	var next everythingCursor
	var more bool
	if inv.ID != "" {
		next, more, err = a.everythingInstance(c.Request.Context(), w, inv.ID)
	} else {
		next, more, err = w.patients(c.Request.Context())
	}
	if err != nil {
		c.Error(err)
		return
	}
	if err := w.referenced(c.Request.Context()); err != nil {
		c.Error(err)
		return
	}
	if p.wants("Binary") {
		if err := w.binaries(c.Request.Context()); err != nil {
			c.Error(err)
			return
		}
	}
	b := a.searchBundle(c, a.searchURL(c, p.applied, p.cursor), &search.Plan{}, -1)
	b.Link = append(b.Link, bundleLink{Relation: "first", URL: a.searchURL(c, p.applied, "")})
	if more {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: a.searchURL(c, p.applied, next.encode())})
	}
	if err := a.addEntries(c, b, &search.Plan{Ignored: p.ignored}, &w.page); err != nil {
		c.Error(err)
		return
	}
	a.writeSearchset(c, b)
}

// everythingInstance reads a page of Patient id's record: 404 when the
// patient never existed, 410 when it was deleted.
func (a *api) everythingInstance(ctx context.Context, w *walk, id string) (everythingCursor, bool, error) {
	v, err := a.svc.store.Read(ctx, "Patient", id)
	if err != nil {
		return everythingCursor{}, false, notFound(err, "Patient", id)
	}
	if v.Deleted {
		return everythingCursor{}, false, gone(v)
	}
	var from position
	if w.p.cursor != "" {
		cur, err := decodeEverythingCursor(w.p.cursor)
		if err != nil || cur.Patient != id || cur.After != "" {
			return everythingCursor{}, false, store.ErrBadCursor
		}
		if from, err = w.position(cur); err != nil {
			return everythingCursor{}, false, err
		}
	}
	ids, err := w.merged(ctx, v)
	if err != nil {
		return everythingCursor{}, false, err
	}
	pos, more, err := w.record(ctx, ids, from)
	if err != nil || !more {
		return everythingCursor{}, false, err
	}
	return everythingCursor{Patient: id, Segment: w.segs[pos.seg], Cursor: pos.cursor}, true, nil
}

// parseEverything reads the parameters of $everything from the query
// string and, for POST, from a Parameters body.
func (a *api) parseEverything(c *gin.Context) (*everythingParams, error) {
	values := c.Request.URL.Query()
	body, err := parametersBody(c)
	if err != nil {
		return nil, err
	}
	if body != nil {
		for _, param := range body.Parameter {
			name := param.Name.Get()
			values[name] = append(values[name], parameterValue(param))
		}
	}
	p := &everythingParams{count: defaultCount, applied: url.Values{}}
	strict := preference(c, "handling") == "strict"
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vs := values[name]
		switch name {
		case "_format", "_pretty":
			continue
		case "start", "end":
			p.ignored = append(p.ignored, &search.Error{Status: http.StatusBadRequest, Code: "not-supported", Expression: name,
				Diagnostics: name + ": a care date range is not applied by this server"})
			continue
		case "_offset":
			// R4 states _offset, but a page after the first is only
			// reached through the cursor of the page before it.
			p.ignored = append(p.ignored, &search.Error{Status: http.StatusBadRequest, Code: "not-supported", Expression: name,
				Diagnostics: name + ": paging by offset is not supported by this server: follow the Bundle's next link"})
			continue
		case "_cursor", "_count", "_since":
			if len(vs) != 1 || vs[0] == "" {
				return nil, errorf(http.StatusBadRequest, "invalid", "%s takes one value", name).at(name)
			}
		case "_type":
		default:
			p.ignored = append(p.ignored, &search.Error{Status: http.StatusBadRequest, Code: "not-supported", Expression: truncate(name, 64),
				Diagnostics: "unknown parameter " + strconv.Quote(truncate(name, 64)) + " of $everything"})
			continue
		}
		var err error
		switch name {
		case "_cursor":
			p.cursor = vs[0]
			continue
		case "_count":
			if p.count, err = parseCount(vs[0], a.pageLimit()); err == nil {
				// A page holds at least one resource: a page of none would
				// link to a next page of none, without end.
				p.count = max(p.count, 1)
				vs = []string{strconv.Itoa(p.count)} // as used, in the links
			}
		case "_since":
			p.since, _, err = parseDate(vs[0])
			if err != nil {
				err = errorf(http.StatusBadRequest, "invalid", "_since: %v", err).at("_since")
			}
		case "_type":
			err = p.parseTypes(vs)
		}
		if err != nil {
			return nil, err
		}
		p.applied[name] = vs
	}
	if strict && len(p.ignored) > 0 {
		return nil, searchError(p.ignored[0])
	}
	return p, nil
}

// parseTypes reads _type: served type names, comma-separated or repeated.
func (p *everythingParams) parseTypes(values []string) error {
	p.types = []string{}
	for _, list := range values {
		for _, t := range strings.Split(list, ",") {
			if t = strings.TrimSpace(t); !isServed(t) {
				return errorf(http.StatusBadRequest, "not-supported", "_type: resource type %q is not served here", truncate(t, 64)).at("_type")
			}
			if !slices.Contains(p.types, t) {
				p.types = append(p.types, t)
			}
		}
	}
	return nil
}

// parameterValue returns the value of an operation parameter as it would
// be written in a query string; "" when it has no primitive value.
func parameterValue(p *fhir.ParametersParameter) string {
	switch {
	case p.ValueInstant != nil:
		return p.ValueInstant.Get()
	case p.ValueDateTime != nil:
		return p.ValueDateTime.Get()
	case p.ValueDate != nil:
		return p.ValueDate.Get()
	case p.ValueCode != nil:
		return p.ValueCode.Get()
	case p.ValueString != nil:
		return p.ValueString.Get()
	case p.ValueInteger != nil:
		return strconv.FormatInt(p.ValueInteger.Get(), 10)
	case p.ValuePositiveInt != nil:
		return strconv.FormatInt(p.ValuePositiveInt.Get(), 10)
	case p.ValueUnsignedInt != nil:
		return strconv.FormatInt(p.ValueUnsignedInt.Get(), 10)
	}
	return ""
}

// segments lists the segments of a record that p asks for, in the order
// they are read: the Patient itself, then the compartment types by name.
func (a *api) segments(p *everythingParams) []string {
	// The Patient itself whatever _type says: R4 returns "at a minimum, the
	// patient resource(s) itself", then the records merged into it.
	segs := []string{selfSegment, replacedSegment}
	for _, t := range servedTypes {
		if p.wants(t) && len(a.search.CompartmentParams(t)) > 0 {
			segs = append(segs, t)
		}
	}
	return segs
}

// walk assembles one page of $everything.
type walk struct {
	f      store.Finder
	r      store.Reader
	base   string // the server's base URL, of absolute references to it
	p      *everythingParams
	segs   []string
	search *search.Registry
	// page holds the matches and includes so far, each resource once.
	page    store.Page
	seen    map[string]bool
	queries int
}

// position is where the reading of a record stands: the index of a
// segment, and the engine's cursor in it ("" from its start).
type position struct {
	seg    int
	cursor string
}

// position returns where a cursor resumes the reading of a record.
func (w *walk) position(cur everythingCursor) (position, error) {
	i := slices.Index(w.segs, cur.Segment)
	if i < 0 {
		return position{}, store.ErrBadCursor
	}
	return position{i, cur.Cursor}, nil
}

// maxMerged bounds the Patient records that one record gathers.
const maxMerged = 20

// merged returns the ids of Patient v and of the records merged into it:
// those its links of type replaces name, and theirs in turn. R4 has the
// replaced record "consulted to retrieve additional referenced
// information" (link-type replaces): a merge (ADT A40) leaves what was
// recorded about the replaced patient referring to it, and it is the same
// person's record. A replaced record no longer held, or that the
// principal may not read, is left out.
func (w *walk) merged(ctx context.Context, v *store.Version) ([]string, error) {
	ids := []string{v.ID}
	for queue := []*store.Version{v}; len(queue) > 0; queue = queue[1:] {
		for _, id := range replacedIDs(queue[0].JSON, w.base) {
			if slices.Contains(ids, id) || len(ids) == maxMerged {
				continue
			}
			r, err := w.r.Read(ctx, "Patient", id)
			var denied *access.Denied
			if errors.Is(err, store.ErrNotFound) || errors.As(err, &denied) || err == nil && r.Deleted {
				continue
			}
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
			queue = append(queue, r)
		}
	}
	return ids, nil
}

// replacedIDs returns the ids of the Patients that a Patient's links of
// type replaces name, read as search reads references (with a version, or
// under base, this server's URL).
func replacedIDs(patient []byte, base string) []string {
	var p struct {
		Link []struct {
			Other struct{ Reference string }
			Type  string
		}
	}
	if !bytes.Contains(patient, []byte(`"replaces"`)) || json.Unmarshal(patient, &p) != nil {
		return nil
	}
	var ids []string
	for _, l := range p.Link {
		if ref := search.ParseReference(l.Other.Reference, base); ref.Type == "Patient" && ref.URL == "" && l.Type == "replaces" {
			ids = append(ids, ref.ID)
		}
	}
	return ids
}

// query returns the query of one segment of the record of the Patients
// ids (a patient and the records merged into it), from _since on.
func (w *walk) query(seg string, ids []string) store.Query {
	tokens := make([]store.TokenMatch, len(ids))
	for i, id := range ids {
		tokens[i] = store.TokenMatch{Code: id, AnySystem: true}
	}
	q := store.Query{Type: "Patient", Where: []store.Clause{{Param: "_id", Tokens: tokens[:1]}}}
	switch seg {
	case selfSegment:
	case replacedSegment:
		q.Where[0].Tokens = tokens[1:]
	default:
		var any []store.Clause
		for _, id := range ids {
			clause, _ := w.search.Compartment(seg, id)
			any = append(any, clause)
		}
		q = store.Query{Type: seg, Where: []store.Clause{any[0]}}
		if len(ids) > 1 {
			q.Where = []store.Clause{{Any: any}}
		}
		if seg == "Patient" && len(ids) > 1 {
			// The merged records link to one another: they are read once,
			// in the segments of the patient and of its replaced records.
			q.Where = append(q.Where, store.Clause{Param: "_id", Not: true, Tokens: tokens})
		}
	}
	if !w.p.since.IsZero() {
		q.Where = append(q.Where, store.Clause{Param: "_lastUpdated",
			Dates: []store.DateMatch{{Prefix: store.Ge, Low: w.p.since, High: w.p.since}}})
	}
	return q
}

// find runs one query of a record.
func (w *walk) find(ctx context.Context, q store.Query) (*store.Page, error) {
	w.queries++
	return w.f.Find(ctx, q)
}

// record reads the record of the Patients ids (a patient and the records
// merged into it) from from on, adding its resources to the page while it
// has room. Once the page is full it looks for what remains: more reports
// whether anything does, and pos is where the next page starts.
func (w *walk) record(ctx context.Context, ids []string, from position) (pos position, more bool, err error) {
	for s := from.seg; s < len(w.segs); s++ {
		if w.segs[s] == replacedSegment && len(ids) == 1 {
			continue // no record merged into this one
		}
		cur := ""
		if s == from.seg {
			cur = from.cursor
		}
		q := w.query(w.segs[s], ids)
		q.Cursor = cur
		room := w.p.count - len(w.page.Matches)
		q.Count = max(room, 1)
		if room > 0 {
			q.Include = w.includes(q.Type)
		}
		page, err := w.find(ctx, q)
		if err != nil {
			return position{}, false, err
		}
		if room <= 0 {
			// The access layer may leave out what the engine found (a
			// Group naming a patient out of reach): a cursor past it
			// says more may follow, though the match found is gone.
			if len(page.Matches) > 0 || page.Next != "" {
				return position{s, cur}, true, nil
			}
			continue
		}
		w.add(page)
		if page.Next != "" {
			return position{s, page.Next}, true, nil
		}
	}
	return position{}, false, nil
}

// includes returns the references a page of typ follows: to the types of
// everythingIncludes that _type asks for, and from an included
// PractitionerRole to its practitioner, organisation and location.
func (w *walk) includes(typ string) []store.Include {
	var out []store.Include
	for _, t := range everythingIncludes {
		if w.p.wants(t) {
			out = append(out, store.Include{Type: typ, Param: "*", Target: t})
		}
	}
	for _, t := range []string{"Location", "Organization", "Practitioner"} {
		if w.p.wants(t) {
			out = append(out, store.Include{Type: "PractitionerRole", Param: "*", Target: t, Iterate: true})
		}
	}
	return out
}

// add adds the matches and includes of an engine's page to the page, each
// resource once.
func (w *walk) add(page *store.Page) {
	keep := func(to []*store.Version, from []*store.Version) []*store.Version {
		for _, v := range from {
			if key := v.Type + "/" + v.ID; !w.seen[key] {
				w.seen[key] = true
				to = append(to, v)
			}
		}
		return to
	}
	w.page.Matches = keep(w.page.Matches, page.Matches)
	w.page.Included = keep(w.page.Included, page.Included)
}

// maxReferenced bounds the ids of one type that one query of referenced
// looks up.
const maxReferenced = 100

// referenced adds to the page the resources of everythingIncludes (that
// _type asks for) which its resources refer to but the engines' includes
// did not reach: those referenced through an element that no search
// parameter indexes (Condition.recorder, CarePlan.author,
// CareTeam.managingOrganization…). R4 has $everything return "whatever
// resources are needed to support the records - e.g. linked practitioners,
// medications, locations, organizations". What it adds is read in turn,
// for a PractitionerRole's practitioner and organisation.
func (w *walk) referenced(ctx context.Context) error {
	for scan := slices.Concat(w.page.Matches, w.page.Included); len(scan) > 0; {
		added := len(w.page.Included)
		for _, typ := range everythingIncludes {
			if !w.p.wants(typ) {
				continue
			}
			var ids []store.TokenMatch
			for _, v := range scan {
				for _, id := range access.References(v.JSON, typ) {
					if !w.seen[typ+"/"+id] && !slices.ContainsFunc(ids, func(m store.TokenMatch) bool { return m.Code == id }) {
						ids = append(ids, store.TokenMatch{Code: id, AnySystem: true})
					}
				}
			}
			for chunk := range slices.Chunk(ids, maxReferenced) {
				page, err := w.find(ctx, store.Query{Type: typ, Count: len(chunk), Where: []store.Clause{{Param: "_id", Tokens: chunk}}})
				if err != nil {
					return err
				}
				w.add(&store.Page{Included: page.Matches})
			}
		}
		scan = w.page.Included[added:]
	}
	return nil
}

// binaries adds to the page the Binaries that its resources' attachments
// name by url (a DocumentReference's content, a DiagnosticReport's
// presentedForm): R4 has $everything return "any resource referenced from
// those, including binaries and attachments". An attachment's url is not a
// search parameter, so the engines' includes do not follow it.
func (w *walk) binaries(ctx context.Context) error {
	var ids []store.TokenMatch
	for _, list := range [][]*store.Version{w.page.Matches, w.page.Included} {
		for _, v := range list {
			var doc any
			// Only a body that names a Binary is decoded and walked.
			if !bytes.Contains(v.JSON, []byte("Binary/")) || json.Unmarshal(v.JSON, &doc) != nil {
				continue
			}
			for _, id := range binaryURLs(doc, w.base, nil) {
				if !w.seen["Binary/"+id] && !slices.ContainsFunc(ids, func(m store.TokenMatch) bool { return m.Code == id }) {
					ids = append(ids, store.TokenMatch{Code: id, AnySystem: true})
				}
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	page, err := w.find(ctx, store.Query{Type: "Binary", Count: len(ids), Where: []store.Clause{{Param: "_id", Tokens: ids}}})
	if err != nil {
		return err
	}
	w.add(&store.Page{Included: page.Matches})
	return nil
}

// binaryURLs appends to ids the id of each Binary of this server that an
// element named url in doc points to ("Binary/id", or base + "/Binary/id").
func binaryURLs(doc any, base string, ids []string) []string {
	switch doc := doc.(type) {
	case map[string]any:
		if u, ok := doc["url"].(string); ok {
			rest, ok := strings.CutPrefix(u, base+"/")
			if !ok {
				rest = u
			}
			if id, ok := strings.CutPrefix(rest, "Binary/"); ok && checkID(id, "") == nil {
				ids = append(ids, id)
			}
		}
		for _, v := range doc {
			ids = binaryURLs(v, base, ids)
		}
	case []any:
		for _, v := range doc {
			ids = binaryURLs(v, base, ids)
		}
	}
	return ids
}

// patients reads a page of the type-level $everything: patients in id
// order, each followed by its record.
func (w *walk) patients(ctx context.Context) (everythingCursor, bool, error) {
	var (
		cur everythingCursor
		pos position
		err error
	)
	if w.p.cursor != "" {
		if cur, err = decodeEverythingCursor(w.p.cursor); err != nil {
			return cur, false, err
		}
		if cur.Patient == "" && cur.After == "" {
			return cur, false, store.ErrBadCursor
		}
		if cur.Patient != "" {
			if err := checkID(cur.Patient, ""); err != nil {
				return cur, false, store.ErrBadCursor
			}
			if pos, err = w.position(cur); err != nil {
				return cur, false, err
			}
		}
	}
	after := cur.After
	var v *store.Version
	if cur.Patient != "" {
		if v, err = w.r.Read(ctx, "Patient", cur.Patient); errors.Is(err, store.ErrNotFound) {
			v, err = &store.Version{Type: "Patient", ID: cur.Patient}, nil // its record, as far as it goes
		} else if err != nil {
			return cur, false, err
		}
	} else {
		var ok bool
		if v, after, ok, err = w.nextPatient(ctx, after); err != nil || !ok {
			return cur, false, err
		}
	}
	for {
		ids, err := w.merged(ctx, v)
		if err != nil {
			return cur, false, err
		}
		var more bool
		pos, more, err = w.record(ctx, ids, pos)
		if err != nil {
			return cur, false, err
		}
		if more {
			return everythingCursor{Patient: v.ID, After: after, Segment: w.segs[pos.seg], Cursor: pos.cursor}, true, nil
		}
		if after == "" {
			return cur, false, nil
		}
		if w.queries >= maxEverythingQueries {
			return everythingCursor{After: after}, true, nil
		}
		var ok bool
		if v, after, ok, err = w.nextPatient(ctx, after); err != nil || !ok {
			return cur, false, err
		}
		pos = position{}
	}
}

// nextPatient returns the patient after the engine's cursor after ("" for
// the first), and the cursor of the patients after it ("" when it is the
// last).
func (w *walk) nextPatient(ctx context.Context, after string) (v *store.Version, next string, ok bool, err error) {
	page, err := w.find(ctx, store.Query{Type: "Patient", Count: 1, Cursor: after})
	if err != nil || len(page.Matches) == 0 {
		return nil, "", false, err
	}
	return page.Matches[0], page.Next, true, nil
}

// everythingCursor is where the next page of $everything starts, encoded
// as base64url JSON in the _cursor parameter of the next link: the patient
// whose record is being read, the segment and the engine's cursor in it. At
// the type level After is the engine's cursor of the patients after
// Patient; a cursor with After alone starts at the next patient.
type everythingCursor struct {
	Patient string `json:"p,omitempty"`
	After   string `json:"a,omitempty"`
	Segment string `json:"s,omitempty"`
	Cursor  string `json:"c,omitempty"`
}

func (c everythingCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeEverythingCursor(s string) (everythingCursor, error) {
	var c everythingCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return everythingCursor{}, store.ErrBadCursor
	}
	return c, nil
}
