// Package synth generates realistic, entirely fictional UK primary-care
// records as FHIR R4 resources, deterministically from a seed, for tests,
// benchmarks and demonstrations.
//
// A generated set holds one PAM Questionnaire, GP practices (Organization
// with an ODS code) with their Practitioners and PractitionerRoles (GPs, a
// practice nurse, a social prescribing link worker, a health and wellbeing
// coach and a care coordinator), and patients registered with them: each
// Patient with a valid NHS number from the range set aside for testing, a
// UK address and phone number, and a record of Conditions, Observations
// (blood pressure, body weight, HbA1c), Appointments and, for the patients
// in proactive care, a personalised care and support plan (CarePlan) with
// its CareTeam and Goals, PAM QuestionnaireResponses and PAM score
// Observations.
//
// Every resource is built with the typed model in package fhir and encoded
// with fhirjson, so it decodes with fhirjson.Unmarshal. Ids are fixed by the
// position of a resource in the set ("pat-000042", "cond-000042-1"), and
// references are relative ("Patient/pat-000042"), so a set is
// self-consistent and loading it again with PUT replaces it rather than
// duplicating it. Resources are emitted after every resource they refer to.
//
// The same Options give the same bytes. Each patient's record is drawn from
// its own random stream, so patient n is the same in a set of 100 patients
// as in a set of 100,000.
package synth

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-playground/validator/v10"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

// MaxPatients is the largest set Generate produces: every patient needs a
// distinct valid NHS number from the test range 999 000 0000 to 999 999 9999,
// which holds about 909,000 of them.
const MaxPatients = 900_000

// DefaultPracticeSize is the number of patients registered with each
// generated GP practice when Options.PracticeSize is 0, close to the average
// list size of an English practice.
const DefaultPracticeSize = 8000

// DefaultToday is the reference date when Options.Today is zero. A fixed
// date keeps generated sets identical from one day to the next.
var DefaultToday = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC)

// Options selects a generated set.
type Options struct {
	// Patients is the number of patients generated, each with a record.
	Patients int `validate:"min=1,max=900000"`
	// Seed selects the set: equal Options give byte-identical output.
	Seed uint64
	// PracticeSize is the number of patients per GP practice; 0 means
	// DefaultPracticeSize.
	PracticeSize int `validate:"min=0"`
	// Today is the reference date: appointments before it are in the past
	// (fulfilled, cancelled or missed), after it booked; ages are counted
	// to it. Only the calendar date is used. Zero means DefaultToday.
	Today time.Time
}

// Practices returns the number of GP practices a set with these options
// holds.
func (o Options) Practices() int {
	size := o.practiceSize()
	return (o.Patients + size - 1) / size
}

func (o Options) practiceSize() int {
	if o.PracticeSize > 0 {
		return o.PracticeSize
	}
	return DefaultPracticeSize
}

// Validate reports options that Generate refuses.
func (o Options) Validate() error {
	if err := validator.New().Struct(o); err != nil {
		var fieldErrs validator.ValidationErrors
		if errors.As(err, &fieldErrs) {
			errs := make([]error, len(fieldErrs))
			for i, fe := range fieldErrs {
				errs[i] = fmt.Errorf("synth: %s %v: must be %s %s", fe.Field(), fe.Value(), fe.Tag(), fe.Param())
			}
			return errors.Join(errs...)
		}
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// EmitFunc receives one generated resource: its type, id and JSON. The
// slice is not used again by Generate, so the function may keep it. A
// non-nil error stops Generate, which returns it.
type EmitFunc func(resourceType, id string, json []byte) error

// Generate produces the set opts selects, streaming every resource to emit
// in an order where each resource follows those it refers to. It holds one
// patient's record in memory at a time, so sets of any size take little
// memory.
func Generate(opts Options, emit EmitFunc) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	g := &generator{
		opts:  opts,
		today: dateOf(opts.Today),
		emit:  emit,
		nhs:   newNHSSequence(opts.Seed),
	}
	if opts.Today.IsZero() {
		g.today = DefaultToday
	}
	size := opts.practiceSize()
	var p *practice
	for n := 1; n <= opts.Patients; n++ {
		if (n-1)%size == 0 {
			p = g.practice((n-1)/size + 1)
			if err := g.putPractice(p); err != nil {
				return err
			}
		}
		if err := g.record(p, n); err != nil {
			return err
		}
	}
	return nil
}

// Random streams: each practice and each patient draws from its own PCG
// stream, selected by the second PCG seed word, so that one part of a set
// does not depend on how many random numbers another part used.
const (
	streamNHS      = 1 << 62
	streamPractice = 2 << 62
	streamPatient  = 3 << 62
	streamFrailty  = 1<<62 | 1<<61
	streamReview   = 1<<62 | 1<<60
)

// generator carries the state of one Generate call.
type generator struct {
	opts  Options
	today time.Time // midnight UTC of the reference date
	emit  EmitFunc
	nhs   *nhsSequence
}

// rand returns the random stream of one part of the set.
func (g *generator) rand(stream uint64, n int) *rand.Rand {
	return rand.New(rand.NewPCG(g.opts.Seed, stream|uint64(n)))
}

// put encodes res and emits it.
func (g *generator) put(res fhir.Resource) error {
	b, err := fhirjson.Marshal(res)
	if err != nil {
		return fmt.Errorf("synth: encode %s/%s: %w", res.ResourceType(), res.GetID(), err)
	}
	return g.emit(res.ResourceType(), res.GetID(), b)
}

// putAll emits each resource in turn.
func (g *generator) putAll(list ...fhir.Resource) error {
	for _, res := range list {
		if err := g.put(res); err != nil {
			return err
		}
	}
	return nil
}

func dateOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
