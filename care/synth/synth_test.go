package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"carefhir/care"
	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/profiles"
)

// digest returns a hash of everything a set emits, in order.
func digest(t *testing.T, opts Options) [32]byte {
	t.Helper()
	h := sha256.New()
	err := Generate(opts, func(typ, id string, b []byte) error {
		h.Write([]byte(typ + "/" + id + "\n"))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func TestGenerateIsDeterministic(t *testing.T) {
	base := Options{Patients: 120, Seed: 42, PracticeSize: 50}
	if digest(t, base) != digest(t, base) {
		t.Error("the same options gave different output")
	}
	other := base
	other.Seed = 43
	if digest(t, base) == digest(t, other) {
		t.Error("seeds 42 and 43 gave the same output")
	}
	later := base
	later.Today = DefaultToday.AddDate(0, 0, 7)
	if digest(t, base) == digest(t, later) {
		t.Error("a different reference date gave the same output")
	}
}

// A patient's record does not depend on how many patients follow, so a
// small set is a prefix of a larger one with the same seed.
func TestGenerateSmallSetIsPrefix(t *testing.T) {
	small, err := All(Options{Patients: 10, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	large, err := All(Options{Patients: 40, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(large) <= len(small) {
		t.Fatalf("40 patients gave %d resources, 10 gave %d", len(large), len(small))
	}
	for i, e := range small {
		if l := large[i]; l.Type != e.Type || l.ID != e.ID || !bytes.Equal(l.JSON, e.JSON) {
			t.Fatalf("resource %d: %s/%s in the small set, %s/%s in the large", i, e.Type, e.ID, l.Type, l.ID)
		}
	}
}

// ukPostcode is the format of a UK postcode: outward code (area and
// district), a space, inward code (sector and unit).
var ukPostcode = regexp.MustCompile(`^[A-PR-UWYZ]([0-9]{1,2}|[A-HK-Y][0-9]{1,2}|[0-9][A-HJKPSTUW]|[A-HK-Y][0-9][ABEHMNPRVWXY]) [0-9][ABD-HJLNP-UW-Z]{2}$`)

// generated is a decoded set.
type generated struct {
	entries []Entry
	docs    map[string]map[string]any // by Type/id
	count   map[string]int
}

func generate(t *testing.T, opts Options) *generated {
	t.Helper()
	entries, err := All(opts)
	if err != nil {
		t.Fatal(err)
	}
	g := &generated{entries: entries, docs: map[string]map[string]any{}, count: map[string]int{}}
	for _, e := range entries {
		key := e.Type + "/" + e.ID
		if _, dup := g.docs[key]; dup {
			t.Errorf("%s emitted twice", key)
		}
		var doc map[string]any
		if err := json.Unmarshal(e.JSON, &doc); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		g.docs[key] = doc
		g.count[e.Type]++
	}
	return g
}

func TestGenerateDecodes(t *testing.T) {
	g := generate(t, Options{Patients: 300, Seed: 1, PracticeSize: 120})
	for _, e := range g.entries {
		res, err := fhirjson.UnmarshalAs(e.JSON, e.Type)
		if err != nil {
			t.Errorf("%s/%s does not decode: %v\n%s", e.Type, e.ID, err, e.JSON)
			continue
		}
		if res.GetID() != e.ID {
			t.Errorf("%s/%s has id %q", e.Type, e.ID, res.GetID())
		}
		again, err := fhirjson.Marshal(res)
		if err != nil || !bytes.Equal(again, e.JSON) {
			t.Errorf("%s/%s does not encode back to the same bytes (%v)", e.Type, e.ID, err)
		}
	}
}

func TestGenerateCounts(t *testing.T) {
	const patients = 300
	g := generate(t, Options{Patients: patients, Seed: 1, PracticeSize: 120})
	// The PAM Questionnaire is the server's (installed at start-up), not
	// the set's.
	exact := map[string]int{"Patient": patients, "Organization": 3, "Questionnaire": 0}
	for typ, want := range exact {
		if g.count[typ] != want {
			t.Errorf("%d %s, want %d", g.count[typ], typ, want)
		}
	}
	if g.count["Practitioner"] < 3*8 || g.count["Practitioner"] != g.count["PractitionerRole"] {
		t.Errorf("%d Practitioners and %d PractitionerRoles, want the same number, at least 8 a practice",
			g.count["Practitioner"], g.count["PractitionerRole"])
	}
	if g.count["CarePlan"] == 0 || g.count["CarePlan"] != g.count["CareTeam"] {
		t.Errorf("%d CarePlans and %d CareTeams, want one team for each plan", g.count["CarePlan"], g.count["CareTeam"])
	}
	if g.count["QuestionnaireResponse"] < g.count["CarePlan"] || g.count["Goal"] < g.count["CarePlan"] {
		t.Errorf("%d CarePlans, %d QuestionnaireResponses, %d Goals: want a PAM and a goal for every plan",
			g.count["CarePlan"], g.count["QuestionnaireResponse"], g.count["Goal"])
	}
	// About ten resources a patient, so that 100,000 patients make about a
	// million resources.
	if per := float64(len(g.entries)) / patients; per < 8 || per > 12 {
		t.Errorf("%.1f resources a patient, want 8 to 12", per)
	}
	for _, typ := range []string{"Condition", "Observation", "Appointment"} {
		if g.count[typ] < patients/2 {
			t.Errorf("%d %s for %d patients", g.count[typ], typ, patients)
		}
	}
}

// references calls fn with every "reference" in a decoded resource.
func references(v any, fn func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" {
				fn(s)
			}
			references(x, fn)
		}
	case []any:
		for _, x := range v {
			references(x, fn)
		}
	}
}

func TestGenerateReferencesResolve(t *testing.T) {
	g := generate(t, Options{Patients: 300, Seed: 3, PracticeSize: 120})
	seen := map[string]bool{}
	refs := 0
	for _, e := range g.entries {
		key := e.Type + "/" + e.ID
		references(g.docs[key], func(target string) {
			refs++
			if !seen[target] {
				if g.docs[target] == nil {
					t.Errorf("%s refers to %s, which is not in the set", key, target)
				} else {
					t.Errorf("%s refers to %s, which is emitted after it", key, target)
				}
			}
		})
		seen[key] = true
		if q, ok := g.docs[key]["questionnaire"]; ok && q != PAMQuestionnaireURL {
			t.Errorf("%s answers questionnaire %v", key, q)
		}
	}
	if refs < len(g.entries) {
		t.Errorf("only %d references in %d resources", refs, len(g.entries))
	}
}

func TestGeneratePatients(t *testing.T) {
	g := generate(t, Options{Patients: 400, Seed: 5})
	nhs := map[string]bool{}
	var apostrophe, accent, hyphen bool
	ages := map[int]bool{} // decades
	genders := map[string]bool{}
	for _, e := range g.entries {
		if e.Type != "Patient" {
			continue
		}
		res, err := fhirjson.UnmarshalAs(e.JSON, "Patient")
		if err != nil {
			t.Fatal(err)
		}
		p := res.(*fhir.Patient)
		if len(p.Identifier) != 1 || p.Identifier[0].System.Get() != SystemNHSNumber {
			t.Fatalf("%s: identifiers %s, want one NHS number", e.ID, e.JSON)
		}
		n := p.Identifier[0].Value.Get()
		if !profiles.ValidNHSNumber(n) || !strings.HasPrefix(n, "999") {
			t.Errorf("%s: NHS number %q is not a valid test number", e.ID, n)
		}
		if nhs[n] {
			t.Errorf("%s: NHS number %s given twice", e.ID, n)
		}
		nhs[n] = true
		for _, a := range p.Address {
			if pc := a.PostalCode.Get(); !ukPostcode.MatchString(pc) {
				t.Errorf("%s: postcode %q is not in UK format", e.ID, pc)
			}
		}
		if len(p.GeneralPractitioner) != 1 || !strings.HasPrefix(p.GeneralPractitioner[0].Reference.Get(), "Organization/") {
			t.Errorf("%s: generalPractitioner is not a practice", e.ID)
		}
		family := p.Name[0].Family.Get()
		apostrophe = apostrophe || strings.Contains(family, "'")
		hyphen = hyphen || strings.Contains(family, "-")
		for _, r := range family + p.Name[0].Given[0].Get() {
			accent = accent || r > unicode.MaxASCII
		}
		birth, err := time.Parse(time.DateOnly, p.BirthDate.Get())
		if err != nil {
			t.Fatalf("%s: birthDate %q", e.ID, p.BirthDate.Get())
		}
		ages[ageAt(birth, DefaultToday)/10] = true
		genders[p.Gender.Get()] = true
	}
	if !apostrophe || !accent || !hyphen {
		t.Errorf("names with apostrophes %v, accents %v, hyphens %v: want all", apostrophe, accent, hyphen)
	}
	if len(ages) < 9 {
		t.Errorf("ages span %d decades, want at least 9", len(ages))
	}
	if !genders["male"] || !genders["female"] {
		t.Errorf("genders %v", genders)
	}
}

func TestGeneratePractices(t *testing.T) {
	g := generate(t, Options{Patients: 60, Seed: 9, PracticeSize: 20})
	ods := regexp.MustCompile(`^[A-Z][0-9]{5}$`)
	roles := map[string]bool{}
	for _, e := range g.entries {
		switch res, _ := fhirjson.UnmarshalAs(e.JSON, e.Type); r := res.(type) {
		case *fhir.Organization:
			if len(r.Identifier) != 1 || r.Identifier[0].System.Get() != SystemODSCode || !ods.MatchString(r.Identifier[0].Value.Get()) {
				t.Errorf("%s: want one ODS code like A81001, got %s", e.ID, e.JSON)
			}
		case *fhir.Practitioner:
			systems := map[string]bool{}
			for _, id := range r.Identifier {
				systems[id.System.Get()] = true
			}
			if !systems[SystemSDSUserID] {
				t.Errorf("%s has no SDS user id", e.ID)
			}
		case *fhir.PractitionerRole:
			roles[r.Code[0].Coding[0].Code.Get()] = true
		}
	}
	for _, want := range []string{"62247001", "practice-nurse", "social-prescribing-link-worker", "health-and-wellbeing-coach", "care-coordinator"} {
		if !roles[want] {
			t.Errorf("no PractitionerRole %s", want)
		}
	}
	for _, want := range []string{"A81001", "B81001", "C81001"} {
		found := false
		for _, e := range g.entries {
			found = found || e.Type == "Organization" && bytes.Contains(e.JSON, []byte(`"`+want+`"`))
		}
		if !found {
			t.Errorf("no practice with ODS code %s", want)
		}
	}
}

func TestGenerateCareRecords(t *testing.T) {
	g := generate(t, Options{Patients: 300, Seed: 11})
	status := map[string]map[string]bool{"CarePlan": {}, "Appointment": {}}
	var past, future, weights, decimalWeights, overdue, frailty int
	for _, e := range g.entries {
		res, err := fhirjson.UnmarshalAs(e.JSON, e.Type)
		if err != nil {
			t.Fatal(err)
		}
		switch r := res.(type) {
		case *fhir.CarePlan:
			status["CarePlan"][r.Status.Get()] = true
			if c := r.Category[0].Coding[0]; c.System.Get() != care.SystemCarePlanCategory || c.Code.Get() != care.CodePCSP || r.Meta.Profile[0].Get() != care.PCSPProfileURL {
				t.Errorf("%s: not a PCSP: %s", e.ID, e.JSON)
			}
			review := ""
			for _, x := range r.Extension {
				if x.Url == care.ReviewDateURL {
					review = x.ValueDate.Get()
				}
			}
			switch {
			case r.Status.Get() == "active" && review == "":
				t.Errorf("%s: an active PCSP without a review date", e.ID)
			case review != "" && review < DefaultToday.Format(time.DateOnly):
				overdue++
			}
			for _, a := range r.Activity {
				if a.Detail == nil || a.Detail.Code == nil || a.Detail.Code.Coding[0].System.Get() != care.SystemPCSPActivity {
					t.Errorf("%s: activity not coded as PCSP support", e.ID)
				}
			}
			if r.Period == nil || r.Period.Start == nil || (r.Status.Get() == "completed") != (r.Period.End != nil) {
				t.Errorf("%s: period %s does not fit status %s", e.ID, e.JSON, r.Status.Get())
			}
		case *fhir.CareTeam:
			coordinated := false
			for _, p := range r.Participant {
				coordinated = coordinated || p.Role[0].Coding[0].Code.Get() == care.CodeCoordinator
			}
			if !coordinated {
				t.Errorf("%s: no care coordinator", e.ID)
			}
		case *fhir.Appointment:
			status["Appointment"][r.Status.Get()] = true
			start, err := time.Parse(time.RFC3339, r.Start.Get())
			if err != nil {
				t.Fatal(err)
			}
			if start.Before(DefaultToday) {
				past++
			} else {
				future++
			}
			if len(r.Participant) != 2 {
				t.Errorf("%s: %d participants", e.ID, len(r.Participant))
			}
		case *fhir.QuestionnaireResponse:
			checkPAM(t, e.ID, r)
		case *fhir.Observation:
			switch r.Code.Coding[0].Code.Get() {
			case "27113001":
				weights++
				if !strings.Contains(r.ValueQuantity.Value.Get(), ".") || r.ValueQuantity.Code.Get() != "kg" {
					t.Errorf("%s: weight %s", e.ID, e.JSON)
				}
				if !strings.HasSuffix(r.ValueQuantity.Value.Get(), ".0") {
					decimalWeights++
				}
			case "75367002":
				if len(r.Component) != 2 {
					t.Errorf("%s: blood pressure without two components", e.ID)
				}
			case care.CodeFrailty:
				frailty++
				if v, err := strconv.ParseFloat(r.ValueQuantity.Value.Get(), 64); err != nil || v < 0 || v > 1 {
					t.Errorf("%s: frailty index %s", e.ID, e.JSON)
				}
			}
		}
	}
	for _, want := range []string{"CarePlan active", "CarePlan completed", "Appointment booked", "Appointment fulfilled", "Appointment cancelled"} {
		typ, s, _ := strings.Cut(want, " ")
		if !status[typ][s] {
			t.Errorf("no %s with status %s", typ, s)
		}
	}
	if past == 0 || future == 0 {
		t.Errorf("%d past and %d future appointments, want both", past, future)
	}
	if overdue == 0 || frailty == 0 {
		t.Errorf("%d overdue PCSP reviews and %d frailty indexes, want some of each", overdue, frailty)
	}
	if weights == 0 || decimalWeights == 0 {
		t.Errorf("%d body weights, %d with a fraction of a kilogram", weights, decimalWeights)
	}
}

// checkPAM checks a PAM response: the 13 statements answered on the PAM
// scale and the score the licensed tool would return.
func checkPAM(t *testing.T, id string, qr *fhir.QuestionnaireResponse) {
	t.Helper()
	if len(qr.Item) != 14 || qr.Item[0].LinkId.Get() != "pam-1" || qr.Item[13].LinkId.Get() != "pam-score" {
		t.Errorf("%s: %d items, want pam-1 to pam-13 and pam-score", id, len(qr.Item))
		return
	}
	var score float64
	if err := json.Unmarshal([]byte(qr.Item[13].Answer[0].ValueDecimal.Get()), &score); err != nil || score < 0 || score > 100 {
		t.Errorf("%s: PAM score %q, want 0 to 100", id, qr.Item[13].Answer[0].ValueDecimal.Get())
	}
}

// The test range holds enough valid numbers for MaxPatients, and the
// sequence gives each of them once.
func TestNHSSequenceCoversRange(t *testing.T) {
	s := newNHSSequence(1)
	seen := make([]bool, nhsTestCount) // by stem
	for i := range MaxPatients {
		n := s.next()
		if !profiles.ValidNHSNumber(n) || !strings.HasPrefix(n, "999") {
			t.Fatalf("number %d: %s is not a valid test NHS number", i, n)
		}
		stem, _ := strconv.Atoi(n[3:9])
		if seen[stem] {
			t.Fatalf("%s handed out twice, the second time as number %d", n, i)
		}
		seen[stem] = true
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"one patient", Options{Patients: 1}, ""},
		{"most patients", Options{Patients: MaxPatients}, ""},
		{"no patients", Options{}, "Patients"},
		{"too many patients", Options{Patients: MaxPatients + 1}, "Patients"},
		{"negative practice size", Options{Patients: 1, PracticeSize: -1}, "PracticeSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			}
			if tt.wantErr != "" {
				if err := Generate(tt.opts, func(string, string, []byte) error { return nil }); err == nil {
					t.Error("Generate accepted the options")
				}
			}
		})
	}
}

func TestGenerateStopsOnEmitError(t *testing.T) {
	stop := errors.New("disk full")
	n := 0
	err := Generate(Options{Patients: 50, Seed: 1}, func(string, string, []byte) error {
		n++
		if n == 20 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 20 {
		t.Errorf("Generate returned %v after %d resources, want the emit error after 20", err, n)
	}
}

func TestTransaction(t *testing.T) {
	entries, err := All(Options{Patients: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Transaction(entries)
	if err != nil {
		t.Fatal(err)
	}
	res, err := fhirjson.UnmarshalAs(b, "Bundle")
	if err != nil {
		t.Fatal(err)
	}
	bundle := res.(*fhir.Bundle)
	if bundle.Type.Get() != "transaction" || len(bundle.Entry) != len(entries) {
		t.Fatalf("%s bundle with %d entries, want a transaction with %d", bundle.Type.Get(), len(bundle.Entry), len(entries))
	}
	for i, e := range bundle.Entry {
		want := entries[i].Type + "/" + entries[i].ID
		if e.Request.Method.Get() != "PUT" || e.Request.Url.Get() != want || e.Resource.GetID() != entries[i].ID {
			t.Errorf("entry %d: %s %s, want PUT %s", i, e.Request.Method.Get(), e.Request.Url.Get(), want)
		}
	}
	if _, err := Transaction([]Entry{{Type: "Patient", ID: "x", JSON: []byte(`{"resourceType":"Patient","bogus":1}`)}}); err == nil {
		t.Error("Transaction accepted an entry that does not decode")
	}
}

func TestUKTime(t *testing.T) {
	tests := []struct {
		name string
		day  string
		want string
	}{
		{"winter", "2025-01-15", "2025-01-15T09:30:00Z"},
		{"day before summer time", "2025-03-29", "2025-03-29T09:30:00Z"},
		{"first day of summer time", "2025-03-30", "2025-03-30T09:30:00+01:00"},
		{"last day of summer time", "2025-10-25", "2025-10-25T09:30:00+01:00"},
		{"summer time ended", "2025-10-26", "2025-10-26T09:30:00Z"},
		{"leap day", "2024-02-29", "2024-02-29T09:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := time.Parse(time.DateOnly, tt.day)
			if err != nil {
				t.Fatal(err)
			}
			if got := dateTime(ukTime(d, 9, 30)).Get(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	opts := Options{Patients: 1000, Seed: 1}
	resources := 0
	for b.Loop() {
		if err := Generate(opts, func(string, string, []byte) error {
			resources++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(resources)/b.Elapsed().Seconds(), "resources/s")
}
