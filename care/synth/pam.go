package synth

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"carefhir/fhir"
)

// The Patient Activation Measure (PAM 13) asks how far a person agrees with
// thirteen statements about managing their own health, on a four-point
// scale with "not applicable", and places them on a 0–100 activation score
// and one of four levels.
const (
	// PAMQuestionnaireURL is the canonical URL of the PAM Questionnaire.
	PAMQuestionnaireURL = Base + "/Questionnaire/pam-13"
	// SystemPAMAnswer codes the answers: "1" disagree strongly to "4" agree
	// strongly, and "NA" not applicable.
	SystemPAMAnswer = Base + "/CodeSystem/pam-answer"
	// SystemPAM codes the PAM Observation ("pam-score", valued as a
	// quantity) and its level component ("pam-level", an integer 1 to 4).
	SystemPAM = Base + "/CodeSystem/pam"
)

// pamItems summarise what each statement is about. The licensed PAM wording
// and its calibrated scoring tables are not reproduced: generated scores are
// the mean agreement rescaled to 0–100.
var pamItems = [13]string{
	"Taking an active role in my own health",
	"Confidence to help prevent or reduce problems with my health",
	"Knowing what each of my prescribed medicines does",
	"Confidence to tell whether I need medical care or can manage myself",
	"Confidence to tell a health professional my concerns",
	"Confidence to follow through on treatment I need to do at home",
	"Understanding what causes my health conditions",
	"Knowing the treatments available for my health conditions",
	"Having made changes to my lifestyle, such as diet and exercise",
	"Knowing how to prevent further problems with my health",
	"Confidence to work out solutions when my health changes",
	"Keeping up changes to my lifestyle",
	"Keeping up healthy habits in times of stress",
}

var pamAnswers = []*fhir.Coding{
	coding(SystemPAMAnswer, "1", "Disagree strongly"),
	coding(SystemPAMAnswer, "2", "Disagree"),
	coding(SystemPAMAnswer, "3", "Agree"),
	coding(SystemPAMAnswer, "4", "Agree strongly"),
	coding(SystemPAMAnswer, "NA", "Not applicable"),
}

// pamQuestionnaire returns the PAM Questionnaire, dated a year before today.
func pamQuestionnaire(today time.Time) *fhir.Questionnaire {
	q := &fhir.Questionnaire{
		Id:          fhir.NewId("pam-13"),
		Url:         fhir.NewUri(PAMQuestionnaireURL),
		Version:     fhir.NewString("1"),
		Name:        fhir.NewString("PAM13"),
		Title:       fhir.NewString("Patient Activation Measure (PAM 13)"),
		Status:      fhir.NewCode("active"),
		SubjectType: []*fhir.Code{fhir.NewCode("Patient")},
		Date:        day(today.AddDate(-1, 0, 0)),
		Publisher:   fhir.NewString("carefhir"),
		Description: fhir.NewMarkdown("How far a person agrees with thirteen statements about managing their own health. " +
			"Item texts summarise each statement; the licensed PAM wording is not reproduced."),
	}
	for i, text := range pamItems {
		item := &fhir.QuestionnaireItem{
			LinkId:   fhir.NewString(strconv.Itoa(i + 1)),
			Text:     fhir.NewString(text),
			Type:     fhir.NewCode("choice"),
			Required: fhir.NewBoolean(true),
		}
		for _, a := range pamAnswers {
			item.AnswerOption = append(item.AnswerOption, &fhir.QuestionnaireItemAnswerOption{ValueCoding: a})
		}
		q.Item = append(q.Item, item)
	}
	return q
}

// pamLevel returns the activation level of a score, on the published
// thresholds: 1 up to 47.0, 2 up to 55.1, 3 up to 67.0, 4 above.
func pamLevel(score float64) int {
	switch {
	case score <= 47.0:
		return 1
	case score <= 55.1:
		return 2
	case score <= 67.0:
		return 3
	}
	return 4
}

// pamAnswersFor draws thirteen answers (indexes into pamAnswers) of a person
// whose activation is a, from 0 to 1; at most three are not applicable.
func pamAnswersFor(r *rand.Rand, a float64) [13]int {
	var answers [13]int
	na := 0
	for i := range answers {
		if na < 3 && chance(r, 3) {
			answers[i] = 4
			na++
			continue
		}
		v := int(1.5 + 3*a + (r.Float64()-0.5)*1.6) // 1 to 4, rounded
		answers[i] = min(max(v, 1), 4) - 1
	}
	return answers
}

// pamScore rescales the mean agreement of the answered items to 0–100, to
// one decimal place.
func pamScore(answers [13]int) float64 {
	sum, n := 0, 0
	for _, a := range answers {
		if a < 4 {
			sum += a
			n++
		}
	}
	score := float64(sum) / float64(n) / 3 * 100
	v, _ := strconv.ParseFloat(strconv.FormatFloat(score, 'f', 1, 64), 64)
	return v
}

// pam returns the k-th PAM QuestionnaireResponse of the patient, answered on
// day d with activation a before the clinician by, and the Observation of
// its score.
func (rec *record) pam(k int, d time.Time, a float64, by clinician) (*fhir.QuestionnaireResponse, *fhir.Observation) {
	answers := pamAnswersFor(rec.r, a)
	when := clinicTime(rec.r, d)
	qr := &fhir.QuestionnaireResponse{
		Id:            fhir.NewId(fmt.Sprintf("qr-%s-%d", rec.num, k)),
		Questionnaire: fhir.NewCanonical(PAMQuestionnaireURL),
		Status:        fhir.NewCode("completed"),
		Subject:       rec.patientRef(),
		Authored:      dateTime(when),
		Author:        by.ref(),
		Source:        rec.patientRef(),
	}
	for i, text := range pamItems {
		qr.Item = append(qr.Item, &fhir.QuestionnaireResponseItem{
			LinkId: fhir.NewString(strconv.Itoa(i + 1)),
			Text:   fhir.NewString(text),
			Answer: []*fhir.QuestionnaireResponseItemAnswer{{ValueCoding: pamAnswers[answers[i]]}},
		})
	}
	score := pamScore(answers)
	rec.nextOb++
	obs := &fhir.Observation{
		Id:                fhir.NewId(fmt.Sprintf("obs-%s-%d", rec.num, rec.nextOb)),
		Status:            fhir.NewCode("final"),
		Category:          []*fhir.CodeableConcept{concept(terminology+"observation-category", "survey", "Survey")},
		Code:              concept(SystemPAM, "pam-score", "Patient Activation Measure score"),
		Subject:           rec.patientRef(),
		EffectiveDateTime: dateTime(when),
		Performer:         []*fhir.Reference{by.ref()},
		ValueQuantity:     quantity(strconv.FormatFloat(score, 'f', 1, 64), "score", "{score}"),
		DerivedFrom:       []*fhir.Reference{ref("QuestionnaireResponse", qr.GetID(), "")},
		Component: []*fhir.ObservationComponent{{
			Code:         concept(SystemPAM, "pam-level", "Patient Activation Measure level"),
			ValueInteger: fhir.NewInteger(int64(pamLevel(score))),
		}},
	}
	obs.Code.Text = obs.Code.Coding[0].Display
	return qr, obs
}
