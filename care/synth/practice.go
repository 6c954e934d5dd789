package synth

import (
	"fmt"
	"math/rand/v2"

	"carefhir/fhir"
)

// role is a job in a practice's team.
type role int

const (
	roleGP role = iota
	roleNurse
	roleLinkWorker
	roleCoach
	roleCoordinator
)

// code returns the coded role: SNOMED CT for general practitioners, the
// carefhir care-role codes for the others.
func (ro role) code() *fhir.CodeableConcept {
	var c *fhir.CodeableConcept
	switch ro {
	case roleGP:
		c = snomed("62247001", "General practitioner")
	case roleNurse:
		c = concept(SystemCareRole, "practice-nurse", "Practice nurse")
	case roleLinkWorker:
		c = concept(SystemCareRole, "social-prescribing-link-worker", "Social prescribing link worker")
	case roleCoach:
		c = concept(SystemCareRole, "health-and-wellbeing-coach", "Health and wellbeing coach")
	default:
		c = concept(SystemCareRole, "care-coordinator", "Care coordinator")
	}
	c.Text = c.Coding[0].Display
	return c
}

// clinician is a member of a practice's team.
type clinician struct {
	id      string // Practitioner id
	display string // such as "Dr Siân O'Brien"
	role    role
}

func (c clinician) ref() *fhir.Reference { return ref("Practitioner", c.id, c.display) }

// practice is a GP practice: its Organization, team and the resources that
// describe them.
type practice struct {
	id, name string
	town     town
	gps      []clinician
	nurse    clinician
	link     clinician // social prescribing link worker
	coach    clinician // health and wellbeing coach
	coord    clinician // care coordinator
	// resources are the Organization, then each Practitioner and
	// PractitionerRole.
	resources []fhir.Resource
}

func (p *practice) ref() *fhir.Reference { return ref("Organization", p.id, p.name) }

var (
	practiceNames   = []string{"Riverside", "Park View", "St Luke's", "Millbrook", "Oakwood", "Beech House", "Church View", "Hillside", "Meadowbank", "Cross Keys", "Tŷ Gwyn", "Queen's Park", "Ashgrove", "Brookfield", "Saint Anne's"}
	practiceSuffix  = []string{"Surgery", "Medical Practice", "Medical Centre", "Health Centre", "Family Practice"}
	odsRegionLetter = "ABCDEFGHJKLMNPY"
)

// odsCode returns the ODS code of the n-th practice (from 1), in the form
// of GP practice codes: a letter and five digits, such as A81001.
func odsCode(n int) string {
	i := n - 1
	return fmt.Sprintf("%c%05d", odsRegionLetter[i%len(odsRegionLetter)], (81001+i/len(odsRegionLetter))%100000)
}

// practice builds the n-th practice (from 1) and its team.
func (g *generator) practice(n int) *practice {
	r := g.rand(streamPractice, n)
	ods := odsCode(n)
	p := &practice{
		id:   fmt.Sprintf("org-%04d", n),
		name: pick(r, practiceNames) + " " + pick(r, practiceSuffix),
		town: pick(r, towns),
	}
	org := &fhir.Organization{
		Id:         fhir.NewId(p.id),
		Identifier: []*fhir.Identifier{identifier(SystemODSCode, ods)},
		Active:     fhir.NewBoolean(true),
		Type:       []*fhir.CodeableConcept{concept(terminology+"organization-type", "prov", "Healthcare Provider")},
		Name:       fhir.NewString(p.name),
		Telecom:    []*fhir.ContactPoint{landline(r, p.town, "work")},
		Address:    []*fhir.Address{address(r, p.town, "work")},
	}
	p.resources = append(p.resources, org)
	roles := []role{roleNurse, roleLinkWorker, roleCoach, roleCoordinator}
	for range between(r, 3, 7) {
		roles = append(roles, roleGP)
	}
	for j, ro := range roles {
		c := g.clinician(r, p, n, j+1, ro)
		switch ro {
		case roleGP:
			p.gps = append(p.gps, c)
		case roleNurse:
			p.nurse = c
		case roleLinkWorker:
			p.link = c
		case roleCoach:
			p.coach = c
		case roleCoordinator:
			p.coord = c
		}
	}
	return p
}

// clinician adds the j-th member (from 1) of the team of practice n: a
// Practitioner, registered with the GMC (doctors) or NMC (nurses) where the
// profession is regulated, and their PractitionerRole at the practice.
func (g *generator) clinician(r *rand.Rand, p *practice, n, j int, ro role) clinician {
	who := newPerson(r, pick(r, []string{"male", "female"}))
	serial := (n-1)*16 + j // unique per practitioner in a set
	c := clinician{id: fmt.Sprintf("prac-%04d-%02d", n, j), display: who.display(), role: ro}
	name := who.humanName()
	ids := []*fhir.Identifier{identifier(SystemSDSUserID, fmt.Sprintf("%012d", 555_000_000_000+serial))}
	switch ro {
	case roleGP:
		c.display = "Dr " + c.display
		name.Prefix = []*fhir.String{fhir.NewString("Dr")}
		ids = append(ids,
			identifier(SystemGMCNumber, fmt.Sprintf("C%07d", 2_000_000+serial%8_000_000)),
			identifier(SystemGMPNumber, fmt.Sprintf("G8%06d", serial%1_000_000)))
	case roleNurse:
		// An NMC PIN: year and month of registration, serial, country.
		ids = append(ids, identifier(SystemNMCNumber, fmt.Sprintf("%02d%c%04d%c",
			(85+serial/120_000)%100, 'A'+rune(serial/10_000%12), serial%10_000, pick(r, []rune("EEEEW")))))
	}
	since := g.today.AddDate(-between(r, 1, 25), -r.IntN(12), 0)
	prac := &fhir.Practitioner{
		Id:         fhir.NewId(c.id),
		Identifier: ids,
		Active:     fhir.NewBoolean(true),
		Name:       []*fhir.HumanName{name},
		Telecom:    []*fhir.ContactPoint{landline(r, p.town, "work")},
		Gender:     fhir.NewCode(who.gender),
	}
	pr := &fhir.PractitionerRole{
		Id:           fhir.NewId(fmt.Sprintf("role-%04d-%02d", n, j)),
		Identifier:   []*fhir.Identifier{identifier(SystemSDSRoleProfile, fmt.Sprintf("%012d", 666_000_000_000+serial))},
		Active:       fhir.NewBoolean(true),
		Period:       &fhir.Period{Start: day(since)},
		Practitioner: c.ref(),
		Organization: p.ref(),
		Code:         []*fhir.CodeableConcept{ro.code()},
		Specialty:    []*fhir.CodeableConcept{concept(systemPracticeSetting, "600", "General Medical Practice")},
		Telecom:      prac.Telecom,
	}
	p.resources = append(p.resources, prac, pr)
	return c
}

// putPractice emits the practice's Organization, Practitioners and
// PractitionerRoles.
func (g *generator) putPractice(p *practice) error {
	return g.putAll(p.resources...)
}
