package care

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/store"
)

// pamFact is what a patient's PAM history says: the latest response not
// entered in error, and the level before it.
type pamFact struct {
	when      time.Time
	date      string // the effective time as written (effectiveTime)
	level     int
	score     string
	prevLevel int // 0: no earlier PAM
	// measured is the record of the measurement: the response, or for a
	// result recorded in a GP system its level Observation.
	measured string
}

// pamResult is one scored response, from its two Observations, or one
// result recorded in a GP system, from its level and score Observations
// or from its score alone.
type pamResult struct {
	patient, response, date string
	when                    time.Time
	level                   int
	levelObservation        string // Observation/id
	score                   string
	scoreObservation        string // Observation/id
}

// resultStatuses are the statuses of an Observation whose result counts:
// in R4's observation-status, corrected is a kind of amended, and both
// follow final.
const resultStatuses = "final,amended,corrected"

// latestPAM returns the PAM facts of the patients whose PAM Observations
// match filter (such as subject=Patient/1,Patient/2; empty: everyone), by
// patient reference; without scores the facts carry none. It reads the
// levels and the scores, whether derived from a response here or recorded
// in a GP system, where a score may stand without a level (see
// pamResult.levelOf): a search for the scores derived from no response
// (derived-from:missing=true) would leave out those whose derivedFrom
// names the source's response by display alone, as a GP Connect import
// writes it, which R4's :missing counts as a value.
func (c *Care) latestPAM(ctx context.Context, s operation.Store, filter url.Values, scores bool) (map[string]*pamFact, error) {
	params := url.Values{"code": {c.pamCodes()}, "status": {resultStatuses}}
	for k, v := range filter {
		params[k] = v
	}
	results := map[string]*pamResult{} // by response, else by patient and time
	if err := s.Each(ctx, "Observation", params, func(v *store.Version) error { return c.addPAMResult(results, v) }); err != nil {
		return nil, err
	}
	// A GP system may date a measurement's level and score apart (a
	// minute between them), or record one taken here again: a score
	// alone stands for a result only on a day the patient has no level,
	// or it would be taken for a second measurement; it is the score of
	// that day's level when the level has none.
	leveled := map[string]*pamResult{}
	day := func(r *pamResult) string { return r.patient + "|" + c.dateOf(r.when).Format(time.DateOnly) }
	for _, r := range results {
		if r.level > 0 && !r.when.IsZero() {
			leveled[day(r)] = r
		}
	}
	byPatient := map[string][]*pamResult{}
	for _, r := range results {
		if l := leveled[day(r)]; r.level == 0 && r.response == "" && !r.when.IsZero() && l != nil {
			if l.score == "" {
				l.score = r.score
			}
			continue
		}
		if r.levelOf(c.cfg.PAM.cutoffs()) && r.patient != "" {
			byPatient[r.patient] = append(byPatient[r.patient], r)
		}
	}
	out := make(map[string]*pamFact, len(byPatient))
	for p, rs := range byPatient {
		sort.Slice(rs, func(i, j int) bool {
			if !rs[i].when.Equal(rs[j].when) {
				return rs[i].when.After(rs[j].when)
			}
			return rs[i].response > rs[j].response
		})
		f := &pamFact{when: rs[0].when, date: rs[0].date, level: rs[0].level, score: rs[0].score, measured: cmp.Or(rs[0].response, rs[0].levelObservation)}
		if !scores {
			f.score = ""
		}
		if len(rs) > 1 {
			f.prevLevel = rs[1].level
		}
		out[p] = f
	}
	return out, nil
}

// levelOf settles r's level, reporting whether it has one: the level
// recorded, else, for a result recorded in a GP system with its score
// alone, the level the score falls in by cut (the level is what
// caseloads, cohorts and reminders compare). The score's Observation then
// stands for the result.
func (r *pamResult) levelOf(cut Cutoffs) bool {
	if r.level > 0 {
		return true
	}
	if r.score == "" || r.response != "" {
		return false
	}
	v, ok := scoreValue(r.score)
	if !ok {
		return false
	}
	r.level, r.levelObservation = cut.Level(v), r.scoreObservation
	return true
}

// scoreValue reads a PAM score, a decimal from 0 to 100.
func scoreValue(decimal string) (float64, bool) {
	v, err := strconv.ParseFloat(decimal, 64)
	return v, err == nil && v >= 0 && v <= 100
}

// effectiveTime is the time an Observation's result is as recent as, as
// written: its effective time, whichever type holds it (GP systems send
// instants and periods as well as dateTimes); of a period, its end, else
// its start.
func effectiveTime(dateTime, instant, periodStart, periodEnd string) string {
	return cmp.Or(dateTime, instant, periodEnd, periodStart)
}

// addPAMResult adds what the PAM Observation v says to results: its
// level or its score, to the result of its response, else of its patient
// and time.
func (c *Care) addPAMResult(results map[string]*pamResult, v *store.Version) error {
	// Read the few elements needed rather than decoding the whole.
	var obs struct {
		Code struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"code"`
		Subject           struct{ Reference string }   `json:"subject"`
		DerivedFrom       []struct{ Reference string } `json:"derivedFrom"`
		EffectiveDateTime string                       `json:"effectiveDateTime"`
		EffectiveInstant  string                       `json:"effectiveInstant"`
		EffectivePeriod   struct{ Start, End string }  `json:"effectivePeriod"`
		ValueInteger      json.Number                  `json:"valueInteger"`
		ValueQuantity     *struct {
			Value json.Number `json:"value"`
		} `json:"valueQuantity"`
	}
	if err := json.Unmarshal(v.JSON, &obs); err != nil {
		return fmt.Errorf("PAM Observation/%s: %w", v.ID, err)
	}
	resp := ""
	if len(obs.DerivedFrom) > 0 {
		resp = obs.DerivedFrom[0].Reference
	}
	effective := effectiveTime(obs.EffectiveDateTime, obs.EffectiveInstant, obs.EffectivePeriod.Start, obs.EffectivePeriod.End)
	patient, when := c.patientRef(obs.Subject.Reference), parseDateTime(effective)
	key := resp
	switch {
	case key != "":
	case !when.IsZero():
		// Recorded elsewhere (a GP system's level and score, each an
		// Observation of its own): one result a patient and instant,
		// however the reference and the time are written.
		key = patient + "|" + strconv.FormatInt(when.UnixMilli(), 10)
	default:
		key = "Observation/" + v.ID
	}
	r := results[key]
	if r == nil {
		r = &pamResult{patient: patient, response: resp, date: effective, when: when}
		results[key] = r
	}
	isLevel := slices.ContainsFunc(obs.Code.Coding, func(cd struct{ System, Code string }) bool {
		return cd.System == SystemPAM && cd.Code == CodePAMLevel || cd.System == SystemSNOMED && cd.Code == c.cfg.Codes.PAMLevel
	})
	quantity := ""
	if obs.ValueQuantity != nil {
		quantity = obs.ValueQuantity.Value.String()
	}
	switch {
	case isLevel:
		if n, ok := levelValue(obs.ValueInteger.String(), quantity); ok {
			r.level, r.levelObservation = n, "Observation/"+v.ID
		}
	case obs.ValueQuantity != nil:
		r.score, r.scoreObservation = obs.ValueQuantity.Value.String(), "Observation/"+v.ID
	}
	return nil
}

// levelValue reads a PAM level as a GP system may record it: an integer,
// or a quantity holding a whole number, as a decimal may write one (2.0).
// ok is false for anything no level is: no value (a dataAbsentReason,
// such as a PAM the patient declined), or a number outside 1 to 4, which
// would rank the patient among the levels without measuring them.
func levelValue(integer, quantity string) (level int, ok bool) {
	switch {
	case integer != "":
		n, err := strconv.Atoi(integer)
		level, ok = n, err == nil
	case quantity != "":
		level, ok = wholeNumber(quantity)
	}
	return level, ok && level >= 1 && level <= 4
}

// wholeNumber reads a FHIR decimal that is a whole number, such as 2 or
// 2.0.
func wholeNumber(decimal string) (int, bool) {
	whole, frac, _ := strings.Cut(decimal, ".")
	n, err := strconv.Atoi(whole)
	return n, err == nil && strings.Trim(frac, "0") == ""
}

// pamCodes returns the codes of PAM results, as a token search's value:
// the level's and the score's, each under carefhir's system
// and as the configured SNOMED CT concept, by which GP systems record
// the PAM results taken there.
func (c *Care) pamCodes() string {
	return strings.Join([]string{SystemPAM + "|" + CodePAMLevel, SystemSNOMED + "|" + c.cfg.Codes.PAMLevel,
		SystemPAM + "|" + CodePAMScore, SystemSNOMED + "|" + c.cfg.Codes.PAMScore}, ",")
}

// parseDateTime reads a FHIR date or dateTime; the zero time when it is
// neither.
func parseDateTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly, "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// lastDayOf returns the last day a FHIR date names, as YYYY-MM-DD: the
// date itself, or the last day of the month or year it gives alone
// (2026-12, 2026), by which what is due then is done.
func lastDayOf(date string) string {
	if t, err := time.Parse("2006", date); err == nil {
		return t.AddDate(1, 0, -1).Format(time.DateOnly)
	}
	if t, err := time.Parse("2006-01", date); err == nil {
		return t.AddDate(0, 1, -1).Format(time.DateOnly)
	}
	return date
}

// inCare adds to a Patient search what selects the people proactive care
// reaches: alive (deceased absent or false) and with a record in use
// (active not false). Deleted Patients match no search.
func inCare(params url.Values) url.Values {
	params.Set("deceased", "false")
	params.Set("active:not", "false")
	return params
}

// patientsInCare returns which of refs (Patient/id) name Patients held
// here and in care (inCare), their records not replaced by another
// (eachReplaced).
func patientsInCare(ctx context.Context, s operation.Store, refs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, list := range chunks(refs, chunkSize) {
		ids := strings.ReplaceAll(list, "Patient/", "")
		err := s.Each(ctx, "Patient", inCare(url.Values{"_id": {ids}, "_elements": {"id"}}), func(v *store.Version) error {
			out["Patient/"+v.ID] = true
			return nil
		})
		if err != nil {
			return nil, err
		}
		err = eachReplaced(ctx, s, url.Values{"_id": {ids}}, func(ref string) { delete(out, ref) })
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eachReplaced calls fn with the reference of each Patient params select
// whose record was replaced by another: a link of type replaced-by, as a
// merge leaves the record it retires, which R4 says must no longer be
// used; the person is counted by the record that replaced it. Only
// Patients with links are read, and only their links.
func eachReplaced(ctx context.Context, s operation.Store, params url.Values, fn func(ref string)) error {
	params.Set("link:missing", "false")
	params.Set("_elements", "id,link")
	return s.Each(ctx, "Patient", params, func(v *store.Version) error {
		var p struct {
			Link []struct{ Type string } `json:"link"`
		}
		if err := json.Unmarshal(v.JSON, &p); err != nil {
			return fmt.Errorf("Patient/%s: %w", v.ID, err)
		}
		if slices.ContainsFunc(p.Link, func(l struct{ Type string }) bool { return l.Type == "replaced-by" }) {
			fn("Patient/" + v.ID)
		}
		return nil
	})
}

// chunkSize is how many patients one search of their facts names: half
// the values of one parameter that the search layer takes.
const chunkSize = 500

// chunks splits refs into lists of at most n, joined with commas, as the
// values of one search parameter (OR).
func chunks(refs []string, n int) []string {
	var out []string
	for len(refs) > 0 {
		k := min(n, len(refs))
		out = append(out, strings.Join(refs[:k], ","))
		refs = refs[k:]
	}
	return out
}

// patientRef returns the Patient a literal reference names as Patient/id,
// the form caseloads and cohorts key people by: a reference to a version
// (Patient/id/_history/2), or an absolute one under this server's base,
// names the Patient too. It returns "" for anything else, such as a
// reference to another server, whose Patient/1 is not this one's, or a
// value that is no reference ("Patient/a,b"), which searched as an _id
// would name other people.
func (c *Care) patientRef(ref string) string {
	if id, ok := c.localID(ref, "Patient"); ok {
		return "Patient/" + id
	}
	return ""
}

// localID returns the id of the resource of type typ held here that a
// literal reference names, as typ/id or a version of it
// (typ/id/_history/2), relative or under the server's base, read as the
// search index reads it (search.ParseReference); ok is false for
// anything else.
func (c *Care) localID(ref, typ string) (id string, ok bool) {
	r := search.ParseReference(ref, c.cfg.BaseURL)
	return r.ID, r.ID != "" && r.Type == typ
}
