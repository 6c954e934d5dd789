package access

import (
	"bufio"
	"context"
	"encoding/base64"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"carefhir/fhir/lexical"
	"carefhir/store"
)

// Event is one request as the audit trail records it.
type Event struct {
	Interaction Interaction
	// Type and ID are what the request addressed: empty at the system
	// level, ID empty at the type level.
	Type, ID string
	// Operation is the name of an invoked operation, without the $.
	Operation string
	// Query is the query string of a search, kept as the query entity.
	Query     string
	Principal *Principal // nil when authentication failed
	Address   string     // the network address the request came from
	RequestID string
	Status    int
	Recorded  time.Time
	Record    *Record

	flushed chan struct{} // set on the marker Flush queues
}

// outcome is the AuditEvent outcome code of an HTTP status: 0 success,
// 4 minor failure (the client's), 8 serious failure (the server's).
func outcome(status int) string {
	switch {
	case status < 400:
		return "0"
	case status < 500:
		return "4"
	}
	return "8"
}

// AuditConfig bounds the audit trail's buffer.
type AuditConfig struct {
	// Buffer is how many events wait to be written; 0 means 65,536. A
	// full buffer holds a response back for at most Wait, then drops the
	// event, logs it and counts it.
	Buffer int
	Wait   time.Duration
	// Flush is the most time an event waits to be written: what a crash
	// can lose. 0 means 100 ms.
	Flush time.Duration
	// Batch is the most events one write commits; 0 means 1,000.
	Batch int
	// Source names this server in every AuditEvent (AuditEvent.source).
	Source string
	Log    *slog.Logger
	// OnDrop, when set, is called for every event dropped (a metric).
	OnDrop func()
	// Writes, when set, keeps each batch among the writes under way from
	// before its first AuditEvent is stamped until it is written, so that
	// a history read meanwhile is dated before it (the server's
	// Config.Writes).
	Writes *store.InFlight
}

// Auditor writes the audit trail: one AuditEvent per request, or per
// patient of a request about several (see parts), batched so that auditing
// never holds a response back for long.
type Auditor struct {
	cfg   AuditConfig
	store store.Store

	// mu orders Add and Flush, which send on events, before Close, which
	// closes it: a request still running when the server gave up waiting
	// for it must not send on a closed channel.
	mu      sync.RWMutex
	closed  bool
	events  chan *Event
	done    chan struct{}
	dropped atomic.Int64
	written atomic.Int64
	handled atomic.Int64
}

// NewAuditor starts writing events to st, the store without access
// decisions.
func NewAuditor(st store.Store, cfg AuditConfig) *Auditor {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1 << 16
	}
	if cfg.Wait <= 0 {
		cfg.Wait = time.Second
	}
	if cfg.Flush <= 0 {
		cfg.Flush = 100 * time.Millisecond
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.OnDrop == nil {
		cfg.OnDrop = func() {}
	}
	a := &Auditor{cfg: cfg, store: st, events: make(chan *Event, cfg.Buffer), done: make(chan struct{})}
	go a.run()
	return a
}

// Add queues e, a request, to be written.
func (a *Auditor) Add(e *Event) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		a.dropEvent(e, "audit trail closed: event dropped")
		return
	}
	select {
	case a.events <- e:
		return
	default:
	}
	t := time.NewTimer(a.cfg.Wait)
	defer t.Stop()
	select {
	case a.events <- e:
	case <-t.C:
		a.dropEvent(e, "audit buffer full: event dropped")
	}
}

// dropEvent counts the AuditEvents of e as dropped and logs why.
func (a *Auditor) dropEvent(e *Event, why string) {
	n := len(parts(e))
	if e.Record != nil {
		for _, d := range e.Record.Disclosures() {
			n += discard(d)
		}
	}
	a.drop(n)
	a.handled.Add(1)
	a.cfg.Log.Error(why, "request_id", e.RequestID, "interaction", string(e.Interaction))
}

// drop counts n AuditEvents that will not be written.
func (a *Auditor) drop(n int) {
	a.dropped.Add(int64(n))
	for range n {
		a.cfg.OnDrop()
	}
}

// Depth is how many requests wait to have their AuditEvents written.
func (a *Auditor) Depth() int { return len(a.events) }

// Capacity is how many requests the buffer holds.
func (a *Auditor) Capacity() int { return cap(a.events) }

// Dropped is how many AuditEvents were dropped, because the buffer stayed
// full or the store refused them.
func (a *Auditor) Dropped() int64 { return a.dropped.Load() }

// Written is how many AuditEvents have been written.
func (a *Auditor) Written() int64 { return a.written.Load() }

// Handled is how many requests have had all their AuditEvents written or
// dropped.
func (a *Auditor) Handled() int64 { return a.handled.Load() }

// Close writes every queued event and stops. Events added after Close
// are dropped; the server stops serving before it closes its auditor.
func (a *Auditor) Close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.events)
	}
	a.mu.Unlock()
	<-a.done
}

// Flush waits until every event queued before it is written.
func (a *Auditor) Flush() {
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return // Close wrote them
	}
	marker := &Event{flushed: make(chan struct{})}
	a.events <- marker
	a.mu.RUnlock()
	<-marker.flushed
}

// run encodes each request's AuditEvents as it arrives and commits them
// in batches of at least cfg.Batch AuditEvents, or every cfg.Flush. The
// AuditEvents of one request are committed together.
func (a *Auditor) run() {
	defer close(a.done)
	tick := time.NewTicker(a.cfg.Flush)
	defer tick.Stop()
	var batch []*store.Write
	requests := 0
	commit := func() {
		a.write(batch)
		a.handled.Add(int64(requests))
		batch, requests = batch[:0], 0
	}
	// The AuditEvents are kept among the writes under way from before
	// the first is stamped until they are written: a disclosure's are
	// stamped once, before the batches holding them, so its commits keep
	// them there, and the commits of the loop end them.
	var end func()
	begin := func() {
		if end == nil && a.cfg.Writes != nil {
			end = a.cfg.Writes.Begin()
		}
	}
	settle := func() {
		commit()
		if end != nil {
			end()
			end = nil
		}
	}
	for {
		select {
		case e, ok := <-a.events:
			if !ok {
				settle()
				return
			}
			if e.flushed != nil {
				settle()
				close(e.flushed)
				continue
			}
			begin()
			batch = append(batch, a.encode(e)...)
			if e.Record != nil {
				// A disclosure's AuditEvents may be many: they are committed
				// as they are read, Batch at a time.
				for _, d := range e.Record.Disclosures() {
					a.disclose(e, d, func(w *store.Write) {
						batch = append(batch, w)
						if len(batch) >= a.cfg.Batch {
							commit()
						}
					})
				}
			}
			requests++
			if len(batch) < a.cfg.Batch {
				continue
			}
		case <-tick.C:
		}
		settle()
	}
}

// write commits batch in one unit of work; a batch that fails is written
// one AuditEvent at a time, so one bad event loses only itself.
func (a *Auditor) write(batch []*store.Write) {
	if len(batch) == 0 {
		return
	}
	ctx := context.Background()
	err := a.store.Transact(ctx, func(tx store.Tx) error {
		for _, w := range batch {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		a.written.Add(int64(len(batch)))
		return
	}
	a.cfg.Log.Error("audit batch not written; writing its events one by one", "events", len(batch), "error", err)
	for _, w := range batch {
		if err := a.store.Put(ctx, w); err != nil {
			a.drop(1)
			a.cfg.Log.Error("audit event not written", "id", w.ID, "error", err)
			continue
		}
		a.written.Add(1)
	}
}

// encode returns the AuditEvents of e, one per part.
func (a *Auditor) encode(e *Event) []*store.Write {
	now := time.Now().UTC().Truncate(time.Millisecond)
	pts := parts(e)
	out := make([]*store.Write, len(pts))
	for i, pt := range pts {
		out[i] = a.encodePart(e, pt, now)
	}
	return out
}

// disclose hands emit the AuditEvents of d, one per patient it names, as
// it reads them, and closes d.
func (a *Auditor) disclose(e *Event, d Disclosure, emit func(*store.Write)) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	err := eachPatient(d, func(id string) {
		emit(a.encodePart(e, part{patient: "Patient/" + id, disclosed: d.What}, now))
	})
	if err != nil {
		a.cfg.Log.Error("audit of a disclosure cut short: its patients could not be read", "request_id", e.RequestID, "what", d.What, "error", err)
	}
}

// discard closes d and returns how many patients it named: the
// AuditEvents it stood for.
func discard(d Disclosure) int {
	n := 0
	eachPatient(d, func(string) { n++ })
	return n
}

// eachPatient calls fn with each patient id of d, a line at a time, and
// closes d.
func eachPatient(d Disclosure, fn func(id string)) error {
	defer d.Patients.Close()
	sc := bufio.NewScanner(d.Patients)
	for sc.Scan() {
		if id := sc.Text(); lexical.ValidID(id) {
			fn(id)
		}
	}
	return sc.Err()
}

// encodePart returns the AuditEvent of pt, one part of e: its JSON is
// appended by hand (appendJSON) rather than by encoding/json, and its
// search rows are built from its values (index), on the trail's writer for
// every event.
func (a *Auditor) encodePart(e *Event, pt part, now time.Time) *store.Write {
	ev := auditEvent(e, pt, newEventID(), now, a.cfg.Source)
	return &store.Write{Type: "AuditEvent", ID: ev.ID, LastUpdated: now, JSON: ev.appendJSON(make([]byte, 0, ev.size())), Index: ev.index()}
}

// AuditSearchParams are the R4 AuditEvent search parameters the trail is
// indexed on, and so searchable by: AuditEvents are written for every
// request, and each search value is a row its write adds. The server's
// search definitions keep only these for AuditEvent (search.Registry
// Restrict), so a search by another answers that it is not supported
// rather than from an incomplete index.
var AuditSearchParams = []string{"action", "agent", "date", "entity", "outcome", "patient", "subtype", "type"}

// index returns the search values of ev for AuditSearchParams as their
// R4 definitions extract them, built from the event rather than by
// evaluating their FHIRPath expressions: the trail is written for every
// request, and the extraction costs as much as the rest of writing it. A
// test holds the two equal.
func (ev *auditEventJSON) index() store.Index {
	ix := store.Index{
		Tokens:     make([]store.Token, 0, 6+len(ev.Subtype)+2*len(ev.Agent)+len(ev.Entity)),
		Strings:    make([]store.String, 0, 1+len(ev.Subtype)),
		References: make([]store.Reference, 0, 2*(len(ev.Agent)+len(ev.Entity))),
		Dates:      make([]store.Date, 0, 1),
	}
	token := func(param, system, code string) {
		ix.Tokens = append(ix.Tokens, store.Token{Param: param, System: system, Code: code})
	}
	ref := func(param, r string) {
		typ, rest, _ := strings.Cut(r, "/")
		id, _, _ := strings.Cut(rest, "/")
		ix.References = append(ix.References, store.Reference{Param: param, Type: typ, ID: id})
	}
	text := func(param string, c *coding) {
		if c == nil || c.Display == "" {
			return
		}
		lower := restTypeText // the type of every event, lowered once
		if c.Display != restType.Display {
			lower = strings.ToLower(c.Display)
		}
		ix.Strings = append(ix.Strings, store.String{Param: param, Value: lower, Exact: c.Display})
	}
	token("action", "", ev.Action)
	token("outcome", "", ev.Outcome)
	token("type", ev.Type.System, ev.Type.Code)
	text("type:text", &ev.Type)
	for _, s := range ev.Subtype {
		token("subtype", s.System, s.Code)
		text("subtype:text", &s)
	}
	for _, ag := range ev.Agent {
		if ag.Who != nil && ag.Who.Reference != "" {
			ref("agent", ag.Who.Reference)
			if strings.HasPrefix(ag.Who.Reference, "Patient/") {
				ref("patient", ag.Who.Reference)
			}
		}
		if ag.Who != nil && ag.Who.Identifier != nil {
			token("agent:identifier", ag.Who.Identifier.System, ag.Who.Identifier.Value)
			if strings.HasPrefix(ag.Who.Reference, "Patient/") {
				token("patient:identifier", ag.Who.Identifier.System, ag.Who.Identifier.Value)
			}
		}
	}
	for _, en := range ev.Entity {
		if en.What.Identifier != nil {
			token("entity:identifier", en.What.Identifier.System, en.What.Identifier.Value)
		}
		if en.What.Reference != "" {
			ref("entity", en.What.Reference)
			if strings.HasPrefix(en.What.Reference, "Patient/") {
				ref("patient", en.What.Reference)
			}
		}
	}
	// A who or what by identifier or display alone has a value of agent
	// or entity, which :missing finds as search.Indexer marks it.
	present := func(param string, has bool) {
		if has && !slices.ContainsFunc(ix.References, func(r store.Reference) bool { return r.Param == param }) {
			token(store.PresentParam(param), "", "")
		}
	}
	present("agent", slices.ContainsFunc(ev.Agent, func(ag agent) bool { return ag.Who.hasValue() }))
	present("entity", slices.ContainsFunc(ev.Entity, func(en entity) bool { return en.What.hasValue() }))
	t := time.Time(ev.Recorded)
	ix.Dates = append(ix.Dates, store.Date{Param: "date", Low: t, High: t})
	return ix
}

// hasValue reports whether r, as encoded, has a value: a reference, a
// display or an identifier with a system or value.
func (r *reference) hasValue() bool {
	return r != nil && (r.Reference != "" || r.Display != "" || r.Identifier != nil && (r.Identifier.System != "" || r.Identifier.Value != ""))
}

// newEventID returns a UUID version 7 (RFC 9562): time-ordered, so that
// the trail's rows are appended at the end of the engine's indexes rather
// than scattered across them, which keeps the pages each batch writes few.
func newEventID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// The code systems of an AuditEvent in the style of IHE Basic Audit Log
// Patterns (BALP).
const (
	auditEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	restInteraction  = "http://hl7.org/fhir/restful-interaction"
	participation    = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	securitySource   = "http://terminology.hl7.org/CodeSystem/security-source-type"
	entityType       = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRole       = "http://terminology.hl7.org/CodeSystem/object-role"
	balpEntityType   = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	networkIPAddress = "2"
)

type (
	coding struct {
		System  string `json:"system,omitempty"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	concept struct {
		Coding []coding `json:"coding"`
	}
	identifier struct {
		System string `json:"system,omitempty"`
		Value  string `json:"value"`
	}
	reference struct {
		Reference  string      `json:"reference,omitempty"`
		Identifier *identifier `json:"identifier,omitempty"`
		Display    string      `json:"display,omitempty"`
	}
	meta struct {
		VersionID   string  `json:"versionId"`
		LastUpdated instant `json:"lastUpdated"`
	}
	network struct {
		Address string `json:"address"`
		Type    string `json:"type"`
	}
	agent struct {
		Type      *concept   `json:"type,omitempty"`
		Who       *reference `json:"who,omitempty"`
		AltID     string     `json:"altId,omitempty"`
		Requestor bool       `json:"requestor"`
		Network   *network   `json:"network,omitempty"`
	}
	source struct {
		Observer reference `json:"observer"`
		Type     []coding  `json:"type"`
	}
	entity struct {
		What  reference `json:"what"`
		Type  *coding   `json:"type,omitempty"`
		Role  *coding   `json:"role,omitempty"`
		Query string    `json:"query,omitempty"`
	}
	auditEventJSON struct {
		ResourceType string   `json:"resourceType"`
		ID           string   `json:"id"`
		Meta         meta     `json:"meta"`
		Type         coding   `json:"type"`
		Subtype      []coding `json:"subtype"`
		Action       string   `json:"action"`
		Recorded     instant  `json:"recorded"`
		Outcome      string   `json:"outcome"`
		OutcomeDesc  string   `json:"outcomeDesc,omitempty"`
		Agent        []agent  `json:"agent"`
		Source       source   `json:"source"`
		Entity       []entity `json:"entity,omitempty"`
	}
)

const instantLayout = "2006-01-02T15:04:05.000Z07:00"

// instant is a time in UTC to the millisecond, as an AuditEvent states
// it (instantLayout).
type instant time.Time

// at returns t as an instant: in UTC, and to the millisecond its JSON
// states, which the date row holds too.
func at(t time.Time) instant { return instant(t.UTC().Truncate(time.Millisecond)) }

func (t instant) MarshalJSON() ([]byte, error) { return t.appendJSON(nil), nil }

func (t instant) appendJSON(b []byte) []byte {
	return append(time.Time(t).AppendFormat(append(b, '"'), instantLayout), '"')
}

// The codings every AuditEvent names, shared by them all: the encoder only
// reads them.
var (
	restType      = coding{System: auditEventType, Code: "rest", Display: "Restful Operation"}
	restTypeText  = strings.ToLower(restType.Display)
	serverSource  = []coding{{System: securitySource, Code: "4", Display: "Application Server"}}
	recipientType = &concept{Coding: []coding{{System: participation, Code: "IRCP", Display: "information recipient"}}}
	requestIDType = &coding{System: balpEntityType, Code: "XrequestId"}
	systemObject  = &coding{System: entityType, Code: "2", Display: "System Object"}
	personObject  = &coding{System: entityType, Code: "1", Display: "Person"}
	queryRole     = &coding{System: objectRole, Code: "24", Display: "Query"}
	resourceRole  = &coding{System: objectRole, Code: "4", Display: "Domain Resource"}
	jobRole       = &coding{System: objectRole, Code: "20", Display: "Job"}
	patientRole   = &coding{System: objectRole, Code: "1", Display: "Patient"}
)

// auditEvent is the AuditEvent of pt, one part of e.
func auditEvent(e *Event, pt part, id string, now time.Time, sourceName string) auditEventJSON {
	ev := auditEventJSON{
		ResourceType: "AuditEvent",
		ID:           id,
		Meta:         meta{VersionID: "1", LastUpdated: at(now)},
		Type:         restType,
		Subtype:      make([]coding, 1, 2),
		Action:       e.Interaction.Action(),
		Recorded:     at(e.Recorded),
		Outcome:      outcome(e.Status),
		Source:       source{Observer: reference{Display: sourceName}, Type: serverSource},
		Entity:       make([]entity, 0, 3+len(pt.entities)),
	}
	ev.Subtype[0] = coding{System: restInteraction, Code: string(e.Interaction)}
	if e.Status >= 400 {
		ev.OutcomeDesc = "HTTP " + strconv.Itoa(e.Status)
	}
	if e.Operation != "" {
		ev.Subtype = append(ev.Subtype, coding{Code: "$" + e.Operation})
	}
	ev.Agent = []agent{requestor(e.Principal, e.Address)}
	ev.Entity = append(ev.Entity, entity{
		What: reference{Identifier: &identifier{Value: e.RequestID}},
		Type: requestIDType,
	})
	if pt.query {
		ev.Entity = append(ev.Entity, entity{
			What:  reference{Display: e.Type},
			Type:  systemObject,
			Role:  queryRole,
			Query: base64.StdEncoding.EncodeToString([]byte(e.Query)),
		})
	}
	for _, t := range pt.entities {
		ev.Entity = append(ev.Entity, entity{
			What: reference{Reference: t.Reference()},
			Type: systemObject,
			Role: resourceRole,
		})
	}
	if pt.disclosed != "" {
		ev.Entity = append(ev.Entity, entity{
			What: reference{Identifier: &identifier{System: "urn:ietf:rfc:3986", Value: pt.disclosed}},
			Type: systemObject,
			Role: jobRole,
		})
	}
	if pt.patient != "" {
		ev.Entity = append(ev.Entity, patientEntity(pt.patient))
	}
	return ev
}

// part is what one AuditEvent of a request names: the resources it
// touched of one patient, or of none.
type part struct {
	// patient is the reference of the patient, at the version the request
	// touched when it touched the Patient; "" for what belongs to no one.
	patient  string
	entities []Entity // the resources other than that Patient
	// disclosed is the URL of the data a Disclosure sent out of the
	// patient's records, named instead of its resources.
	disclosed string
	// query reports whether the event records the request's query: only
	// the event about no patient does.
	query bool
}

// parts splits what a request touched by patient, as IHE BALP records a
// query whose results are about several patients: one AuditEvent per
// patient, naming that patient and only the resources that belong to them,
// so that a patient shown the events about them sees no one else's; and
// one for the resources that belong to no patient, if any. A request about
// one patient or none is one AuditEvent. A resource of two patients (an
// Appointment of both) is named in the events of both.
//
// The query of a search is recorded in the event about no patient, made
// for it when there is none, and in no patient's: BALP copies it into
// each, but a query names whom it looks for (identifier=X,Y), and a
// patient reads the events about them, so X would read Y's NHS number. The
// request id, in every event of the request, leads from a patient's event
// to the query.
func parts(e *Event) []part {
	out := byPatient(e)
	if e.Query == "" {
		return out
	}
	for i := range out {
		if out[i].patient == "" {
			out[i].query = true
			return out
		}
	}
	return append(out, part{query: true})
}

// byPatient splits what e touched by patient, as parts describes.
func byPatient(e *Event) []part {
	var touched []Entity
	if e.Record != nil {
		touched = e.Record.Entities()
	}
	var patients []string
	refs := map[string]string{} // by patient id
	mine := map[string][]Entity{}
	var nobody []Entity
	for _, t := range touched {
		for _, p := range t.Patients {
			if _, ok := refs[p]; !ok {
				refs[p] = "Patient/" + p
				patients = append(patients, p)
			}
			if self := t.Type == "Patient" && t.ID == p; self && refs[p] == "Patient/"+p {
				refs[p] = t.Reference()
				continue
			} else if self && refs[p] == t.Reference() {
				continue
			}
			// Another version of the patient's own record (an update reads
			// one and writes the next) is named as any resource is.
			mine[p] = append(mine[p], t)
		}
		if len(t.Patients) == 0 {
			nobody = append(nobody, t)
		}
	}
	if _, ok := refs[e.ID]; !ok && e.Type == "Patient" && e.ID != "" && e.Status < 400 {
		refs[e.ID] = "Patient/" + e.ID
		patients = append(patients, e.ID)
	}
	if len(patients) <= 1 {
		pt := part{}
		if len(patients) == 1 {
			pt.patient = refs[patients[0]]
		}
		for _, t := range touched {
			if t.Type != "Patient" || t.Reference() != pt.patient {
				pt.entities = append(pt.entities, t)
			}
		}
		return []part{pt}
	}
	out := make([]part, 0, len(patients)+1)
	for _, p := range patients {
		out = append(out, part{patient: refs[p], entities: mine[p]})
	}
	if len(nobody) > 0 {
		out = append(out, part{entities: nobody})
	}
	return out
}

func patientEntity(ref string) entity {
	return entity{
		What: reference{Reference: ref},
		Type: personObject,
		Role: patientRole,
	}
}

// requestor is the agent who made the request: the user's resource when
// the token names one, else the subject, with the client as altId.
func requestor(p *Principal, address string) agent {
	ag := agent{
		Type:      recipientType,
		Requestor: true,
	}
	if address != "" {
		ag.Network = &network{Address: address, Type: networkIPAddress}
	}
	if p == nil {
		ag.Who = &reference{Display: "unauthenticated"}
		return ag
	}
	switch {
	case p.FHIRUser != "":
		ag.Who = &reference{Reference: p.FHIRUser}
	case p.Subject != "":
		ag.Who = &reference{Identifier: &identifier{System: p.Issuer, Value: p.Subject}}
	case p.Open:
		ag.Who = &reference{Display: "anonymous (no authorisation configured)"}
	}
	if p.FHIRUser != "" && p.Subject != "" {
		ag.Who.Identifier = &identifier{System: p.Issuer, Value: p.Subject}
	}
	ag.AltID = p.ClientID
	return ag
}
