package care

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/profiles"
	"carefhir/store"
)

// Criteria select the people of a cohort: every criterion set must hold.
type Criteria struct {
	Practice   string   // ODS code of the practice they are registered at
	AgeMin     *int     // completed years, today
	AgeMax     *int     //
	Conditions []string // tokens (system|code) of active Conditions, each needed
	RiskCode   string   // token of the Observation ranking them; the latest counts
	RiskMin    string   // the least risk value (decimal), with RiskCode
	PAMLevel   *int     // the highest latest PAM level
	NoPCSP     bool     // without an active PCSP
	Name       string
}

// The codes of a cohort Group's characteristics, in SystemCohortCriterion.
const (
	critPractice = "practice"
	critAgeMin   = "age-min"
	critAgeMax   = "age-max"
	critCond     = "condition"
	critRisk     = "risk-code"
	critRiskMin  = "risk-min"
	critPAMLevel = "pam-level-max"
	critPCSP     = "active-pcsp"
)

// criteriaOf reads the criteria of $cohort's parameters.
func criteriaOf(inv *operation.Invocation) (*Criteria, error) {
	if err := inv.Only("practice", "ageMin", "ageMax", "condition", "riskCode", "riskMin", "pamLevelMax", "withoutActivePcsp", "name"); err != nil {
		return nil, err
	}
	cr := &Criteria{Conditions: inv.Texts("condition")}
	var err error
	text := func(name string) string {
		var s string
		if err == nil {
			s, err = inv.Text(name)
		}
		return s
	}
	optInt := func(name string) *int {
		s := text(name)
		if s == "" || err != nil {
			return nil
		}
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 0 {
			err = badParam([]string{name}, "%s must be a whole number, not %q", name, s)
			return nil
		}
		return &n
	}
	cr.Practice, cr.RiskCode, cr.RiskMin, cr.Name = text("practice"), text("riskCode"), text("riskMin"), text("name")
	cr.AgeMin, cr.AgeMax, cr.PAMLevel = optInt("ageMin"), optInt("ageMax"), optInt("pamLevelMax")
	if s := text("withoutActivePcsp"); s != "" && err == nil {
		b, perr := strconv.ParseBool(s)
		if perr != nil {
			return nil, badParam([]string{"withoutActivePcsp"}, "withoutActivePcsp must be true or false, not %q", s)
		}
		cr.NoPCSP = b
	}
	if err != nil {
		return nil, err
	}
	if params, err := cr.check(); err != nil {
		return nil, badParam(params, "%v", err)
	}
	if cr.empty() {
		return nil, operation.Errorf(http.StatusBadRequest, "required", "Parameters.parameter", "a cohort needs at least one criterion: practice, ageMin, ageMax, condition, riskCode, pamLevelMax or withoutActivePcsp")
	}
	return cr, nil
}

// maxConditions bounds the conditions of a cohort: people with more than
// a few long-term conditions at once are found by fewer.
const maxConditions = 10

// maxAge bounds ageMin and ageMax: no one is older, and the birth dates
// they imply stay within the years a date may have.
const maxAge = 150

// check returns what makes cr impossible to evaluate or to record in a
// Group, and the parameters at fault: a practice that is not an ODS code, a
// token that is not system|code,
// each part of its FHIR type (the Group records it as a Coding), an age
// out of range, ageMin over ageMax, a PAM level not 1 to 4, riskMin that
// is no FHIR decimal or without riskCode.
func (cr *Criteria) check() (params []string, err error) {
	// Searched as it is, a practice of two codes ("Y12345,Y99999") would
	// select the people of both.
	if what := profiles.IdentifierFormat(SystemODS, cr.Practice); cr.Practice != "" && what != "" {
		return []string{"practice"}, fmt.Errorf("practice must be %s, not %q", what, cr.Practice)
	}
	for _, age := range []struct {
		name string
		n    *int
	}{{"ageMin", cr.AgeMin}, {"ageMax", cr.AgeMax}} {
		if age.n != nil && (*age.n < 0 || *age.n > maxAge) {
			return []string{age.name}, fmt.Errorf("%s must be a whole number of years from 0 to %d, not %d", age.name, maxAge, *age.n)
		}
	}
	// Crossed, the ages select no one, whoever is held: the cohort would
	// be empty for a reason no evaluation shows.
	if cr.AgeMin != nil && cr.AgeMax != nil && *cr.AgeMin > *cr.AgeMax {
		return []string{"ageMin", "ageMax"}, fmt.Errorf("ageMin %d is over ageMax %d: no one is both", *cr.AgeMin, *cr.AgeMax)
	}
	if cr.PAMLevel != nil && (*cr.PAMLevel < 1 || *cr.PAMLevel > 4) {
		return []string{"pamLevelMax"}, fmt.Errorf("pamLevelMax must be a PAM level from 1 to 4, not %d", *cr.PAMLevel)
	}
	if cr.RiskMin != "" {
		// ParseFloat alone would take NaN, Inf and hexadecimal, which
		// are no FHIR decimals and compare with nothing.
		if _, err := strconv.ParseFloat(cr.RiskMin, 64); err != nil || !lexical.ValidDecimal(cr.RiskMin) {
			return []string{"riskMin"}, fmt.Errorf("riskMin must be a decimal, not %q", cr.RiskMin)
		}
		if cr.RiskCode == "" {
			return []string{"riskMin"}, errors.New("riskMin needs riskCode: the Observation it applies to")
		}
	}
	// Each condition is one more search over the population's
	// Conditions, and one more characteristic of the Group. (The
	// OperationDefinition bounds the parameter as well; this bounds a
	// stored cohort too.)
	if len(cr.Conditions) > maxConditions {
		return []string{"condition"}, fmt.Errorf("condition is given %d times: a cohort takes at most %d conditions", len(cr.Conditions), maxConditions)
	}
	for _, cond := range cr.Conditions {
		if err := checkToken("condition", cond); err != nil {
			return []string{"condition"}, err
		}
	}
	if cr.RiskCode != "" {
		if err := checkToken("riskCode", cr.RiskCode); err != nil {
			return []string{"riskCode"}, err
		}
	}
	return nil, nil
}

// checkToken refuses a token of parameter name that is not system|code
// with a uri and a code.
func checkToken(name, t string) error {
	system, code, ok := strings.Cut(t, "|")
	if !ok || !lexical.ValidURI(system) || !lexical.ValidCode(code) || strings.Contains(code, "|") {
		return fmt.Errorf("%s must be a token system|code with both parts, such as %s|44054006, not %q", name, SystemSNOMED, t)
	}
	return nil
}

// searchToken returns a checked token (system|code) as the value of a
// token search that matches it alone: a comma in its code ("44054006,x")
// would otherwise search for either of two codes.
func searchToken(t string) string {
	system, code, _ := strings.Cut(t, "|")
	return search.EscapeValue(system) + "|" + search.EscapeValue(code)
}

func (cr *Criteria) empty() bool {
	return cr.Practice == "" && cr.AgeMin == nil && cr.AgeMax == nil && len(cr.Conditions) == 0 && cr.RiskCode == "" && cr.PAMLevel == nil && !cr.NoPCSP
}

// badParam returns a 400 refusing the parameters named, the issue at each.
func badParam(names []string, format string, args ...any) *operation.Error {
	e := operation.Errorf(http.StatusBadRequest, "invalid", "", format, args...)
	for _, name := range names {
		e.Issues[0].Expression = append(e.Issues[0].Expression, "Parameters.parameter.where(name='"+name+"')")
	}
	return e
}

// cohort answers Group/$cohort, which stores a new cohort Group (201), and
// Group/{id}/$cohort, which evaluates a stored one again from its
// characteristics, as its next version.
func (c *Care) cohort(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	if inv.ID == "" {
		cr, err := criteriaOf(inv)
		if err != nil {
			return nil, err
		}
		g, err := c.Cohort(ctx, inv.Store, cr)
		if err != nil {
			return nil, refuseTooMany(err, "Parameters")
		}
		v, err := inv.Store.Create(ctx, g)
		if err != nil {
			return nil, err
		}
		g.Id, g.Meta = fhir.NewId(v.ID), &fhir.Meta{VersionId: fhir.NewId(strconv.FormatInt(v.VersionID, 10)), LastUpdated: fhir.NewInstant(v.LastUpdated.Format("2006-01-02T15:04:05.000Z07:00"))}
		return &operation.Result{Status: http.StatusCreated, Resource: g, JSON: v.JSON, Location: fmt.Sprintf("Group/%s/_history/%d", v.ID, v.VersionID)}, nil
	}
	// A stored cohort is evaluated from its characteristics alone.
	if err := inv.Only(); err != nil {
		return nil, err
	}
	var out *fhir.Group
	var stored []byte
	err := inv.Store.Transact(ctx, func(s operation.Store) error {
		v, err := operation.ReadInstance(ctx, s, "Group", inv.ID)
		if err != nil {
			return err
		}
		old, err := decode[*fhir.Group](v.JSON)
		if err != nil {
			return err
		}
		cr, at, err := criteriaFromGroup(old)
		if err != nil {
			return err
		}
		if cr.empty() {
			return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "Group.characteristic", "Group/%s is not a cohort: it has no criteria of %s", inv.ID, SystemCohortCriterion)
		}
		if params, err := cr.check(); err != nil {
			// Named where the Group records them, as a criterion it
			// cannot read is.
			out := operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "Group/%s records criteria that cannot be evaluated: %v", inv.ID, err)
			for _, p := range params {
				out.Issues[0].Expression = append(out.Issues[0].Expression, at[p]...)
			}
			return out
		}
		if err := membersReadable(ctx, s, old); err != nil {
			return err
		}
		g, err := c.Cohort(ctx, s, cr)
		if err != nil {
			return refuseTooMany(err, "Group.characteristic")
		}
		// The next version is the stored one with its members evaluated
		// again: what else was recorded of the cohort (identifiers, its
		// managing entity, tags, other characteristics) is kept.
		old.Type, old.Actual, old.Quantity, old.Member = g.Type, g.Actual, g.Quantity, g.Member
		w, err := s.Update(ctx, old, v.VersionID)
		if err != nil {
			return err
		}
		if old.Meta == nil {
			old.Meta = &fhir.Meta{}
		}
		old.Meta.VersionId, old.Meta.LastUpdated = fhir.NewId(strconv.FormatInt(w.VersionID, 10)), fhir.NewInstant(w.LastUpdated.Format("2006-01-02T15:04:05.000Z07:00"))
		out, stored = old, w.JSON
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &operation.Result{Resource: out, JSON: stored}, nil
}

// membersReadable refuses (403) to evaluate again a cohort holding a
// Patient the caller cannot read: evaluated among the people they may
// read, such as a coordinator's under the care-team policy, the cohort
// would lose that member for everyone. A member whose Patient was deleted
// is no one's to keep.
func membersReadable(ctx context.Context, s operation.Store, g *fhir.Group) error {
	var refs []string
	for _, m := range g.Member {
		if id, ok := strings.CutPrefix(refOf(m.Entity), "Patient/"); ok && lexical.ValidID(id) {
			refs = append(refs, "Patient/"+id)
		}
	}
	found := map[string]bool{}
	for _, list := range chunks(refs, chunkSize) {
		params := url.Values{"_id": {strings.ReplaceAll(list, "Patient/", "")}, "_elements": {"id"}}
		err := s.Each(ctx, "Patient", params, func(v *store.Version) error {
			found["Patient/"+v.ID] = true
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, ref := range refs {
		if found[ref] {
			continue
		}
		// Not found by search: deleted (a tombstone, readable) or not
		// the caller's to read.
		_, err := s.Read(ctx, "Patient", strings.TrimPrefix(ref, "Patient/"))
		if errors.Is(err, store.ErrNotFound) {
			return operation.Errorf(http.StatusForbidden, "forbidden", "Group.member",
				"Group/%s holds %s, which is not held here or not yours to read: evaluated again, the cohort would lose it for everyone", g.Id.Get(), ref)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// activeClinicalStatuses are the clinical statuses of a Condition that is
// active: in R4's condition-clinical, recurrence and relapse are kinds of
// active, as remission and resolved are of inactive.
const activeClinicalStatuses = "active,recurrence,relapse"

// notTheirs are the verification statuses of a Condition that is not the
// patient's, whatever its clinical status says: ruled out (refuted), or
// recorded in error (R4 condition-ver-status).
const notTheirs = "http://terminology.hl7.org/CodeSystem/condition-ver-status|refuted,http://terminology.hl7.org/CodeSystem/condition-ver-status|entered-in-error"

// member is one person of a cohort with the risk value that ranks them.
type member struct {
	patient string
	risk    string
	value   float64
}

// Cohort evaluates criteria and returns the cohort Group: type person,
// actual, members by descending risk value (then by reference), each with
// the value in the extension RiskValueURL, the criteria as
// characteristics.
func (c *Care) Cohort(ctx context.Context, s operation.Store, cr *Criteria) (*fhir.Group, error) {
	var set map[string]bool // nil: not narrowed yet
	narrow := func(keep map[string]bool) {
		if set == nil {
			set = keep
			return
		}
		for p := range set {
			if !keep[p] {
				delete(set, p)
			}
		}
	}
	// The criteria on Observations and Conditions first, then those on
	// Patients and plans. Once few people are left, each later criterion
	// is searched among them alone (see among).
	for _, cond := range cr.Conditions {
		keep := map[string]bool{}
		err := among(set, c.cfg.CohortAmongMost, "subject", url.Values{"code": {searchToken(cond)}, "clinical-status": {activeClinicalStatuses}, "verification-status:not": {notTheirs}}, func(params url.Values) error {
			return s.Each(ctx, "Condition", params, func(v *store.Version) error {
				keep[c.subjectOf(v.JSON)] = true
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
		narrow(keep)
	}
	risks := map[string]*member{}
	if cr.RiskCode != "" {
		err := among(set, c.cfg.CohortAmongMost, "subject", url.Values{"code": {searchToken(cr.RiskCode)}, "status": {resultStatuses}}, func(params url.Values) error {
			return c.latestValues(ctx, s, params, risks)
		})
		if err != nil {
			return nil, err
		}
		least, _ := strconv.ParseFloat(cr.RiskMin, 64)
		keep := map[string]bool{}
		for p, m := range risks {
			if cr.RiskMin == "" || m.value >= least {
				keep[p] = true
			}
		}
		narrow(keep)
	}
	if cr.PAMLevel != nil {
		// A result counts by its level: the scores are not read but
		// where they stand for one (latestPAM).
		keep := map[string]bool{}
		err := among(set, c.cfg.CohortAmongMost, "subject", url.Values{}, func(params url.Values) error {
			pams, err := c.latestPAM(ctx, s, params, false)
			for p, f := range pams {
				if f.level <= *cr.PAMLevel {
					keep[p] = true
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		narrow(keep)
	}
	// The practice and age, and always that the Patient is held and in
	// care (inCare): a cohort never holds someone deleted or deceased.
	searches, err := c.patientSearches(ctx, s, cr)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, params := range searches {
		params.Set("_elements", "id") // which Patients, not what they hold
		err = among(set, c.cfg.CohortAmongMost, "_id", inCare(params), func(params url.Values) error {
			return s.Each(ctx, "Patient", params, func(v *store.Version) error {
				keep["Patient/"+v.ID] = true
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
	}
	narrow(keep)
	err = among(set, c.cfg.CohortAmongMost, "_id", url.Values{}, func(params url.Values) error {
		return eachReplaced(ctx, s, params, func(ref string) { delete(set, ref) })
	})
	if err != nil {
		return nil, err
	}
	if cr.NoPCSP {
		with := map[string]bool{}
		err := among(set, c.cfg.CohortAmongMost, "subject", activePCSPs(url.Values{}), func(params url.Values) error {
			return s.Each(ctx, "CarePlan", params, func(v *store.Version) error {
				cp, err := decode[*fhir.CarePlan](v.JSON)
				if err == nil && isPCSP(cp) {
					with[c.patientRef(refOf(cp.Subject))] = true
				}
				return err
			})
		})
		if err != nil {
			return nil, err
		}
		for p := range with {
			delete(set, p)
		}
	}
	n := 0
	for p := range set {
		if strings.HasPrefix(p, "Patient/") {
			n++
		}
	}
	if n > c.cfg.CohortMostMembers {
		return nil, &tooManyError{n, c.cfg.CohortMostMembers}
	}
	members := make([]*member, 0, n)
	for p := range set {
		if !strings.HasPrefix(p, "Patient/") {
			continue
		}
		m := risks[p]
		if m == nil {
			m = &member{patient: p}
		}
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b *member) int {
		if r := cmp.Compare(b.value, a.value); r != 0 && (a.risk != "" || b.risk != "") {
			if a.risk == "" {
				return 1
			}
			if b.risk == "" {
				return -1
			}
			return r
		}
		return strings.Compare(a.patient, b.patient)
	})
	g := &fhir.Group{
		Type:           fhir.NewCode("person"),
		Actual:         fhir.NewBoolean(true),
		Quantity:       fhir.NewUnsignedInt(int64(len(members))),
		Characteristic: characteristics(cr),
	}
	if cr.Name != "" {
		g.Name = fhir.NewString(cr.Name)
	}
	for _, m := range members {
		gm := &fhir.GroupMember{Entity: &fhir.Reference{Reference: fhir.NewString(m.patient)}}
		if m.risk != "" {
			gm.Extension = []*fhir.Extension{{Url: RiskValueURL, ValueDecimal: fhir.NewDecimal(m.risk)}}
		}
		g.Member = append(g.Member, gm)
	}
	return g, nil
}

// tooManyError is the error of Cohort when the criteria select more
// people than a cohort holds: as one Group they could not be read or
// written back whole, nor stored by every engine.
type tooManyError struct{ selected, most int }

func (e *tooManyError) Error() string {
	return fmt.Sprintf("the criteria select %d people, more than the %d a cohort holds: narrow them (riskMin, pamLevelMax, a practice, ages)", e.selected, e.most)
}

// refuseTooMany returns err as a 422 at the expression at when it is a
// tooManyError, else err.
func refuseTooMany(err error, at string) error {
	var many *tooManyError
	if errors.As(err, &many) {
		return operation.Errorf(http.StatusUnprocessableEntity, "too-costly", at, "%v", many)
	}
	return err
}

// subjectOf reads the Patient a stored resource is about, as Patient/id
// (see patientRef), without decoding the rest of it; "" when its subject
// is no reference to a Patient held here.
func (c *Care) subjectOf(b []byte) string {
	var head struct {
		Subject struct{ Reference string } `json:"subject"`
	}
	json.Unmarshal(b, &head)
	return c.patientRef(head.Subject.Reference)
}

// patientSearches returns the Patient searches of the practice and age
// criteria, whose matches together are the people they select: without a
// practice, one; with one, those registered by its ODS code
// (generalPractitioner naming it by identifier, as PDS and GP Connect
// give it) and, when the practice is held here, those referring to it.
func (c *Care) patientSearches(ctx context.Context, s operation.Store, cr *Criteria) ([]url.Values, error) {
	params := url.Values{}
	today := c.Today()
	// Years are counted in months so that on 29 February the date n
	// years before is 28 February, not 1 March: someone born on 1 March
	// completes their years on 1 March.
	//
	// A birth date of a year or a month alone is the range of its days:
	// the person is of an age only when every day of it gives that age
	// (ends before the day after the latest birth date, starts after the
	// earliest), so that someone born in a year is never both at least 65
	// and at most 64, as le and gt, matching a range that overlaps, gave.
	if cr.AgeMin != nil {
		params.Add("birthdate", "eb"+addMonths(today, -12*(*cr.AgeMin)).AddDate(0, 0, 1).Format(time.DateOnly))
	}
	if cr.AgeMax != nil {
		params.Add("birthdate", "sa"+addMonths(today, -12*(*cr.AgeMax+1)).Format(time.DateOnly))
	}
	if cr.Practice == "" {
		return []url.Values{params}, nil
	}
	byCode := maps.Clone(params)
	byCode.Set("general-practitioner:identifier", SystemODS+"|"+search.EscapeValue(cr.Practice))
	refs, err := organizationsWith(ctx, s, cr.Practice)
	if err != nil || len(refs) == 0 {
		return []url.Values{byCode}, err
	}
	params.Set("general-practitioner", strings.Join(refs, ","))
	return []url.Values{byCode, params}, nil
}

// organizationsWith returns the Organizations held here with the ODS
// code, as references.
func organizationsWith(ctx context.Context, s operation.Store, ods string) ([]string, error) {
	var refs []string
	err := s.Each(ctx, "Organization", url.Values{"identifier": {SystemODS + "|" + search.EscapeValue(ods)}, "_elements": {"id"}}, func(v *store.Version) error {
		refs = append(refs, "Organization/"+v.ID)
		return nil
	})
	return refs, err
}

// latestValues puts into out the latest value of each patient's
// Observations that params select.
func (c *Care) latestValues(ctx context.Context, s operation.Store, params url.Values, out map[string]*member) error {
	when := map[string]time.Time{}
	from := map[string]string{} // the Observation each value is from
	return s.Each(ctx, "Observation", params, func(v *store.Version) error {
		var obs struct {
			Subject           struct{ Reference string }  `json:"subject"`
			EffectiveDateTime string                      `json:"effectiveDateTime"`
			EffectiveInstant  string                      `json:"effectiveInstant"`
			EffectivePeriod   struct{ Start, End string } `json:"effectivePeriod"`
			ValueQuantity     *struct {
				Value json.Number `json:"value"`
			} `json:"valueQuantity"`
		}
		if err := json.Unmarshal(v.JSON, &obs); err != nil || obs.ValueQuantity == nil {
			return nil
		}
		p := c.patientRef(obs.Subject.Reference)
		t := parseDateTime(effectiveTime(obs.EffectiveDateTime, obs.EffectiveInstant, obs.EffectivePeriod.Start, obs.EffectivePeriod.End))
		// The latest, then the last by id: the search answers in no order.
		if m := out[p]; m != nil && cmp.Or(t.Compare(when[p]), strings.Compare(v.ID, from[p])) <= 0 {
			return nil
		}
		text := obs.ValueQuantity.Value.String()
		f, perr := strconv.ParseFloat(text, 64)
		if perr != nil {
			return nil
		}
		out[p], when[p], from[p] = &member{patient: p, risk: text, value: f}, t, v.ID
		return nil
	})
}

// among runs search with params, over everyone while set is nil or holds
// more than most people, otherwise once per chunk of the people of set,
// named by param (subject, or _id for Patients) in the params it is given.
func among(set map[string]bool, most int, param string, params url.Values, search func(url.Values) error) error {
	if set == nil || len(set) > most {
		return search(params)
	}
	// Only Patients can be members: other subjects are not searched for.
	var refs []string
	for _, ref := range slices.Sorted(maps.Keys(set)) {
		if id, ok := strings.CutPrefix(ref, "Patient/"); ok && lexical.ValidID(id) {
			refs = append(refs, ref)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	for _, list := range chunks(refs, chunkSize) {
		p := maps.Clone(params)
		if param == "_id" {
			list = strings.ReplaceAll(list, "Patient/", "")
		}
		p.Set(param, list)
		if err := search(p); err != nil {
			return err
		}
	}
	return nil
}

// characteristics records criteria in a cohort Group.
func characteristics(cr *Criteria) []*fhir.GroupCharacteristic {
	var out []*fhir.GroupCharacteristic
	add := func(code, display string, set func(*fhir.GroupCharacteristic)) {
		ch := &fhir.GroupCharacteristic{Code: &fhir.CodeableConcept{Coding: []*fhir.Coding{coding(SystemCohortCriterion, code, display)}}, Exclude: fhir.NewBoolean(false)}
		set(ch)
		out = append(out, ch)
	}
	number := func(v string, unit string) *fhir.Quantity {
		q := &fhir.Quantity{Value: fhir.NewDecimal(v)}
		if unit != "" {
			q.Unit, q.System, q.Code = fhir.NewString(unit), fhir.NewUri(SystemUCUM), fhir.NewCode(unit)
		}
		return q
	}
	token := func(t string) *fhir.CodeableConcept {
		system, code, _ := strings.Cut(t, "|")
		return &fhir.CodeableConcept{Coding: []*fhir.Coding{coding(system, code, "")}}
	}
	if cr.Practice != "" {
		add(critPractice, "Registered at the practice", func(ch *fhir.GroupCharacteristic) {
			ch.ValueReference = &fhir.Reference{Identifier: &fhir.Identifier{System: fhir.NewUri(SystemODS), Value: fhir.NewString(cr.Practice)}}
		})
	}
	if cr.AgeMin != nil {
		add(critAgeMin, "Aged at least", func(ch *fhir.GroupCharacteristic) { ch.ValueQuantity = number(strconv.Itoa(*cr.AgeMin), "a") })
	}
	if cr.AgeMax != nil {
		add(critAgeMax, "Aged at most", func(ch *fhir.GroupCharacteristic) { ch.ValueQuantity = number(strconv.Itoa(*cr.AgeMax), "a") })
	}
	for _, cond := range cr.Conditions {
		add(critCond, "With the active condition", func(ch *fhir.GroupCharacteristic) { ch.ValueCodeableConcept = token(cond) })
	}
	if cr.RiskCode != "" {
		add(critRisk, "Ranked by the latest value of", func(ch *fhir.GroupCharacteristic) { ch.ValueCodeableConcept = token(cr.RiskCode) })
	}
	if cr.RiskMin != "" {
		add(critRiskMin, "Latest risk value at least", func(ch *fhir.GroupCharacteristic) { ch.ValueQuantity = number(cr.RiskMin, "") })
	}
	if cr.PAMLevel != nil {
		add(critPAMLevel, "Latest PAM level at most", func(ch *fhir.GroupCharacteristic) { ch.ValueQuantity = number(strconv.Itoa(*cr.PAMLevel), "") })
	}
	if cr.NoPCSP {
		add(critPCSP, "With an active PCSP", func(ch *fhir.GroupCharacteristic) {
			ch.ValueBoolean = fhir.NewBoolean(true)
			ch.Exclude = fhir.NewBoolean(true)
		})
	}
	return out
}

// criteriaFromGroup reads back the criteria a cohort Group records. A
// criterion it cannot read (a value of another type, an age that is no
// whole number, a code of SystemCohortCriterion not known, risk-min
// without risk-code, one but active-pcsp excluded, one but condition
// twice) is a 422 naming the characteristic: evaluated without it, or as
// its opposite, the cohort would hold people it should not. at gives,
// by the parameter of $cohort each criterion is (ageMin for age-min),
// the characteristics recording it, to name those at fault when the
// criteria read cannot be evaluated (Criteria.check).
func criteriaFromGroup(g *fhir.Group) (cr *Criteria, at map[string][]string, err error) {
	cr, at = &Criteria{Name: g.Name.Get()}, map[string][]string{}
	riskMinAt := -1
	recorded := map[string]int{} // where each criterion is, by code
	for i, ch := range g.Characteristic {
		// The criterion is the code of SystemCohortCriterion among the
		// codings, wherever it stands: another coding beside it (a
		// SNOMED CT concept for age, say) does not make it no criterion.
		var codes []string
		if ch.Code != nil {
			for _, cd := range ch.Code.Coding {
				if cd.System.Get() == SystemCohortCriterion {
					codes = append(codes, cd.Code.Get())
				}
			}
		}
		if len(codes) == 0 {
			continue
		}
		if len(codes) > 1 {
			return nil, nil, operation.Errorf(http.StatusUnprocessableEntity, "business-rule", fmt.Sprintf("Group.characteristic[%d].code", i),
				"Group/%s records the criteria %s as one characteristic, with one value: each is a characteristic of its own", g.Id.Get(), strings.Join(codes, " and "))
		}
		code := codes[0]
		// A criterion holds one value, but for conditions, each needed:
		// read twice, one of the two would be left out.
		if first, ok := recorded[code]; ok && code != critCond {
			return nil, nil, operation.Errorf(http.StatusUnprocessableEntity, "business-rule", fmt.Sprintf("Group.characteristic[%d]", i),
				"Group/%s records the criterion %s again, as at Group.characteristic[%d]: it holds one value, and one of the two would be left out", g.Id.Get(), code, first)
		}
		recorded[code] = i
		bad := func(want string) error {
			return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", fmt.Sprintf("Group.characteristic[%d]", i),
				"Group/%s records the criterion %s that cannot be evaluated: its value must be %s", g.Id.Get(), code, want)
		}
		// An amount is as recorded: a comparator (age-min < 65) would
		// make it another criterion, or the opposite one.
		amount := func(want string) (string, error) {
			q := ch.ValueQuantity
			if q == nil || q.Value.Get() == "" || q.Comparator.Get() != "" {
				return "", bad(want + ", without a comparator")
			}
			return q.Value.Get(), nil
		}
		integer := func() (*int, error) {
			v, err := amount("a valueQuantity holding a whole number")
			if err != nil {
				return nil, err
			}
			// A whole number may be written as a decimal (65.0).
			n, ok := wholeNumber(v)
			if !ok {
				return nil, bad("a valueQuantity holding a whole number")
			}
			return &n, nil
		}
		// An age is in years: UCUM a, as recorded here, or no unit.
		years := func() (*int, error) {
			q := ch.ValueQuantity
			if q != nil && (q.Code.Get() != "" || q.System.Get() != "") && (q.Code.Get() != "a" || q.System.Get() != SystemUCUM) {
				return nil, bad("a valueQuantity holding a whole number of years (UCUM a)")
			}
			return integer()
		}
		token := func() (string, error) {
			cc := ch.ValueCodeableConcept
			const want = "a valueCodeableConcept with a coding of a system (a uri) and a code"
			if cc == nil || len(cc.Coding) == 0 {
				return "", bad(want)
			}
			t := cc.Coding[0].System.Get() + "|" + cc.Coding[0].Code.Get()
			// Checked here, of each condition, to name the one at fault.
			if checkToken(code, t) != nil {
				return "", bad(want)
			}
			return t, nil
		}
		var err error
		switch code {
		case critPractice:
			// An identifier of another system is no ODS code, whatever its
			// value: read as one, it would name another practice.
			var id *fhir.Identifier
			if ch.ValueReference != nil {
				id = ch.ValueReference.Identifier
			}
			if id == nil || id.Value.Get() == "" || id.System.Get() != "" && id.System.Get() != SystemODS {
				return nil, nil, bad("a valueReference with the ODS code of the practice as its identifier (system " + SystemODS + ")")
			}
			cr.Practice = ch.ValueReference.Identifier.Value.Get()
		case critAgeMin:
			cr.AgeMin, err = years()
		case critAgeMax:
			cr.AgeMax, err = years()
		case critCond:
			var t string
			t, err = token()
			cr.Conditions = append(cr.Conditions, t)
		case critRisk:
			cr.RiskCode, err = token()
		case critRiskMin:
			cr.RiskMin, err = amount("a valueQuantity holding a decimal")
			riskMinAt = i
		case critPAMLevel:
			cr.PAMLevel, err = integer()
		case critPCSP:
			if !ch.ValueBoolean.Get() || !ch.Exclude.Get() {
				err = bad("valueBoolean true, with exclude true")
			}
			cr.NoPCSP = true
		default:
			err = operation.Errorf(http.StatusUnprocessableEntity, "business-rule", fmt.Sprintf("Group.characteristic[%d].code", i),
				"Group/%s records the criterion %q, which is not known: the criteria are %s", g.Id.Get(), code,
				strings.Join([]string{critPractice, critAgeMin, critAgeMax, critCond, critRisk, critRiskMin, critPAMLevel, critPCSP}, ", "))
		}
		if err != nil {
			return nil, nil, err
		}
		if param := criterionParams[code]; param != "" {
			at[param] = append(at[param], fmt.Sprintf("Group.characteristic[%d]", i))
		}
		// Excluded, a criterion would select the people who do not meet
		// it, which no evaluation here does but for active-pcsp.
		if code != critPCSP && ch.Exclude.Get() {
			return nil, nil, operation.Errorf(http.StatusUnprocessableEntity, "business-rule", fmt.Sprintf("Group.characteristic[%d].exclude", i),
				"Group/%s records the criterion %s with exclude true, which cannot be evaluated: of the criteria, only %s is one the members do not meet", g.Id.Get(), code, critPCSP)
		}
	}
	if riskMinAt >= 0 && cr.RiskCode == "" {
		return nil, nil, operation.Errorf(http.StatusUnprocessableEntity, "business-rule", fmt.Sprintf("Group.characteristic[%d]", riskMinAt),
			"Group/%s records the criterion risk-min without risk-code: risk-min needs risk-code, the Observation it applies to", g.Id.Get())
	}
	return cr, at, nil
}

// criterionParams are the parameters of $cohort, by the code of the
// criterion each is recorded as.
var criterionParams = map[string]string{
	critPractice: "practice", critAgeMin: "ageMin", critAgeMax: "ageMax", critCond: "condition",
	critRisk: "riskCode", critRiskMin: "riskMin", critPAMLevel: "pamLevelMax", critPCSP: "withoutActivePcsp",
}
