package synth

import (
	"fmt"
	"math/rand/v2"
	"time"

	"carefhir/fhir"
)

// Names are drawn mostly from common names in England and Wales, and
// otherwise from names that exercise search: accents, apostrophes, spaces,
// hyphens and letters outside Latin-1.
var (
	commonFamilies = []string{
		"Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Roberts",
		"Johnson", "Lewis", "Walker", "Robinson", "Wood", "Thompson", "White", "Watson", "Jackson", "Wright",
		"Green", "Harris", "Cooper", "King", "Lee", "Martin", "Clarke", "James", "Morgan", "Hughes",
		"Edwards", "Hill", "Moore", "Clark", "Harrison", "Scott", "Young", "Morris", "Hall", "Ward",
		"Patel", "Khan", "Ahmed", "Begum", "Singh", "Kaur", "Ali", "Hussain", "Shah", "Rahman",
	}
	diverseFamilies = []string{
		"O'Brien", "O'Neill", "O'Connor", "D'Souza", "McLeod", "MacDonald", "Ó Súilleabháin", "Ní Bhriain",
		"Nguyễn", "Trần", "Kowalski", "Wiśniewski", "Nowak", "Müller", "Fernández", "García", "Okafor",
		"Adeyemi", "Mensah", "Chen", "Wang", "Lewis-Jones", "Smith-Ansah", "ap Rhys", "Brontë", "Çelik",
		"Öztürk", "Chowdhury", "Ødegaard", "Lefèvre",
	}
	commonGiven = [2][]string{ // male, female
		{"Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Arthur", "Oscar", "Charlie", "Thomas",
			"James", "William", "David", "John", "Michael", "Peter", "Robert", "Paul", "Mohammed", "Rhys"},
		{"Olivia", "Amelia", "Isla", "Ava", "Lily", "Freya", "Emily", "Grace", "Sophie", "Mia",
			"Margaret", "Susan", "Linda", "Elizabeth", "Sarah", "Patricia", "Jean", "Helen", "Fatima", "Bethan"},
	}
	diverseGiven = [2][]string{
		{"Seán", "Ciarán", "Tomás", "José", "Łukasz", "Zoltán", "François", "Björn", "Dafydd", "Ifan",
			"Oluwaseun", "Kwame", "Arjun", "Wei", "Muhammad", "Jörg", "Rónán", "Nuño"},
		{"Siân", "Zoë", "Chloë", "Niamh", "Aoife", "Saoirse", "Renée", "Anaïs", "Małgorzata", "Priya",
			"Aisha", "Ffion", "Nia", "Zsófia", "Inés", "Adaeze", "Mei", "Åsa"},
	}
)

// town is a place practices and their patients are in: real postcode
// districts, and the Ofcom range of numbers kept for drama, so no generated
// phone number rings anyone.
type town struct {
	city      string
	county    string
	districts []string // outward codes of the town's postcodes
	phone     string   // area code and local prefix of the drama range
}

var towns = []town{
	{"Leeds", "West Yorkshire", []string{"LS1", "LS2", "LS6", "LS7", "LS8", "LS11", "LS17", "LS28"}, "0113 496 0"},
	{"Sheffield", "South Yorkshire", []string{"S1", "S2", "S7", "S10", "S11", "S35"}, "0114 496 0"},
	{"Nottingham", "Nottinghamshire", []string{"NG1", "NG5", "NG7", "NG9"}, "0115 496 0"},
	{"Leicester", "Leicestershire", []string{"LE1", "LE2", "LE3", "LE5"}, "0116 496 0"},
	{"Bristol", "Bristol", []string{"BS1", "BS3", "BS5", "BS8", "BS16"}, "0117 496 0"},
	{"Reading", "Berkshire", []string{"RG1", "RG2", "RG4", "RG30"}, "0118 496 0"},
	{"Birmingham", "West Midlands", []string{"B1", "B5", "B15", "B16", "B29", "B44"}, "0121 496 0"},
	{"Liverpool", "Merseyside", []string{"L1", "L8", "L15", "L17", "L36"}, "0151 496 0"},
	{"Manchester", "Greater Manchester", []string{"M1", "M3", "M14", "M20", "M21", "M40"}, "0161 496 0"},
	{"Newcastle upon Tyne", "Tyne and Wear", []string{"NE1", "NE2", "NE4", "NE6", "NE15"}, "0191 498 0"},
	{"London", "Greater London", []string{"SW1A", "W1T", "EC1V", "E1", "N7", "SE15", "NW3", "WC2H", "E14"}, "020 7946 0"},
	{"Cardiff", "South Glamorgan", []string{"CF10", "CF11", "CF14", "CF24"}, "029 2018 0"},
}

var streets = []string{
	"Station Road", "Church Street", "Victoria Road", "High Street", "Mill Lane", "Park Avenue",
	"Queen's Drive", "St Mary's Close", "King's Road", "Chapel Lane", "Oakfield Grove", "Meadow Way",
	"Heol y Deri", "Ffordd yr Eglwys", "Bishop's Walk", "Albert Terrace", "Manor Court", "Elm Crescent",
}

// postcodeUnits are the letters of the inward code of a UK postcode: C, I,
// K, M, O and V are never used there.
const postcodeUnits = "ABDEFGHJLNPQRSTUWXYZ"

// postcode returns a postcode in district, such as "LS17 7DF".
func postcode(r *rand.Rand, district string) string {
	return fmt.Sprintf("%s %d%c%c", district, r.IntN(10),
		postcodeUnits[r.IntN(len(postcodeUnits))], postcodeUnits[r.IntN(len(postcodeUnits))])
}

// address returns a home or work address in t.
func address(r *rand.Rand, t town, use string) *fhir.Address {
	a := &fhir.Address{
		Use:        fhir.NewCode(use),
		Line:       []*fhir.String{fhir.NewString(fmt.Sprintf("%d %s", 1+r.IntN(180), pick(r, streets)))},
		City:       fhir.NewString(t.city),
		District:   fhir.NewString(t.county),
		PostalCode: fhir.NewString(postcode(r, pick(r, t.districts))),
		Country:    fhir.NewString("GB"),
	}
	if use == "home" && r.IntN(5) == 0 {
		a.Line = append([]*fhir.String{fhir.NewString(fmt.Sprintf("Flat %d", 1+r.IntN(24)))}, a.Line...)
	}
	return a
}

// mobile returns a number from the mobile drama range 07700 900000–900999.
func mobile(r *rand.Rand) *fhir.ContactPoint {
	return phone(fmt.Sprintf("07700 900%03d", r.IntN(1000)), "mobile")
}

// landline returns a number from t's drama range.
func landline(r *rand.Rand, t town, use string) *fhir.ContactPoint {
	return phone(fmt.Sprintf("%s%03d", t.phone, r.IntN(1000)), use)
}

func phone(number, use string) *fhir.ContactPoint {
	return &fhir.ContactPoint{System: fhir.NewCode("phone"), Value: fhir.NewString(number), Use: fhir.NewCode(use)}
}

// person is who a Patient or Practitioner is.
type person struct {
	gender string // male | female | other | unknown
	given  []string
	family string
	prefix string
}

// newPerson draws a person; a gender of "" is drawn too.
func newPerson(r *rand.Rand, gender string) person {
	if gender == "" {
		switch n := r.IntN(100); {
		case n < 49:
			gender = "male"
		case n < 98:
			gender = "female"
		case n < 99:
			gender = "other"
		default:
			gender = "unknown"
		}
	}
	sex := r.IntN(2) // names for other and unknown come from either list
	switch gender {
	case "male":
		sex = 0
	case "female":
		sex = 1
	}
	p := person{gender: gender, given: []string{givenName(r, sex)}}
	if r.IntN(10) < 3 {
		p.given = append(p.given, givenName(r, sex))
	}
	if r.IntN(100) < 70 {
		p.family = pick(r, commonFamilies)
	} else {
		p.family = pick(r, diverseFamilies)
	}
	switch gender {
	case "male":
		p.prefix = "Mr"
	case "female":
		p.prefix = pick(r, []string{"Mrs", "Ms", "Miss"})
	case "other":
		p.prefix = "Mx"
	}
	return p
}

func givenName(r *rand.Rand, sex int) string {
	if r.IntN(100) < 70 {
		return pick(r, commonGiven[sex])
	}
	return pick(r, diverseGiven[sex])
}

// display returns the name as people write it, such as "Siân O'Brien".
func (p person) display() string {
	return p.given[0] + " " + p.family
}

// humanName returns the official name.
func (p person) humanName() *fhir.HumanName {
	n := &fhir.HumanName{Use: fhir.NewCode("official"), Family: fhir.NewString(p.family)}
	for _, g := range p.given {
		n.Given = append(n.Given, fhir.NewString(g))
	}
	if p.prefix != "" {
		n.Prefix = []*fhir.String{fhir.NewString(p.prefix)}
	}
	return n
}

// birthDate draws a date of birth for an age band weighted like a practice
// list: children, working age and older people.
func birthDate(r *rand.Rand, today time.Time) time.Time {
	var lo, hi int
	switch n := r.IntN(100); {
	case n < 20:
		lo, hi = 0, 17
	case n < 45:
		lo, hi = 18, 39
	case n < 75:
		lo, hi = 40, 64
	case n < 90:
		lo, hi = 65, 79
	default:
		lo, hi = 80, 101
	}
	age := lo + r.IntN(hi-lo+1)
	return today.AddDate(-age, 0, -r.IntN(365))
}

// ageAt returns the age in whole years on day today of someone born on birth.
func ageAt(birth, today time.Time) int {
	age := today.Year() - birth.Year()
	if today.Month() < birth.Month() || today.Month() == birth.Month() && today.Day() < birth.Day() {
		age--
	}
	return age
}
