package care

import (
	"bytes"
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
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/profiles"
	"carefhir/store"
)

// checkPAM refuses (422) a PAM response that answers a statement or
// gives the score twice, which would count it twice, and a completed (or
// amended) one that does not say when it was authored or names no Patient
// held here as its subject: its score and level Observations and its
// re-measurement reminders are that patient's, as of that date.
func (c *Care) checkPAM(ctx context.Context, s operation.Store, ch *operation.Change) error {
	qr, ok := ch.Resource.(*fhir.QuestionnaireResponse)
	if ch.Deleted || !ok || !isPAM(qr) {
		return nil
	}
	if err := checkPAMItems(qr); err != nil {
		return err
	}
	if !scored(qr) {
		return nil
	}
	if err := checkAuthored(qr); err != nil {
		return err
	}
	_, err := c.pamPatient(ch.Requester(ctx), s, ch, qr)
	return err
}

// checkAuthored refuses a scored PAM response without authored: it is the
// date of the measurement, which orders a patient's PAMs and sets when
// the next is due.
func checkAuthored(qr *fhir.QuestionnaireResponse) error {
	if qr.Authored.Get() == "" {
		return operation.Errorf(http.StatusUnprocessableEntity, "required", "QuestionnaireResponse.authored",
			"a PAM response that is %s says when it was authored: the date of the measurement its score and level Observations take", qr.Status.Get())
	}
	return nil
}

// checkPAMItems refuses a PAM response in which a statement or the score
// appears as more than one item or with more than one answer.
func checkPAMItems(qr *fhir.QuestionnaireResponse) error {
	out := &operation.Error{Status: http.StatusUnprocessableEntity}
	fail := func(i int, format string, args ...any) {
		out.Issues = append(out.Issues, operation.Issue{Severity: "error", Code: "structure",
			Diagnostics: fmt.Sprintf(format, args...), Expression: []string{fmt.Sprintf("QuestionnaireResponse.item[%d]", i)}})
	}
	first := map[string]int{} // by linkId, the index of its first item
	for i, item := range qr.Item {
		link := item.LinkId.Get()
		if j, ok := first[link]; ok {
			fail(i, "the PAM item %s appears more than once (also item[%d]): each statement and the score are answered once", link, j)
			continue
		}
		first[link] = i
		if len(item.Answer) > 1 {
			fail(i, "the PAM item %s has %d answers: each statement and the score have one", link, len(item.Answer))
		}
	}
	if len(out.Issues) > 0 {
		return out
	}
	return nil
}

// scored reports whether a response's status is one that is scored:
// completed or amended.
func scored(qr *fhir.QuestionnaireResponse) bool {
	st := qr.Status.Get()
	return st == "completed" || st == "amended"
}

// pamPatient returns the Patient a PAM response measures, as Patient/id:
// the subject's reference, or the one Patient held here with the
// subject's identifier (such as an NHS number), found as ctx reads: on a
// write, as who asked for it, so that a response can neither tell them
// whether a patient they may not read is held nor score one. In a
// transaction (ch, nil outside one), the Patients its other entries
// create or update count as they write them, whatever the order of the
// entries. Otherwise it is a 422 naming QuestionnaireResponse.subject.
func (c *Care) pamPatient(ctx context.Context, s operation.Store, ch *operation.Change, qr *fhir.QuestionnaireResponse) (string, error) {
	const at = "QuestionnaireResponse.subject"
	sub := qr.Subject
	if sub == nil {
		return "", operation.Errorf(http.StatusUnprocessableEntity, "required", at,
			"a PAM response that is %s has a subject: the Patient whose score and level it gives", qr.Status.Get())
	}
	if ref := sub.Reference.Get(); ref != "" {
		if patient := c.patientRef(ref); patient != "" {
			return patient, nil
		}
		return "", operation.Errorf(http.StatusUnprocessableEntity, "business-rule", at+".reference",
			"the subject of a PAM response must reference a Patient held here (Patient/id), not %q", ref)
	}
	id := sub.Identifier
	if id == nil || id.Value.Get() == "" {
		return "", operation.Errorf(http.StatusUnprocessableEntity, "required", at,
			"the subject of a PAM response must reference a Patient held here, by reference or identifier")
	}
	token := search.EscapeValue(id.Value.Get())
	if system := id.System.Get(); system != "" {
		token = search.EscapeValue(system) + "|" + token
	}
	// What the transaction writes of a Patient replaces what is stored
	// of it; some of what it writes is not stored yet.
	written, holding := map[string]bool{}, map[string]bool{}
	if ch != nil && ch.Written != nil {
		for _, v := range ch.Written("Patient") {
			written[v.ID] = true
			has, err := hasIdentifier(v.JSON, id.System.Get(), id.Value.Get())
			if err != nil {
				return "", fmt.Errorf("find the Patient of a PAM response: Patient/%s: %w", v.ID, err)
			}
			if has {
				holding[v.ID] = true
			}
		}
	}
	page, err := s.Search(ctx, "Patient", url.Values{"identifier": {token}, "_elements": {"id"}, "_count": {strconv.Itoa(2 + len(written))}})
	if err != nil {
		return "", fmt.Errorf("find the Patient of a PAM response: %w", err)
	}
	for _, m := range page.Matches {
		if !written[m.ID] {
			holding[m.ID] = true
		}
	}
	found := slices.Collect(maps.Keys(holding))
	if len(found) != 1 {
		held := "no Patient held here has"
		if len(found) > 1 {
			held = "more than one Patient held here has"
		}
		return "", operation.Errorf(http.StatusUnprocessableEntity, "business-rule", at+".identifier",
			"the subject of a PAM response must reference a Patient held here: %s the identifier %s|%s", held, id.System.Get(), id.Value.Get())
	}
	return "Patient/" + found[0], nil
}

// hasIdentifier reports whether a Patient, as JSON, has the identifier
// value of system, as a token search matches it: of any system when
// system is "".
func hasIdentifier(patient []byte, system, value string) (bool, error) {
	var p struct {
		Identifier []struct{ System, Value string } `json:"identifier"`
	}
	if err := json.Unmarshal(patient, &p); err != nil {
		return false, err
	}
	return slices.ContainsFunc(p.Identifier, func(i struct{ System, Value string }) bool {
		return i.Value == value && (system == "" || i.System == system)
	}), nil
}

// scoreOnWrite keeps the two PAM Observations of a response (score and
// level) in step with it, in the unit of work of its write: written when a
// completed response is scored, updated (status amended) when it is
// amended, marked entered-in-error when it is deleted or is no longer a
// completed or amended PAM response. A response
// that cannot be scored is stored with a warning and no Observations; a
// scored one closes the patient's open re-measurement reminders.
func (c *Care) scoreOnWrite(ctx context.Context, s operation.Store, ch *operation.Change) ([]operation.Issue, error) {
	ref := "QuestionnaireResponse/" + ch.ID
	if ch.Deleted {
		return nil, c.retractPAM(ctx, s, ref)
	}
	qr, ok := ch.Resource.(*fhir.QuestionnaireResponse)
	if !ok {
		return nil, nil
	}
	if !isPAM(qr) || !scored(qr) {
		// Only a completed or amended PAM response has Observations: one
		// no longer so (entered in error, back in progress, stopped, or
		// now answering another Questionnaire) takes back those it had,
		// which would otherwise still count. A first version had none.
		if ch.Version.VersionID == 1 {
			return nil, nil
		}
		return nil, c.retractPAM(ctx, s, ref)
	}
	patient, err := c.pamPatient(ch.Requester(ctx), s, ch, qr)
	if err != nil {
		return nil, err
	}
	score, err := c.cfg.PAM.ScorePAM(qr)
	var unscorable *Unscorable
	if errors.As(err, &unscorable) {
		is := operation.Issue{Severity: "warning", Code: "incomplete", Diagnostics: "the PAM response was stored without a score: " + unscorable.Reason}
		if unscorable.Expression != "" {
			is.Expression = []string{unscorable.Expression}
		}
		return []operation.Issue{is}, c.retractPAM(ctx, s, ref)
	}
	if err != nil {
		return nil, err
	}
	var warnings []operation.Issue
	if least := c.cfg.PAM.minAnswered(); score.Answered < least {
		warnings = append(warnings, operation.Issue{Severity: "warning", Code: "incomplete", Expression: []string{"QuestionnaireResponse.item"},
			Diagnostics: fmt.Sprintf("the licensed score was stored, but only %d statements are answered (not applicable not counted): PAM-13 needs at least %d for a valid score", score.Answered, least)})
	}
	// A response's first version has no Observations yet: none to look
	// for (which also lets bulk loads into engines without transactions
	// write responses after Observations in one unit of work).
	if err := c.writePAM(ctx, s, ch.ID, qr, patient, score, ch.Version.VersionID == 1); err != nil {
		return nil, err
	}
	return warnings, c.endTasks(ctx, s, CodeRemeasureTask, url.Values{"patient": {patient}}, "completed", c.remeasures(ctx, s, ref, parseDateTime(qr.Authored.Get())))
}

// closeOnResultElsewhere closes the open re-measurement reminders of the
// patient of a PAM level or score a GP system recorded (coded by the
// configured SNOMED CT concept, derived from no response here), as a PAM
// scored here does: when it was taken after the PAM a reminder is about.
// A score recorded without a level stands for the result (latestPAM).
func (c *Care) closeOnResultElsewhere(ctx context.Context, s operation.Store, ch *operation.Change) ([]operation.Issue, error) {
	obs, ok := ch.Resource.(*fhir.Observation)
	if !ok || len(obs.DerivedFrom) > 0 || !slices.Contains(strings.Split(resultStatuses, ","), obs.Status.Get()) {
		return nil, nil
	}
	quantity := ""
	if obs.ValueQuantity != nil {
		quantity = obs.ValueQuantity.Value.Get()
	}
	// Only a result that counts (latestPAM) re-measures: a level with
	// no value, such as a PAM the patient declined, measured nothing.
	if hasCoding(obs.Code, SystemSNOMED, c.cfg.Codes.PAMLevel) {
		integer := ""
		if obs.ValueInteger != nil && obs.ValueInteger.Value != nil {
			integer = strconv.FormatInt(obs.ValueInteger.Get(), 10)
		}
		if _, ok := levelValue(integer, quantity); !ok {
			return nil, nil
		}
	} else {
		if !hasCoding(obs.Code, SystemSNOMED, c.cfg.Codes.PAMScore) || quantity == "" {
			return nil, nil
		}
		if _, ok := scoreValue(quantity); !ok {
			return nil, nil
		}
	}
	var start, end string
	if obs.EffectivePeriod != nil {
		start, end = obs.EffectivePeriod.Start.Get(), obs.EffectivePeriod.End.Get()
	}
	patient, when := c.patientRef(refOf(obs.Subject)), parseDateTime(effectiveTime(obs.EffectiveDateTime.Get(), obs.EffectiveInstant.Get(), start, end))
	if patient == "" || when.IsZero() {
		return nil, nil
	}
	if !hasCoding(obs.Code, SystemSNOMED, c.cfg.Codes.PAMLevel) {
		// A score alone re-measures only on a later day: of the same
		// day it is the score of that day's level (latestPAM), dated a
		// little apart from it.
		y, m, d := when.In(c.cfg.Zone).Date()
		when = time.Date(y, m, d, 0, 0, 0, 0, c.cfg.Zone)
	}
	return nil, c.endTasks(ctx, s, CodeRemeasureTask, url.Values{"patient": {patient}}, "completed", c.remeasures(ctx, s, "Observation/"+ch.ID, when))
}

// remeasures reports whether the PAM ref, taken at authored, re-measures
// what an open re-measurement reminder asks for: it was taken after the
// PAM the reminder is about (one backdated, or that PAM amended, does
// not), or that PAM is no longer held. Each PAM is a response, or the
// level Observation of a result recorded in a GP system.
//
// The reminder's focus is read as a reference to a resource held here is
// read everywhere in care: a version of the PAM, or its absolute URL under
// this server's base, names that PAM.
func (c *Care) remeasures(ctx context.Context, s operation.Store, ref string, authored time.Time) func(*fhir.Task) (bool, error) {
	return func(t *fhir.Task) (bool, error) {
		focus := c.localRef(refOf(t.Focus))
		if focus == ref {
			return false, nil
		}
		typ, id, _ := strings.Cut(focus, "/")
		if typ != "QuestionnaireResponse" && typ != "Observation" {
			return true, nil
		}
		v, err := s.Read(ctx, typ, id)
		if errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		var measured struct {
			Authored          string                      `json:"authored"`
			EffectiveDateTime string                      `json:"effectiveDateTime"`
			EffectiveInstant  string                      `json:"effectiveInstant"`
			EffectivePeriod   struct{ Start, End string } `json:"effectivePeriod"`
		}
		if err := json.Unmarshal(v.JSON, &measured); err != nil {
			return false, fmt.Errorf("the PAM of a re-measurement reminder, %s: %w", focus, err)
		}
		return authored.After(parseDateTime(cmp.Or(measured.Authored, effectiveTime(measured.EffectiveDateTime, measured.EffectiveInstant, measured.EffectivePeriod.Start, measured.EffectivePeriod.End)))), nil
	}
}

// pamObservations returns the PAM Observations derived from a response:
// its score and level, either nil when there is none.
func pamObservations(ctx context.Context, s operation.Store, ref string) (score, level *fhir.Observation, err error) {
	page, err := s.Search(ctx, "Observation", url.Values{"derived-from": {ref}, "code": {SystemPAM + "|" + CodePAMScore + "," + SystemPAM + "|" + CodePAMLevel}, "_count": {"10"}})
	if err != nil {
		return nil, nil, err
	}
	for _, v := range page.Matches {
		obs, err := decode[*fhir.Observation](v.JSON)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case hasCoding(obs.Code, SystemPAM, CodePAMScore):
			score = obs
		case hasCoding(obs.Code, SystemPAM, CodePAMLevel):
			level = obs
		}
	}
	return score, level, nil
}

// writePAM writes the score and level Observations of a scored response:
// new ones (final), or the response's own updated (amended) when their
// values or the response changed; patient is the one it measures, first
// says the response is new.
func (c *Care) writePAM(ctx context.Context, s operation.Store, id string, qr *fhir.QuestionnaireResponse, patient string, score *Score, first bool) error {
	ref := "QuestionnaireResponse/" + id
	var oldScore, oldLevel *fhir.Observation
	if !first {
		var err error
		if oldScore, oldLevel, err = pamObservations(ctx, s, ref); err != nil {
			return err
		}
	}
	for _, o := range []struct {
		old  *fhir.Observation
		kind string
	}{{oldScore, CodePAMScore}, {oldLevel, CodePAMLevel}} {
		obs := c.pamObservation(ref, qr, patient, o.kind, score)
		if o.old == nil {
			if _, err := s.Create(ctx, obs); err != nil {
				return err
			}
			continue
		}
		if same(o.old, obs) {
			continue
		}
		obs.Id = o.old.Id
		obs.Status = fhir.NewCode("amended")
		if _, err := s.Update(ctx, obs, 0); err != nil {
			return err
		}
	}
	return nil
}

// same reports whether a stored PAM Observation already says what obs
// says: its value, date, and who it is of and by, as the response
// gives them (a response amended to name its author rightly amends
// its Observations' performer).
func same(stored, obs *fhir.Observation) bool {
	return stored.Status.Get() != "entered-in-error" &&
		quantityValue(stored.ValueQuantity) == quantityValue(obs.ValueQuantity) &&
		stored.ValueInteger.Get() == obs.ValueInteger.Get() &&
		stored.EffectiveDateTime.Get() == obs.EffectiveDateTime.Get() &&
		sameJSON(&fhir.Observation{Subject: stored.Subject, Performer: stored.Performer}, &fhir.Observation{Subject: obs.Subject, Performer: obs.Performer})
}

// sameJSON reports whether two resources are written alike.
func sameJSON(a, b fhir.Resource) bool {
	x, errX := fhirjson.Marshal(a)
	y, errY := fhirjson.Marshal(b)
	return errX == nil && errY == nil && bytes.Equal(x, y)
}

// pamObservation returns the Observation of one kind (score or level)
// derived from a scored response of patient.
func (c *Care) pamObservation(ref string, qr *fhir.QuestionnaireResponse, patient, kind string, score *Score) *fhir.Observation {
	obs := &fhir.Observation{
		Status:            fhir.NewCode("final"),
		Category:          []*fhir.CodeableConcept{{Coding: []*fhir.Coding{coding(SystemObservationCategory, "survey", "Survey")}}},
		Subject:           &fhir.Reference{Reference: fhir.NewString(patient), Display: qr.Subject.Display},
		EffectiveDateTime: qr.Authored,
		DerivedFrom:       []*fhir.Reference{{Reference: fhir.NewString(ref)}},
	}
	for _, r := range []*fhir.Reference{qr.Author, qr.Source} {
		if mayPerform(r) {
			obs.Performer = []*fhir.Reference{r}
			break
		}
	}
	if kind == CodePAMScore {
		obs.Code = &fhir.CodeableConcept{
			Coding: []*fhir.Coding{coding(SystemPAM, CodePAMScore, "Patient Activation Measure score"), coding(SystemSNOMED, c.cfg.Codes.PAMScore, "")},
			Text:   fhir.NewString("Patient Activation Measure score"),
		}
		obs.ValueQuantity = &fhir.Quantity{Value: fhir.NewDecimal(score.Value), Unit: fhir.NewString("score"), System: fhir.NewUri(SystemUCUM), Code: fhir.NewCode(UnitScore)}
		return obs
	}
	obs.Code = &fhir.CodeableConcept{
		Coding: []*fhir.Coding{coding(SystemPAM, CodePAMLevel, "Patient Activation Measure level"), coding(SystemSNOMED, c.cfg.Codes.PAMLevel, "Patient Activation Measure level")},
		Text:   fhir.NewString("Patient Activation Measure level"),
	}
	obs.ValueInteger = fhir.NewInteger(int64(score.Level))
	return obs
}

// performerTypes are the types an Observation's performer may reference.
var performerTypes = []string{"Practitioner", "PractitionerRole", "Organization", "CareTeam", "Patient", "RelatedPerson"}

// mayPerform reports whether the author or source r of a response can be
// the performer of its Observations: not one of the response's contained
// resources, which the Observations do not contain, nor of a type a
// performer cannot be, such as the Device a response may be authored by.
func mayPerform(r *fhir.Reference) bool {
	if r == nil || strings.HasPrefix(r.Reference.Get(), "#") {
		return false
	}
	typ := profiles.ReferenceType(r.Reference.Get())
	if typ == "" {
		typ = r.Type.Get()
	}
	return typ == "" || slices.Contains(performerTypes, typ)
}

// retractPAM marks the PAM Observations derived from a response
// entered-in-error.
func (c *Care) retractPAM(ctx context.Context, s operation.Store, ref string) error {
	score, level, err := pamObservations(ctx, s, ref)
	if err != nil {
		return err
	}
	for _, obs := range []*fhir.Observation{score, level} {
		if obs == nil || obs.Status.Get() == "entered-in-error" {
			continue
		}
		obs.Status = fhir.NewCode("entered-in-error")
		if _, err := s.Update(ctx, obs, 0); err != nil {
			return err
		}
	}
	return nil
}

// pamScore answers QuestionnaireResponse/{id}/$pam-score: it scores the
// response again, brings its Observations in step, and answers the score,
// level, statements answered and where the score came from.
func (c *Care) pamScore(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	if err := inv.Only(); err != nil {
		return nil, err
	}
	var score *Score
	err := inv.Store.Transact(ctx, func(s operation.Store) error {
		v, err := operation.ReadInstance(ctx, s, "QuestionnaireResponse", inv.ID)
		if err != nil {
			return err
		}
		qr, err := decode[*fhir.QuestionnaireResponse](v.JSON)
		if err != nil {
			return err
		}
		if !isPAM(qr) {
			return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "QuestionnaireResponse.questionnaire", "QuestionnaireResponse/%s does not answer the PAM Questionnaire %s", inv.ID, PAMQuestionnaireURL)
		}
		if !scored(qr) {
			return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "QuestionnaireResponse.status", "QuestionnaireResponse/%s is %s: only completed responses are scored", inv.ID, qr.Status.Get())
		}
		if err := checkAuthored(qr); err != nil {
			return err
		}
		patient, err := c.pamPatient(ctx, s, nil, qr)
		if err != nil {
			return err
		}
		score, err = c.cfg.PAM.ScorePAM(qr)
		var unscorable *Unscorable
		if errors.As(err, &unscorable) {
			return operation.Errorf(http.StatusUnprocessableEntity, "incomplete", unscorable.Expression, "%s", unscorable.Reason)
		}
		if err != nil {
			return err
		}
		return c.writePAM(ctx, s, inv.ID, qr, patient, score, false)
	})
	if err != nil {
		return nil, err
	}
	out := &fhir.Parameters{Parameter: []*fhir.ParametersParameter{
		{Name: fhir.NewString("score"), ValueDecimal: fhir.NewDecimal(score.Value)},
		{Name: fhir.NewString("level"), ValueInteger: fhir.NewInteger(int64(score.Level))},
		{Name: fhir.NewString("answered"), ValueInteger: fhir.NewInteger(int64(score.Answered))},
		{Name: fhir.NewString("source"), ValueCode: fhir.NewCode(score.Source)},
	}}
	return &operation.Result{Resource: out}, nil
}

func quantityValue(q *fhir.Quantity) string {
	if q == nil {
		return ""
	}
	return q.Value.Get()
}
