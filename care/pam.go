package care

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
)

// The Patient Activation Measure (PAM-13, Insignia Health, licensed by
// Phreesia) asks how far a person agrees with 13 statements about managing
// their own health, on a four-point scale or not applicable. Its 0–100
// activation score comes from a proprietary calibration, and its wording is
// issued only under licence: carefhir ships neither. The Questionnaire holds
// neutral placeholders unless a licensee supplies the wording (PAMWording),
// and the score is the one the licensed tool returns (item pam-score) or,
// with a licensee's calibration table (Calibration), computed from it.

// pamItems is the number of PAM statements.
const pamItems = 13

// pamLinkID returns the linkId of statement n (1 to 13).
func pamLinkID(n int) string { return "pam-" + strconv.Itoa(n) }

// pamScoreLinkID is the item holding the score the licensed tool returned.
const pamScoreLinkID = "pam-score"

// pamAnswers are the answer options, in SystemPAMAnswer.
var pamAnswers = []struct{ code, display string }{
	{"1", "Disagree strongly"},
	{"2", "Disagree"},
	{"3", "Agree"},
	{"4", "Agree strongly"},
	{"NA", "Not applicable"},
}

// ReadPAMWording reads the licensed wording of the 13 statements: one
// statement per line, in order; blank lines and lines starting with # are
// skipped.
func ReadPAMWording(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(withoutBOM(r))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read PAM wording: %w", err)
	}
	if len(out) != pamItems {
		return nil, fmt.Errorf("read PAM wording: %d statements, want %d (one a line)", len(out), pamItems)
	}
	return out, nil
}

// withoutBOM returns r without the UTF-8 byte order mark it may begin
// with, as Windows editors and spreadsheets save text: left in, it would
// be part of the first statement's wording, or make the calibration's
// header another.
func withoutBOM(r io.Reader) io.Reader {
	br, _ := lexical.SkipBOM(r)
	return br
}

// PAMQuestionnaire returns the PAM Questionnaire: items pam-1 to pam-13,
// choices on the agreement scale or not applicable, and the optional
// decimal item pam-score. wording, when not nil, holds the 13 licensed
// statements; neutral placeholders stand in for them otherwise.
func PAMQuestionnaire(wording []string) *fhir.Questionnaire {
	q := &fhir.Questionnaire{
		Id:          fhir.NewId("pam-13"),
		Url:         fhir.NewUri(PAMQuestionnaireURL),
		Version:     fhir.NewString(PAMQuestionnaireVersion),
		Name:        fhir.NewString("PAM13"),
		Title:       fhir.NewString("Patient Activation Measure (PAM-13)"),
		Status:      fhir.NewCode("active"),
		SubjectType: []*fhir.Code{fhir.NewCode("Patient")},
		Publisher:   fhir.NewString("carefhir"),
		Date:        fhir.NewDateTime(definitionsDate),
		Description: fhir.NewMarkdown("The 13 statements of the Patient Activation Measure, each answered on a " +
			"four-point agreement scale or not applicable, and the activation score the licensed tool returns. " +
			"PAM is licensed (Insignia Health, Phreesia): the statements are placeholders unless the licensee's " +
			"wording is configured."),
		Copyright: fhir.NewMarkdown("PAM® is a registered trademark of Insignia Health. Its wording and scoring are " +
			"issued under licence and are not part of carefhir."),
	}
	for n := 1; n <= pamItems; n++ {
		text := fmt.Sprintf("PAM statement %d (wording issued under licence)", n)
		if wording != nil {
			text = wording[n-1]
		}
		item := &fhir.QuestionnaireItem{
			LinkId: fhir.NewString(pamLinkID(n)),
			Prefix: fhir.NewString(strconv.Itoa(n) + "."),
			Text:   fhir.NewString(text),
			Type:   fhir.NewCode("choice"),
		}
		for _, a := range pamAnswers {
			item.AnswerOption = append(item.AnswerOption, &fhir.QuestionnaireItemAnswerOption{ValueCoding: coding(SystemPAMAnswer, a.code, a.display)})
		}
		q.Item = append(q.Item, item)
	}
	q.Item = append(q.Item, &fhir.QuestionnaireItem{
		LinkId: fhir.NewString(pamScoreLinkID),
		Text:   fhir.NewString("Activation score returned by the licensed PAM tool (0 to 100)"),
		Type:   fhir.NewCode("decimal"),
	})
	return q
}

// Cutoffs are the highest scores of activation levels 1 to 3; a higher
// score is level 4. The defaults are the published ones: level 1 ≤ 47.0,
// level 2 47.1–55.1, level 3 55.2–67.0, level 4 ≥ 67.1 (Hibbard et al.,
// Health Serv Res 2004, as tabulated in PMC2955177 and PMC5665291).
type Cutoffs [3]float64

// DefaultCutoffs are the published cut-offs.
var DefaultCutoffs = Cutoffs{47.0, 55.1, 67.0}

// Level returns the activation level of score.
func (c Cutoffs) Level(score float64) int {
	for i, max := range c {
		if score <= max {
			return i + 1
		}
	}
	return 4
}

// Calibration is a licensee's table from the raw score (the sum of the
// agreement answers, 1 to 4 each) and the number of statements answered
// (not applicable not counted) to the activation score.
type Calibration struct {
	scores map[[2]int]string // by (answered, raw): the score as written
}

// ReadCalibration reads a calibration table as CSV with the header
// "answered,raw,score": one row per number answered and raw score.
func ReadCalibration(r io.Reader) (*Calibration, error) {
	rows, err := csv.NewReader(withoutBOM(r)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read PAM calibration: %w", err)
	}
	if len(rows) < 2 || strings.Join(rows[0], ",") != "answered,raw,score" {
		return nil, errors.New(`read PAM calibration: want the header "answered,raw,score" and at least one row`)
	}
	c := &Calibration{scores: map[[2]int]string{}}
	for i, row := range rows[1:] {
		answered, err1 := strconv.Atoi(row[0])
		raw, err2 := strconv.Atoi(row[1])
		score, err3 := strconv.ParseFloat(row[2], 64)
		// The score is written as it is into the Observations: it must be
		// a FHIR decimal (ParseFloat alone takes NaN, +50, 0x32), which
		// NaN is not and no comparison with 0 or 100 refuses.
		if err := errors.Join(err1, err2, err3); err != nil || !lexical.ValidDecimal(row[2]) || answered < 1 || answered > pamItems || raw < answered || raw > 4*answered || score < 0 || score > 100 {
			return nil, fmt.Errorf("read PAM calibration: row %d (%s) is not answered 1–13, raw answered–4×answered, score a decimal 0–100", i+2, strings.Join(row, ","))
		}
		key := [2]int{answered, raw}
		if _, ok := c.scores[key]; ok {
			return nil, fmt.Errorf("read PAM calibration: row %d gives a second score for %d answered with raw score %d", i+2, answered, raw)
		}
		c.scores[key] = row[2]
	}
	return c, nil
}

// PAMConfig is how PAM responses are scored.
type PAMConfig struct {
	// Wording is the licensed wording of the 13 statements; nil: placeholders.
	Wording []string
	// Calibration, when set, computes scores the licensed tool did not
	// supply.
	Calibration *Calibration
	// MinAnswered is the fewest statements answered (not applicable not
	// counted) a computed score needs; 0 means DefaultMinAnswered.
	MinAnswered int
	// Cutoffs place a score in a level; zero means DefaultCutoffs.
	Cutoffs Cutoffs
}

// minAnswered is the fewest statements answered a score needs.
func (c PAMConfig) minAnswered() int {
	if c.MinAnswered == 0 {
		return DefaultMinAnswered
	}
	return c.MinAnswered
}

// cutoffs are the cut-offs that place a score in a level.
func (c PAMConfig) cutoffs() Cutoffs {
	if c.Cutoffs == (Cutoffs{}) {
		return DefaultCutoffs
	}
	return c.Cutoffs
}

// DefaultMinAnswered is the fewest statements answered a computed score
// needs by default: ten of thirteen. Licensees set what their licence
// guidance requires (--pam-min-answered).
const DefaultMinAnswered = 10

// Score is the activation a PAM response measures.
type Score struct {
	Value    string // 0–100, as written (one decimal place as the tool gives it)
	Level    int    // 1–4
	Answered int    // statements answered, not applicable not counted
	Source   string // "licensed" (item pam-score) or "calibration"
}

// Unscorable explains why a response has no score.
type Unscorable struct {
	Reason     string
	Expression string
}

func (u *Unscorable) Error() string { return u.Reason }

// ScorePAM scores a PAM response: the score the licensed tool supplied in
// pam-score, else one computed with the calibration table.
func (c PAMConfig) ScorePAM(qr *fhir.QuestionnaireResponse) (*Score, error) {
	answered, raw, given := 0, 0, ""
	for i, item := range qr.Item {
		link := item.LinkId.Get()
		if link == pamScoreLinkID {
			if len(item.Answer) > 0 {
				given = item.Answer[0].ValueDecimal.Get()
			}
			continue
		}
		if len(item.Answer) == 0 || item.Answer[0].ValueCoding == nil {
			continue
		}
		code := item.Answer[0].ValueCoding.Code.Get()
		if v, err := strconv.Atoi(code); err == nil && v >= 1 && v <= 4 {
			answered++
			raw += v
		} else if code != "NA" {
			return nil, &Unscorable{Reason: fmt.Sprintf("answer %q of %s is not on the PAM scale", code, link), Expression: fmt.Sprintf("QuestionnaireResponse.item[%d].answer[0]", i)}
		}
	}
	cut := c.cutoffs()
	if given != "" {
		v, err := strconv.ParseFloat(given, 64)
		if err != nil || v < 0 || v > 100 {
			return nil, &Unscorable{Reason: "the pam-score " + given + " is not between 0 and 100", Expression: "QuestionnaireResponse.item.where(linkId='pam-score')"}
		}
		return &Score{Value: given, Level: cut.Level(v), Answered: answered, Source: "licensed"}, nil
	}
	if c.Calibration == nil {
		return nil, &Unscorable{Reason: "the response has no pam-score from the licensed tool and no PAM calibration table is configured", Expression: "QuestionnaireResponse.item"}
	}
	if least := c.minAnswered(); answered < least {
		return nil, &Unscorable{Reason: fmt.Sprintf("%d statements answered (not applicable not counted): a score needs at least %d", answered, least), Expression: "QuestionnaireResponse.item"}
	}
	text, ok := c.Calibration.scores[[2]int{answered, raw}]
	if !ok {
		return nil, &Unscorable{Reason: fmt.Sprintf("the calibration table has no score for %d statements answered with raw score %d", answered, raw), Expression: "QuestionnaireResponse.item"}
	}
	v, _ := strconv.ParseFloat(text, 64)
	return &Score{Value: text, Level: cut.Level(v), Answered: answered, Source: "calibration"}, nil
}

// isPAM reports whether a response answers the PAM Questionnaire.
func isPAM(qr *fhir.QuestionnaireResponse) bool {
	url, _, _ := strings.Cut(qr.Questionnaire.Get(), "|")
	return url == PAMQuestionnaireURL
}
