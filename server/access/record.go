package access

import (
	"bytes"
	"io"
	"iter"
	"slices"
	"strconv"
	"sync"

	"carefhir/store"
)

// Record is what one request touched: each resource read, found, included
// or written, and the patients they belong to. It becomes the entities of
// the request's AuditEvent.
type Record struct {
	mu          sync.Mutex
	entities    []Entity
	seen        map[entityKey]bool // past scannedEntities
	links       int                // the patients of the entities, counted once per entity
	disclosures []Disclosure
	interaction Interaction
	query       string
	// unaudited is set for a request no audit trail records: what it
	// touches is not kept, nor its patients looked for.
	unaudited bool
}

// Disclosure is data a request sent out that is not resources the Record
// names one by one: a bulk export file, of many patients. The audit trail
// records it by one AuditEvent per patient, naming the patient and What.
type Disclosure struct {
	// What names the data: the URL it was sent from.
	What string
	// Patients holds the ids of the patients whose records the data
	// holds, one a line. The audit trail reads it as it writes the
	// AuditEvents, however many, and closes it.
	Patients io.ReadCloser
}

// Disclose records that the request sent d out. The Record owns d.Patients
// from here on: the audit trail closes it, or Discard.
func (r *Record) Disclose(d Disclosure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disclosures = append(r.disclosures, d)
}

// Disclosures returns what Disclose recorded, and forgets it.
func (r *Record) Disclosures() []Disclosure {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.disclosures
	r.disclosures = nil
	return d
}

// Discard closes what the Record holds open, for a request no audit
// trail records.
func (r *Record) Discard() {
	for _, d := range r.Disclosures() {
		d.Patients.Close()
	}
}

// Entity is one resource a request touched, at the version it touched.
type Entity struct {
	Type, ID string
	Version  int64
	// Patients are the patients the resource belongs to: itself for a
	// Patient, else the patients it refers to.
	Patients []string
}

// Reference returns the entity as a versioned FHIR reference.
func (e Entity) Reference() string {
	ref := e.Type + "/" + e.ID
	if e.Version > 0 {
		ref += "/_history/" + strconv.FormatInt(e.Version, 10)
	}
	return ref
}

// maxEntities bounds the entities a request's AuditEvents name, and the
// patients those entities belong to, counted once per entity; so it bounds
// the AuditEvents of a request too, one per patient. A page of search
// results, with its includes, is far below it; a bulk read beyond it (or a
// Group of thousands of members) is audited by what it names first.
const maxEntities = 2000

func (r *Record) touch(vs ...*store.Version) { r.touchNaming(nil, vs...) }

// keeps reports whether r keeps what its request touches: it is the
// Record of a request an audit trail records.
func (r *Record) keeps() bool { return r != nil && !r.unaudited }

// touchNaming is touch, each version of named belonging to the patients
// named too, besides those it refers to.
func (r *Record) touchNaming(named map[*store.Version][]string, vs ...*store.Version) {
	if !r.keeps() || len(vs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vs {
		if r.full() {
			// Full: the rest would be dropped, so their bodies are not
			// scanned for patients (an operation may read a population).
			return
		}
		patients := PatientsOf(v.Type, v.ID, v.JSON)
		for _, p := range named[v] {
			if !slices.Contains(patients, p) {
				patients = append(patients, p)
			}
		}
		r.add(Entity{Type: v.Type, ID: v.ID, Version: v.VersionID, Patients: patients})
	}
}

// writeEntity is the entity of w, belonging, besides the patients it
// refers to, to the patients named.
func writeEntity(w *store.Write, named []string) Entity {
	e := Entity{Type: w.Type, ID: w.ID, Version: w.VersionID(), Patients: slices.Clone(named)}
	if w.Type == "Patient" {
		e.Patients = []string{w.ID}
	}
	seen := map[string]bool{}
	for _, p := range e.Patients {
		seen[p] = true
	}
	for _, ref := range w.Index.References {
		// A set, not a scan of the list: a Group may name 100,000 patients.
		if ref.Type == "Patient" && !seen[ref.ID] {
			seen[ref.ID] = true
			e.Patients = append(e.Patients, ref.ID)
		}
	}
	return e
}

func (r *Record) touchEntity(e Entity) {
	if !r.keeps() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(e)
}

func (r *Record) add(e Entity) {
	key := e.key()
	if r.names(key) || r.full() {
		return
	}
	if attempt := (entityKey{typ: e.Type, id: e.ID}); e.Version > 0 && r.names(attempt) {
		// A write refused before, as one that lost a race and was tried
		// again: the version written names it.
		if r.seen != nil {
			delete(r.seen, attempt)
		}
		r.entities = slices.DeleteFunc(r.entities, func(x Entity) bool {
			if x.Version == 0 && x.Type == e.Type && x.ID == e.ID {
				r.links -= len(x.Patients)
				return true
			}
			return false
		})
	}
	if room := maxEntities - r.links; len(e.Patients) > room {
		e.Patients = e.Patients[:room]
	}
	r.links += len(e.Patients)
	r.entities = append(r.entities, e)
	switch {
	case r.seen != nil:
		r.seen[key] = true
	case len(r.entities) > scannedEntities:
		r.seen = make(map[entityKey]bool, 2*scannedEntities)
		for _, e := range r.entities {
			r.seen[e.key()] = true
		}
	}
}

// scannedEntities is how many entities a Record looks through in order
// for one already named, before it keeps a map of them: most requests
// name one or a few, and neither the map nor a key string per entity
// is then made.
const scannedEntities = 16

// entityKey tells entities apart as their references do.
type entityKey struct {
	typ, id string
	version int64 // 0 for none
}

func (e Entity) key() entityKey {
	return entityKey{typ: e.Type, id: e.ID, version: max(e.Version, 0)}
}

// names reports whether the Record names the entity of key.
func (r *Record) names(key entityKey) bool {
	if r.seen != nil {
		return r.seen[key]
	}
	for _, e := range r.entities {
		if e.key() == key {
			return true
		}
	}
	return false
}

// filled reports, under the Record's lock, whether it names all it may.
func (r *Record) filled() bool {
	if !r.keeps() {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.full()
}

// full reports whether the Record names all it may (maxEntities).
func (r *Record) full() bool {
	return len(r.entities) >= maxEntities || r.links >= maxEntities
}

// Entities returns what the request touched, in the order it did.
func (r *Record) Entities() []Entity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Entity(nil), r.entities...)
}

// PatientsOf returns the patients a stored resource belongs to: itself for
// a Patient, else each Patient its JSON refers to by relative reference
// ("reference": "Patient/id"). Scanning the bytes costs far less than
// indexing the resource, on the path of every read. The server stores
// compact JSON, but the engine may hold JSON spaced otherwise (restored or
// migrated from elsewhere), so the scan reads it as any writer may space
// it. The audit trail names a resource in the AuditEvent of each of these
// patients.
func PatientsOf(typ, id string, body []byte) []string {
	if typ == "Patient" {
		return []string{id}
	}
	return References(body, "Patient")
}

// References returns the ids of the resources of type typ that a stored
// resource's JSON refers to by relative reference ("reference": "typ/id"),
// each once, in the order they first appear; a versioned reference
// (typ/id/_history/2) is not one of them.
func References(body []byte, typ string) []string {
	var out []string
	seen := map[string]bool{}
	prefix := []byte(`"` + typ + `/`)
	for value := range memberValues(body, "reference") {
		id, ok := bytes.CutPrefix(value, prefix)
		if !ok {
			continue
		}
		end := 0
		for end < len(id) && isIDByte(id[end]) {
			end++
		}
		if end < len(id) && id[end] == '"' && end > 0 && !seen[string(id[:end])] {
			seen[string(id[:end])] = true
			out = append(out, string(id[:end]))
		}
	}
	return out
}

// memberValues yields, for each member of the JSON text body named key,
// what follows its colon: its value, and the rest of body. Whitespace
// around the colon is skipped, so that JSON reads alike however it is
// spaced. A key inside a string value is not a member: its quotes are
// escaped there.
func memberValues(body []byte, key string) iter.Seq[[]byte] {
	name := []byte(`"` + key + `"`)
	return func(yield func([]byte) bool) {
		for rest := body; ; {
			i := bytes.Index(rest, name)
			if i < 0 {
				return
			}
			rest = bytes.TrimLeft(rest[i+len(name):], jsonSpace)
			if len(rest) == 0 || rest[0] != ':' {
				continue
			}
			if !yield(bytes.TrimLeft(rest[1:], jsonSpace)) {
				return
			}
		}
	}
}

// jsonSpace is the whitespace JSON allows between tokens (RFC 8259 §2).
const jsonSpace = " \t\n\r"

// hasMember reports whether the JSON text body has a member named key
// whose value begins with prefix, however body is spaced.
func hasMember(body []byte, key, prefix string) bool {
	for value := range memberValues(body, key) {
		if bytes.HasPrefix(value, []byte(prefix)) {
			return true
		}
	}
	return false
}

func isIDByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// SetInteraction names the interaction the request turned out to perform,
// such as a transaction rather than a batch once the Bundle is read.
func (r *Record) SetInteraction(i Interaction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interaction = i
}

// Interaction is what SetInteraction named, or "".
func (r *Record) Interaction() Interaction {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.interaction
}

// SetQuery names the criteria of the search the request turned out to
// make when its URL does not hold them all: those of a POST _search form.
func (r *Record) SetQuery(q string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.query = q
}

// Query is what SetQuery named, or "".
func (r *Record) Query() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.query
}
