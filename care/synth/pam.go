package synth

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"carefhir/care"
	"carefhir/fhir"
)

// The Patient Activation Measure (PAM 13) asks how far a person agrees with
// thirteen statements about managing their own health, on a four-point
// scale with "not applicable", and places them on a 0–100 activation score
// and one of four levels.
const (
	// PAMQuestionnaireURL is the canonical URL of the PAM Questionnaire
	// the server installs (package care).
	PAMQuestionnaireURL = care.PAMQuestionnaireURL
	// SystemPAMAnswer codes the answers: "1" disagree strongly to "4" agree
	// strongly, and "NA" not applicable.
	SystemPAMAnswer = care.SystemPAMAnswer
)

var pamAnswers = []*fhir.Coding{
	coding(SystemPAMAnswer, "1", "Disagree strongly"),
	coding(SystemPAMAnswer, "2", "Disagree"),
	coding(SystemPAMAnswer, "3", "Agree"),
	coding(SystemPAMAnswer, "4", "Agree strongly"),
	coding(SystemPAMAnswer, "NA", "Not applicable"),
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

// pam returns the k-th PAM QuestionnaireResponse of the patient, answered
// on day d with activation a before the clinician by, with the score a
// licensed tool would return in pam-score (here the mean agreement
// rescaled, not the licensed calibration). The server derives the score
// and level Observations from it when it is stored.
func (rec *record) pam(k int, d time.Time, a float64, by clinician) *fhir.QuestionnaireResponse {
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
	for i := range answers {
		qr.Item = append(qr.Item, &fhir.QuestionnaireResponseItem{
			LinkId: fhir.NewString(fmt.Sprintf("pam-%d", i+1)),
			Answer: []*fhir.QuestionnaireResponseItemAnswer{{ValueCoding: pamAnswers[answers[i]]}},
		})
	}
	qr.Item = append(qr.Item, &fhir.QuestionnaireResponseItem{
		LinkId: fhir.NewString("pam-score"),
		Answer: []*fhir.QuestionnaireResponseItemAnswer{{ValueDecimal: fhir.NewDecimal(strconv.FormatFloat(pamScore(answers), 'f', 1, 64))}},
	})
	return qr
}
