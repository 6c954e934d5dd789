package gpconnect

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"carefhir/fhir"
)

const (
	gpcAppointmentProfile  = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Appointment-1"
	gpcOrganizationProfile = "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Organization-1"
	gpcBookingOrgExt       = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1"
	gpcCancelReasonExt     = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1"
	maxDescription         = 100 // characters, GPConnect-Appointment-1
)

// Booking is what a GP Connect request needs beyond the R4 Appointment.
type Booking struct {
	// Organization is the organisation booking the appointment (the PCN
	// or practice the care coordinator works for); it must carry an ODS
	// code. It is sent as the contained booking organisation.
	Organization *fhir.Organization
	// ProviderReference turns a reference of the R4 Appointment (to its
	// Patient, Location and Slots) into the provider's own, such as
	// "Slot/4242"; ok is false when the provider's id is not known.
	ProviderReference func(reference string) (providerRef string, ok bool)
}

// BookingRequest returns the body of a GP Connect Book an appointment
// request (POST /Appointment) for a, by the GPConnect-Appointment-1 rules:
// status booked, start, end, the slots, created, the patient and location
// participants (and practitioners, if any), a description of at most 100
// characters and the booking organisation as a contained Organization.
// What the profile forbids in a booking (reason, specialty, service
// category and type, indication) is not sent.
func BookingRequest(a *fhir.Appointment, b Booking) ([]byte, error) {
	m, err := b.appointment(a)
	if err != nil {
		return nil, err
	}
	m["status"] = "booked"
	return json.Marshal(m)
}

// AmendRequest returns the body of a GP Connect Amend an appointment
// request (PUT /Appointment/{providerID}): the booking with the provider's
// id. Providers accept changes to the description and comment only.
func AmendRequest(a *fhir.Appointment, providerID string, b Booking) ([]byte, error) {
	if providerID == "" {
		return nil, errors.New("gpconnect: amend: the provider's id of the appointment is needed")
	}
	m, err := b.appointment(a)
	if err != nil {
		return nil, err
	}
	m["id"] = providerID
	m["status"] = a.Status.Get()
	return json.Marshal(m)
}

// CancelRequest returns the body of a GP Connect Cancel an appointment
// request (PUT /Appointment/{providerID}): status cancelled with the
// cancellation reason, which GP Connect requires, as its extension.
func CancelRequest(a *fhir.Appointment, providerID, reason string, b Booking) ([]byte, error) {
	if providerID == "" {
		return nil, errors.New("gpconnect: cancel: the provider's id of the appointment is needed")
	}
	if reason == "" {
		reason = fhirText(a.CancelationReason)
	}
	if reason == "" {
		return nil, errors.New("gpconnect: cancel: Appointment.cancelationReason: GP Connect needs a cancellation reason")
	}
	m, err := b.appointment(a)
	if err != nil {
		return nil, err
	}
	m["id"] = providerID
	m["status"] = "cancelled"
	m["extension"] = append(asList(m["extension"]), map[string]any{"url": gpcCancelReasonExt, "valueString": reason})
	return json.Marshal(m)
}

// appointment builds the STU3 Appointment every request shares.
func (b Booking) appointment(a *fhir.Appointment) (map[string]any, error) {
	if a == nil {
		return nil, errors.New("gpconnect: no Appointment")
	}
	var problems []string
	need := func(ok bool, path, why string) {
		if !ok {
			problems = append(problems, path+": "+why)
		}
	}
	need(a.Start.Get() != "", "Appointment.start", "GP Connect books a start time")
	need(a.End.Get() != "", "Appointment.end", "GP Connect books an end time")
	need(a.Created.Get() != "", "Appointment.created", "GP Connect needs the time the booking was made")
	need(len(a.Slot) > 0, "Appointment.slot", "GP Connect books free slots, at least one")
	desc := a.Description.Get()
	need(utf8.RuneCountInString(desc) <= maxDescription, "Appointment.description",
		fmt.Sprintf("GP Connect allows %d characters, this has %d", maxDescription, utf8.RuneCountInString(desc)))
	org, err := bookingOrganization(b.Organization)
	if err != nil {
		problems = append(problems, err.Error())
	}
	m := map[string]any{
		"resourceType": "Appointment",
		"meta":         map[string]any{"profile": []any{gpcAppointmentProfile}},
		"start":        a.Start.Get(),
		"end":          a.End.Get(),
		"created":      a.Created.Get(),
	}
	if org != nil {
		m["contained"] = []any{org}
		m["extension"] = []any{map[string]any{"url": gpcBookingOrgExt, "valueReference": map[string]any{"reference": "#1"}}}
	}
	if desc != "" {
		m["description"] = desc
	}
	if c := a.Comment.Get(); c != "" {
		m["comment"] = c
	}
	if a.MinutesDuration != nil {
		m["minutesDuration"] = a.MinutesDuration.Get()
	}
	provider := func(path string, r *fhir.Reference) string {
		ref := r.Reference.Get()
		if b.ProviderReference != nil {
			if p, ok := b.ProviderReference(ref); ok {
				return p
			}
		}
		problems = append(problems, fmt.Sprintf("%s: the provider's id of %q is not known", path, ref))
		return ""
	}
	var slots []any
	for i, s := range a.Slot {
		if p := provider(fmt.Sprintf("Appointment.slot[%d]", i), s); p != "" {
			slots = append(slots, map[string]any{"reference": p})
		}
	}
	m["slot"] = slots
	var parts []any
	var patient, location bool
	for i, p := range a.Participant {
		path := fmt.Sprintf("Appointment.participant[%d].actor", i)
		if p.Actor == nil || p.Actor.Reference.Get() == "" {
			continue
		}
		ref := provider(path, p.Actor)
		if ref == "" {
			continue
		}
		switch ref[:strings.IndexByte(ref+"/", '/')] {
		case "Patient":
			patient = true
		case "Location":
			location = true
		case "Practitioner":
		default:
			problems = append(problems, path+": GP Connect appointments have patient, location and practitioner participants only")
			continue
		}
		status := p.Status.Get()
		if status == "" {
			status = "accepted"
		}
		parts = append(parts, map[string]any{"actor": map[string]any{"reference": ref}, "status": status})
	}
	need(patient, "Appointment.participant", "GP Connect needs the patient as a participant")
	need(location, "Appointment.participant", "GP Connect needs the location as a participant")
	m["participant"] = parts
	if len(problems) > 0 {
		return nil, fmt.Errorf("gpconnect: the Appointment cannot be sent to GP Connect: %s", strings.Join(problems, "; "))
	}
	return m, nil
}

// bookingOrganization returns the contained STU3 Organization naming the
// booking organisation by its ODS code.
func bookingOrganization(o *fhir.Organization) (map[string]any, error) {
	if o == nil {
		return nil, errors.New("booking organisation: GP Connect needs the organisation making the booking")
	}
	var ods string
	for _, id := range o.Identifier {
		if id.System.Get() == odsOrgSystem {
			ods = id.Value.Get()
		}
	}
	if ods == "" {
		return nil, errors.New("booking organisation: it has no ODS code (" + odsOrgSystem + ")")
	}
	org := map[string]any{
		"resourceType": "Organization",
		"id":           "1",
		"meta":         map[string]any{"profile": []any{gpcOrganizationProfile}},
		"identifier":   []any{map[string]any{"system": odsOrgSystem, "value": ods}},
	}
	if n := o.Name.Get(); n != "" {
		org["name"] = n
	}
	var telecom []any
	for _, t := range o.Telecom {
		if t.Value.Get() != "" {
			cp := map[string]any{"value": t.Value.Get()}
			if s := t.System.Get(); s != "" {
				cp["system"] = s
			}
			telecom = append(telecom, cp)
		}
	}
	if len(telecom) > 0 {
		org["telecom"] = telecom
	}
	return org, nil
}

// ProviderID returns the reference by which the provider at base knows a
// resource imported from it by ImportFrom, such as "Slot/4242", from the
// resource's type and identifiers; ok is false when it has none from base.
// It serves Booking.ProviderReference once the caller has read the
// referenced resource.
func ProviderID(base, stu3Type string, ids []*fhir.Identifier) (ref string, ok bool) {
	system := strings.TrimSuffix(base, "/") + "/" + stu3Type
	for _, id := range ids {
		if id.System.Get() == system && id.Value.Get() != "" {
			return stu3Type + "/" + id.Value.Get(), true
		}
	}
	return "", false
}

func fhirText(cc *fhir.CodeableConcept) string {
	if cc == nil {
		return ""
	}
	if t := cc.Text.Get(); t != "" {
		return t
	}
	for _, c := range cc.Coding {
		if d := c.Display.Get(); d != "" {
			return d
		}
	}
	return ""
}
