package care

import (
	"os"
	"strings"
	"testing"

	"carefhir/fhir"
)

// response returns a completed PAM response with the given answer codes
// for pam-1, pam-2…; "" leaves a statement unanswered; score, when not "",
// is the licensed tool's score.
func response(score string, answers ...string) *fhir.QuestionnaireResponse {
	qr := &fhir.QuestionnaireResponse{Questionnaire: fhir.NewCanonical(PAMQuestionnaireURL), Status: fhir.NewCode("completed")}
	for i, a := range answers {
		item := &fhir.QuestionnaireResponseItem{LinkId: fhir.NewString(pamLinkID(i + 1))}
		if a != "" {
			item.Answer = []*fhir.QuestionnaireResponseItemAnswer{{ValueCoding: coding(SystemPAMAnswer, a, "")}}
		}
		qr.Item = append(qr.Item, item)
	}
	if score != "" {
		qr.Item = append(qr.Item, &fhir.QuestionnaireResponseItem{LinkId: fhir.NewString(pamScoreLinkID),
			Answer: []*fhir.QuestionnaireResponseItemAnswer{{ValueDecimal: fhir.NewDecimal(score)}}})
	}
	return qr
}

func repeat(code string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = code
	}
	return out
}

func calibration(t *testing.T) *Calibration {
	t.Helper()
	f, err := os.Open("testdata/calibration-synthetic.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ReadCalibration(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLevelCutoffs(t *testing.T) {
	// Every published cut-off with its neighbours at one decimal place.
	for _, tc := range []struct {
		score string
		level int
	}{
		{"0", 1}, {"46.9", 1}, {"47.0", 1}, {"47.1", 2}, {"55.0", 2}, {"55.1", 2}, {"55.2", 3},
		{"66.9", 3}, {"67.0", 3}, {"67.1", 4}, {"67.2", 4}, {"100", 4},
	} {
		s, err := PAMConfig{}.ScorePAM(response(tc.score, repeat("3", 13)...))
		if err != nil {
			t.Fatalf("score %s: %v", tc.score, err)
		}
		if s.Level != tc.level || s.Value != tc.score || s.Source != "licensed" {
			t.Errorf("score %s: got level %d value %s source %s, want level %d, licensed", tc.score, s.Level, s.Value, s.Source, tc.level)
		}
	}
	// Configured cut-offs replace the published ones.
	s, err := PAMConfig{Cutoffs: Cutoffs{40, 50, 60}}.ScorePAM(response("45", repeat("3", 13)...))
	if err != nil || s.Level != 2 {
		t.Errorf("configured cut-offs: level %v (%v), want 2", s, err)
	}
}

func TestScorePAM(t *testing.T) {
	cal := calibration(t)
	answers10 := append(repeat("4", 10), "NA", "NA", "NA")
	for _, tc := range []struct {
		name    string
		cfg     PAMConfig
		qr      *fhir.QuestionnaireResponse
		score   string
		level   int
		answer  int
		source  string
		refusal string // part of the reason it cannot be scored
	}{
		{name: "licensed score wins over the calibration", cfg: PAMConfig{Calibration: cal}, qr: response("58.3", repeat("1", 13)...), score: "58.3", level: 3, answer: 13, source: "licensed"},
		{name: "calibrated, every statement answered", cfg: PAMConfig{Calibration: cal}, qr: response("", repeat("3", 13)...), score: "66.7", level: 3, answer: 13, source: "calibration"},
		{name: "N/A not counted", cfg: PAMConfig{Calibration: cal}, qr: response("", answers10...), score: "100.0", level: 4, answer: 10, source: "calibration"},
		{name: "unanswered not counted", cfg: PAMConfig{Calibration: cal}, qr: response("", append(repeat("2", 11), "", "")...), score: "33.3", level: 1, answer: 11, source: "calibration"},
		{name: "too few answered", cfg: PAMConfig{Calibration: cal}, qr: response("", append(repeat("4", 9), "NA", "NA", "NA", "NA")...), refusal: "9 statements answered"},
		{name: "configured minimum", cfg: PAMConfig{Calibration: cal, MinAnswered: 12}, qr: response("", append(repeat("4", 11), "NA", "NA")...), refusal: "at least 12"},
		{name: "no calibration configured", cfg: PAMConfig{}, qr: response("", repeat("3", 13)...), refusal: "no PAM calibration table"},
		{name: "licensed score out of range", cfg: PAMConfig{}, qr: response("101", repeat("3", 13)...), refusal: "not between 0 and 100"},
		{name: "answer off the scale", cfg: PAMConfig{Calibration: cal}, qr: response("", append(repeat("3", 12), "7")...), refusal: "not on the PAM scale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.cfg.ScorePAM(tc.qr)
			if tc.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("got %+v, %v; want a refusal saying %q", s, err, tc.refusal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Value != tc.score || s.Level != tc.level || s.Answered != tc.answer || s.Source != tc.source {
				t.Errorf("got %+v, want score %s level %d answered %d source %s", s, tc.score, tc.level, tc.answer, tc.source)
			}
		})
	}
}

// TestReadCalibrationSavedOnWindows: a table saved by a spreadsheet, with
// a byte order mark and CRLF, reads as the same table without them.
func TestReadCalibrationSavedOnWindows(t *testing.T) {
	c, err := ReadCalibration(strings.NewReader("\ufeffanswered,raw,score\r\n13,26,48.2\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.scores[[2]int{13, 26}]; got != "48.2" {
		t.Errorf("score of 13 answered, raw 26: %q, want 48.2", got)
	}
}

func TestReadCalibrationRefuses(t *testing.T) {
	for _, bad := range []string{
		"",
		"raw,answered,score\n1,1,0\n",
		"answered,raw,score\n14,20,50\n",
		"answered,raw,score\n10,45,50\n",
		"answered,raw,score\n10,30,120\n",
		"answered,raw,score\n10,thirty,50\n",
		"answered,raw,score\n10,30,NaN\n",
		"answered,raw,score\n10,30,+50\n",
		"answered,raw,score\n10,30,050.5\n",
		"answered,raw,score\n10,30,0x32\n",
		"answered,raw,score\n10,30,50.1\n10,30,52.4\n",
	} {
		if _, err := ReadCalibration(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadCalibration(%q) accepted it", bad)
		}
	}
}

func TestPAMWording(t *testing.T) {
	var lines []string
	for i := range 13 {
		lines = append(lines, "Licensed statement "+string(rune('A'+i)))
	}
	w, err := ReadPAMWording(strings.NewReader("# licensee file\n" + strings.Join(lines, "\n\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	q := PAMQuestionnaire(w)
	if got := q.Item[12].Text.Get(); got != "Licensed statement M" {
		t.Errorf("pam-13 text = %q", got)
	}
	// As Windows editors save it: a byte order mark first, CRLF.
	w, err = ReadPAMWording(strings.NewReader("\ufeff" + strings.Join(lines, "\r\n") + "\r\n"))
	if err != nil {
		t.Fatalf("wording with a byte order mark: %v", err)
	}
	if got := PAMQuestionnaire(w).Item[0].Text.Get(); got != "Licensed statement A" {
		t.Errorf("pam-1 text of a file with a byte order mark = %q", got)
	}
	if _, err := ReadPAMWording(strings.NewReader(strings.Join(lines[:12], "\n"))); err == nil {
		t.Error("12 statements accepted")
	}
	// Without a wording file: placeholders, never the licensed text.
	q = PAMQuestionnaire(nil)
	if len(q.Item) != 14 || q.Item[0].LinkId.Get() != "pam-1" || q.Item[13].LinkId.Get() != "pam-score" || q.Item[13].Type.Get() != "decimal" {
		t.Fatalf("items: %d, first %s", len(q.Item), q.Item[0].LinkId.Get())
	}
	if !strings.Contains(q.Item[0].Text.Get(), "issued under licence") || len(q.Item[0].AnswerOption) != 5 {
		t.Errorf("pam-1: %q with %d options", q.Item[0].Text.Get(), len(q.Item[0].AnswerOption))
	}
}
