package synth

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"carefhir/care"
	"carefhir/fhir"
)

// ltc is a long-term condition and how common it is on a practice list.
type ltc struct {
	code, display string
	minAge        int // never diagnosed younger
	adults        int // prevalence in percent from minAge to 64
	older         int // prevalence in percent from 65
	remits        bool
}

var ltcs = []ltc{
	{code: "38341003", display: "Hypertensive disorder, systemic arterial", minAge: 30, adults: 14, older: 45},
	{code: "44054006", display: "Type 2 diabetes mellitus", minAge: 30, adults: 6, older: 18},
	{code: "13645005", display: "Chronic obstructive lung disease", minAge: 40, adults: 2, older: 8},
	{code: "35489007", display: "Depressive disorder", minAge: 16, adults: 10, older: 9, remits: true},
	{code: "195967001", display: "Asthma", minAge: 5, adults: 7, older: 7},
	{code: "197480006", display: "Anxiety disorder", minAge: 16, adults: 6, older: 5, remits: true},
	{code: "84114007", display: "Heart failure", minAge: 50, adults: 1, older: 6},
	{code: "49436004", display: "Atrial fibrillation", minAge: 50, adults: 1, older: 8},
	{code: "709044004", display: "Chronic kidney disease", minAge: 50, adults: 2, older: 12},
	{code: "414916001", display: "Obesity", minAge: 18, adults: 10, older: 12},
	{code: "396275006", display: "Osteoarthritis", minAge: 45, adults: 6, older: 20},
	{code: "52448006", display: "Dementia", minAge: 65, older: 6},
}

const (
	codeHypertension = "38341003"
	codeDiabetes     = "44054006"
)

// record is one patient's record while it is generated.
type record struct {
	g      *generator
	r      *rand.Rand
	p      *practice
	n      int    // the patient number
	num    string // the patient number, such as "000042", in every id
	id     string // Patient id
	who    person
	birth  time.Time
	age    int
	gp     clinician // usual GP
	conds  []*fhir.Condition
	has    map[string]bool // SNOMED codes of the conditions
	nextOb int             // number of the last Observation
}

func (rec *record) patientRef() *fhir.Reference {
	return ref("Patient", rec.id, rec.who.display())
}

// past returns a day between lo and hi days before today.
func (rec *record) past(lo, hi int) time.Time {
	return rec.g.today.AddDate(0, 0, -between(rec.r, lo, hi))
}

// record generates and emits patient n of practice p with their record.
func (g *generator) record(p *practice, n int) error {
	r := g.rand(streamPatient, n)
	num := fmt.Sprintf("%06d", n)
	rec := &record{g: g, r: r, p: p, n: n, num: num, id: "pat-" + num, has: map[string]bool{}}
	rec.who = newPerson(r, "")
	rec.birth = birthDate(r, g.today)
	rec.age = ageAt(rec.birth, g.today)
	rec.gp = pick(r, p.gps)
	if err := g.put(rec.patient()); err != nil {
		return err
	}
	rec.diagnose()
	for _, c := range rec.conds {
		if err := g.put(c); err != nil {
			return err
		}
	}
	if err := g.putAll(rec.observations()...); err != nil {
		return err
	}
	planned := rec.inProactiveCare()
	appts := rec.appointments()
	var support []*fhir.Appointment
	if planned {
		support = rec.supportAppointments(len(appts))
	}
	for _, a := range append(appts, support...) {
		if err := g.put(a); err != nil {
			return err
		}
	}
	if !planned {
		return nil
	}
	return rec.carePlan(support)
}

// patient returns the Patient: UK Core identifiers, name, contact details
// and registration with the practice.
func (rec *record) patient() *fhir.Patient {
	nhs := identifier(SystemNHSNumber, rec.g.nhs.next())
	nhs.Extension = []*fhir.Extension{{
		Url:                  extNHSNumberVerification,
		ValueCodeableConcept: concept(systemNHSNumberVerification, "01", "Number present and verified"),
	}}
	pat := &fhir.Patient{
		Id:                  fhir.NewId(rec.id),
		Meta:                &fhir.Meta{Profile: []*fhir.Canonical{fhir.NewCanonical(profileUKCorePatient)}},
		Identifier:          []*fhir.Identifier{nhs},
		Active:              fhir.NewBoolean(true),
		Name:                []*fhir.HumanName{rec.who.humanName()},
		Gender:              fhir.NewCode(rec.who.gender),
		BirthDate:           date(rec.birth),
		Address:             []*fhir.Address{address(rec.r, rec.p.town, "home")},
		GeneralPractitioner: []*fhir.Reference{rec.p.ref()},
	}
	if rec.age >= 12 || chance(rec.r, 20) {
		pat.Telecom = append(pat.Telecom, mobile(rec.r))
	}
	if chance(rec.r, 30) {
		pat.Telecom = append(pat.Telecom, landline(rec.r, rec.p.town, "home"))
	}
	return pat
}

// diagnose draws the patient's long-term conditions.
func (rec *record) diagnose() {
	for _, c := range ltcs {
		percent := c.adults
		if rec.age >= 65 {
			percent = c.older
		}
		if rec.age < c.minAge || !chance(rec.r, percent) {
			continue
		}
		rec.has[c.code] = true
		rec.conds = append(rec.conds, rec.condition(c))
	}
}

// condition returns a problem-list entry for c, diagnosed since the patient
// reached c.minAge.
func (rec *record) condition(c ltc) *fhir.Condition {
	years := min(rec.age-c.minAge, 30)
	onset := rec.past(30, 30+365*years)
	recorded := onset.AddDate(0, 0, rec.r.IntN(14))
	if recorded.After(rec.g.today) {
		recorded = rec.g.today
	}
	cond := &fhir.Condition{
		Id:                 fhir.NewId(fmt.Sprintf("cond-%s-%d", rec.num, len(rec.conds)+1)),
		ClinicalStatus:     concept(terminology+"condition-clinical", "active", "Active"),
		VerificationStatus: concept(terminology+"condition-ver-status", "confirmed", "Confirmed"),
		Category:           []*fhir.CodeableConcept{concept(terminology+"condition-category", "problem-list-item", "Problem List Item")},
		Code:               snomed(c.code, c.display),
		Subject:            rec.patientRef(),
		OnsetDateTime:      day(onset),
		RecordedDate:       day(recorded),
		Recorder:           rec.gp.ref(),
	}
	if c.remits && chance(rec.r, 30) {
		if end := onset.AddDate(0, 0, between(rec.r, 90, 720)); end.Before(rec.g.today) {
			cond.ClinicalStatus = concept(terminology+"condition-clinical", "resolved", "Resolved")
			cond.AbatementDateTime = day(end)
		}
	}
	return cond
}

// conditionRefs returns references to the patient's active conditions.
func (rec *record) conditionRefs() []*fhir.Reference {
	var refs []*fhir.Reference
	for _, c := range rec.conds {
		if c.AbatementDateTime == nil {
			refs = append(refs, ref("Condition", c.GetID(), c.Code.Coding[0].Display.Get()))
		}
	}
	return refs
}

// observations returns blood pressure, body weight and, for people with
// diabetes, HbA1c results from the last two years.
func (rec *record) observations() []fhir.Resource {
	var obs []fhir.Resource
	bp := 0
	switch {
	case rec.has[codeHypertension]:
		bp = between(rec.r, 2, 3)
	case rec.age >= 40:
		bp = 1
	case rec.age >= 18 && chance(rec.r, 50):
		bp = 1
	}
	for range bp {
		obs = append(obs, rec.bloodPressure())
	}
	if rec.age >= 2 {
		weights := 1
		if rec.age >= 18 && chance(rec.r, 40) {
			weights = 2
		}
		for range weights {
			obs = append(obs, rec.bodyWeight())
		}
	}
	if rec.has[codeDiabetes] {
		for range between(rec.r, 1, 3) {
			obs = append(obs, rec.hba1c())
		}
	}
	if rec.age >= 65 {
		obs = append(obs, rec.frailty()...)
	}
	return obs
}

// frailty returns one or two electronic frailty index results (0 to 1, the
// share of 36 deficits present), the later one counting: higher with age
// and with more conditions. They come from a random stream of their own,
// so that adding them left the rest of each record as it was.
func (rec *record) frailty() []fhir.Resource {
	r := rec.g.rand(streamFrailty, rec.n)
	base := 0.04 + 0.006*float64(rec.age-65) + 0.03*float64(len(rec.conds))
	var out []fhir.Resource
	for i := range between(r, 1, 2) {
		deficits := min(36, max(0, int((base+0.02*float64(i))*36+float64(r.IntN(5))-2)))
		value := strconv.FormatFloat(float64(deficits)/36, 'f', 2, 64)
		rec.nextOb++
		taken := clinicTime(r, workday(rec.g.today.AddDate(0, 0, -between(r, 30, 300)+120*i)))
		out = append(out, &fhir.Observation{
			Id:                fhir.NewId(fmt.Sprintf("obs-%s-%d", rec.num, rec.nextOb)),
			Status:            fhir.NewCode("final"),
			Category:          []*fhir.CodeableConcept{concept(terminology+"observation-category", "survey", "Survey")},
			Code:              &fhir.CodeableConcept{Coding: []*fhir.Coding{coding(care.SystemRiskScore, care.CodeFrailty, "Electronic frailty index")}, Text: fhir.NewString("Electronic frailty index")},
			Subject:           rec.patientRef(),
			EffectiveDateTime: dateTime(taken),
			ValueQuantity:     &fhir.Quantity{Value: fhir.NewDecimal(value)},
		})
	}
	return out
}

// observation returns a final Observation of the patient taken by the
// practice nurse in the last two years.
func (rec *record) observation(category, categoryDisplay string, code *fhir.CodeableConcept) *fhir.Observation {
	rec.nextOb++
	taken := clinicTime(rec.r, workday(rec.past(1, 730)))
	return &fhir.Observation{
		Id:                fhir.NewId(fmt.Sprintf("obs-%s-%d", rec.num, rec.nextOb)),
		Status:            fhir.NewCode("final"),
		Category:          []*fhir.CodeableConcept{concept(terminology+"observation-category", category, categoryDisplay)},
		Code:              code,
		Subject:           rec.patientRef(),
		EffectiveDateTime: dateTime(taken),
		Performer:         []*fhir.Reference{rec.p.nurse.ref()},
	}
}

// coded returns a CodeableConcept with a SNOMED CT and a LOINC coding.
func coded(sct, sctDisplay, loinc, loincDisplay, text string) *fhir.CodeableConcept {
	return &fhir.CodeableConcept{
		Coding: []*fhir.Coding{coding(SystemSNOMED, sct, sctDisplay), coding(SystemLOINC, loinc, loincDisplay)},
		Text:   fhir.NewString(text),
	}
}

// bloodPressure returns a blood pressure panel with systolic and diastolic
// components, higher for people with hypertension.
func (rec *record) bloodPressure() *fhir.Observation {
	sys, dia := between(rec.r, 105, 140), between(rec.r, 62, 88)
	if rec.has[codeHypertension] {
		sys, dia = sys+between(rec.r, 5, 30), dia+between(rec.r, 2, 12)
	}
	o := rec.observation("vital-signs", "Vital Signs",
		coded("75367002", "Blood pressure", "85354-9", "Blood pressure panel with all children optional", "Blood pressure"))
	mmHg := func(v int) *fhir.Quantity { return quantity(strconv.Itoa(v), "mmHg", "mm[Hg]") }
	o.Component = []*fhir.ObservationComponent{
		{Code: coded("72313002", "Systolic arterial pressure", "8480-6", "Systolic blood pressure", "Systolic blood pressure"), ValueQuantity: mmHg(sys)},
		{Code: coded("1091811000000102", "Diastolic arterial pressure", "8462-4", "Diastolic blood pressure", "Diastolic blood pressure"), ValueQuantity: mmHg(dia)},
	}
	return o
}

// bodyWeight returns a weight in kilograms to one decimal place, such as
// 72.5 (or 80.0), in proportion to age for children.
func (rec *record) bodyWeight() *fhir.Observation {
	tenths := between(rec.r, 480, 1250)
	if rec.age < 16 {
		tenths = (rec.age*30 + 80) + rec.r.IntN(rec.age*8+20)
	}
	o := rec.observation("vital-signs", "Vital Signs",
		coded("27113001", "Body weight", "29463-7", "Body weight", "Body weight"))
	o.ValueQuantity = quantity(fmt.Sprintf("%d.%d", tenths/10, tenths%10), "kg", "kg")
	return o
}

// hba1c returns an IFCC HbA1c result in mmol/mol, flagged high from 48.
func (rec *record) hba1c() *fhir.Observation {
	v := between(rec.r, 42, 88)
	o := rec.observation("laboratory", "Laboratory",
		coded("1049301000000100", "Haemoglobin A1c level - International Federation of Clinical Chemistry and Laboratory Medicine standardised",
			"59261-8", "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol", "HbA1c"))
	o.ValueQuantity = quantity(strconv.Itoa(v), "mmol/mol", "mmol/mol")
	if v >= 48 {
		o.Interpretation = []*fhir.CodeableConcept{concept(terminology+"v3-ObservationInterpretation", "H", "High")}
	}
	return o
}

// inProactiveCare decides whether the patient has a personalised care and
// support plan: mostly people with several conditions, or who are old.
func (rec *record) inProactiveCare() bool {
	switch {
	case rec.age < 18:
		return false
	case len(rec.conds) >= 2 || rec.age >= 75:
		return chance(rec.r, 80)
	case len(rec.conds) == 1:
		return chance(rec.r, 45)
	}
	return chance(rec.r, 12)
}

// visit is a kind of appointment.
type visit struct {
	service, description string
	minutes              int
	with                 role
}

var (
	routineVisits = []visit{
		{"General practice", "GP consultation", 10, roleGP},
		{"General practice", "Medication review", 15, roleGP},
		{"Practice nursing", "Blood test", 10, roleNurse},
		{"Practice nursing", "Blood pressure check", 10, roleNurse},
		{"Practice nursing", "Vaccination", 10, roleNurse},
	}
	diabetesVisit = visit{"Practice nursing", "Annual diabetes review", 30, roleNurse}
	supportVisits = []visit{
		{"Social prescribing", "Social prescribing: what matters to you", 45, roleLinkWorker},
		{"Health coaching", "Health and wellbeing coaching session", 30, roleCoach},
		{"Care coordination", "Care and support planning review", 30, roleCoordinator},
	}
)

// appointments returns one to five routine appointments, past or future.
func (rec *record) appointments() []*fhir.Appointment {
	var list []*fhir.Appointment
	for range between(rec.r, 1, 5) {
		v := pick(rec.r, routineVisits)
		if rec.has[codeDiabetes] && chance(rec.r, 30) {
			v = diabetesVisit
		}
		list = append(list, rec.appointment(v, len(list)+1))
	}
	return list
}

// supportAppointments returns the appointments of proactive care, with the
// link worker, health coach or care coordinator, numbered after the
// routine ones.
func (rec *record) supportAppointments(routine int) []*fhir.Appointment {
	var list []*fhir.Appointment
	first := rec.r.IntN(len(supportVisits))
	for i := range between(rec.r, 1, 2) {
		list = append(list, rec.appointment(supportVisits[(first+i)%len(supportVisits)], routine+i+1))
	}
	return list
}

func (rec *record) clinician(ro role) clinician {
	switch ro {
	case roleNurse:
		return rec.p.nurse
	case roleLinkWorker:
		return rec.p.link
	case roleCoach:
		return rec.p.coach
	case roleCoordinator:
		return rec.p.coord
	}
	return rec.gp
}

// appointment returns the k-th appointment: fulfilled, missed or cancelled
// in the last year, or booked (sometimes cancelled) in the next three
// months.
func (rec *record) appointment(v visit, k int) *fhir.Appointment {
	d := workday(rec.g.today.AddDate(0, 0, between(rec.r, -365, 90)))
	start := clinicTime(rec.r, d)
	future := !d.Before(rec.g.today)
	status := "booked"
	switch n := rec.r.IntN(100); {
	case future && n < 10, !future && n < 8:
		status = "cancelled"
	case !future && n < 13:
		status = "noshow"
	case !future:
		status = "fulfilled"
	}
	created := start.AddDate(0, 0, -between(rec.r, 1, 28))
	if created.After(rec.g.today) {
		created = rec.g.today
	}
	who := rec.clinician(v.with)
	a := &fhir.Appointment{
		Id:              fhir.NewId(fmt.Sprintf("appt-%s-%d", rec.num, k)),
		Status:          fhir.NewCode(status),
		ServiceType:     []*fhir.CodeableConcept{textConcept(v.service)},
		AppointmentType: concept(terminology+"v2-0276", "ROUTINE", "Routine appointment - default if not valued"),
		Description:     fhir.NewString(v.description),
		Start:           instant(start),
		End:             instant(start.Add(time.Duration(v.minutes) * time.Minute)),
		MinutesDuration: fhir.NewPositiveInt(int64(v.minutes)),
		Created:         dateTime(ukTime(created, 8, 0)),
		Participant: []*fhir.AppointmentParticipant{
			{Actor: rec.patientRef(), Required: fhir.NewCode("required"), Status: fhir.NewCode("accepted")},
			{Actor: who.ref(), Required: fhir.NewCode("required"), Status: fhir.NewCode("accepted")},
		},
	}
	if status == "cancelled" {
		if chance(rec.r, 70) {
			a.CancelationReason = concept(terminology+"appointment-cancellation-reason", "pat", "Patient")
		} else {
			a.CancelationReason = concept(terminology+"appointment-cancellation-reason", "prov", "Provider")
		}
	}
	return a
}
