package gpconnect

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

// appointmentR4 is an Appointment as carefhir holds it, matching the GP
// Connect 1.2.8 request examples.
const appointmentR4 = `{"resourceType":"Appointment","id":"a1","status":"booked",
	"description":"Free text description.","comment":"Free text comment.",
	"reasonCode":[{"text":"review"}],"specialty":[{"text":"general practice"}],
	"start":"2017-05-30T10:00:00+01:00","end":"2017-05-30T10:25:00+01:00","created":"2017-05-25T13:48:41+01:00",
	"slot":[{"reference":"Slot/s1"}],
	"participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"},{"actor":{"reference":"Location/l1"},"status":"accepted"}]}`

const bookingOrgR4 = `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Z100"}],
	"name":"North Ambulance Service","telecom":[{"system":"phone","value":"01111222333"}]}`

// providerIDs are the provider's ids of what appointmentR4 references.
var providerIDs = map[string]string{"Slot/s1": "Slot/1", "Patient/p1": "Patient/1", "Location/l1": "Location/32", "Practitioner/d1": "Practitioner/18"}

func booking(t *testing.T) Booking {
	org, err := fhirjson.UnmarshalAs([]byte(bookingOrgR4), "Organization")
	if err != nil {
		t.Fatal(err)
	}
	return Booking{
		Organization: org.(*fhir.Organization),
		ProviderReference: func(ref string) (string, bool) {
			p, ok := providerIDs[ref]
			return p, ok
		},
	}
}

func appointment(t *testing.T, edit func(m map[string]any)) *fhir.Appointment {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(appointmentR4), &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	r, err := fhirjson.UnmarshalAs(b, "Appointment")
	if err != nil {
		t.Fatal(err)
	}
	return r.(*fhir.Appointment)
}

// sameJSON compares got with the example, without what the requests
// leave to the provider or to HTTP (the contained Organization's type and
// the version id, which travels in If-Match).
func sameJSON(t *testing.T, got []byte, example string, sameOrg bool) {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fixture(t, example), &w); err != nil {
		t.Fatal(err)
	}
	delete(w["contained"].([]any)[0].(map[string]any), "type")
	if !sameOrg {
		// The example books for another organisation than bookingOrgR4.
		delete(g, "contained")
		delete(w, "contained")
	}
	delete(w["meta"].(map[string]any), "versionId")
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		t.Errorf("request differs from %s:\n got %s\nwant %s", example, gb, wb)
	}
}

func TestBookingRequests(t *testing.T) {
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	b := booking(t)
	book, err := BookingRequest(appointment(t, nil), b)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, book, "1.2.8-release/appointments/book-appt-request-payload-1.json", true)
	if issues := im.validate(book); len(issues) > 0 {
		t.Errorf("the booking is not valid STU3: %v", issues)
	}

	amended := appointment(t, func(m map[string]any) {
		m["description"] = "Free text description updated."
		m["participant"] = append(m["participant"].([]any), map[string]any{"actor": map[string]any{"reference": "Practitioner/d1"}, "status": "accepted"})
	})
	amend, err := AmendRequest(amended, "9", b)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, amend, "1.2.8-release/appointments/amend-appt-request-payload-1.json", false)

	cancelled := appointment(t, func(m map[string]any) {
		m["description"] = "Free text description updated."
		m["cancelationReason"] = map[string]any{"text": "Free text cancellation reason."}
	})
	cancel, err := CancelRequest(cancelled, "9", "", b)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, cancel, "1.2.8-release/appointments/cancel-appt-request-payload-1.json", false)
}

// TestBookingRoundTrip: R4 Appointment → GP Connect booking → R4.
func TestBookingRoundTrip(t *testing.T) {
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	a := appointment(t, nil)
	book, err := BookingRequest(a, booking(t))
	if err != nil {
		t.Fatal(err)
	}
	res := im.Import(book)
	if res.Failed() {
		t.Fatalf("refused: %s", firstError(res))
	}
	checkImport(t, res)
	if errs := validate(t, res); len(errs) > 0 {
		t.Fatalf("does not validate: %v", errs)
	}
	var back *fhir.Appointment
	var org *fhir.Organization
	for _, e := range res.Bundle.Entry {
		switch r := e.Resource.(type) {
		case *fhir.Appointment:
			back = r
		case *fhir.Organization:
			org = r
		}
	}
	if back == nil || org == nil {
		t.Fatalf("want an Appointment and its booking Organization, got %d entries", len(res.Bundle.Entry))
	}
	for _, c := range []struct{ name, got, want string }{
		{"status", back.Status.Get(), a.Status.Get()},
		{"start", back.Start.Get(), a.Start.Get()},
		{"end", back.End.Get(), a.End.Get()},
		{"created", back.Created.Get(), a.Created.Get()},
		{"description", back.Description.Get(), a.Description.Get()},
		{"comment", back.Comment.Get(), a.Comment.Get()},
		{"booking organisation ODS code", org.Identifier[0].Value.Get(), "Z100"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q after the round trip, want %q", c.name, c.got, c.want)
		}
	}
	if len(back.Participant) != len(a.Participant) || len(back.Slot) != len(a.Slot) {
		t.Errorf("%d participants and %d slots after the round trip, want %d and %d", len(back.Participant), len(back.Slot), len(a.Participant), len(a.Slot))
	}
	var ext string
	for _, e := range back.Extension {
		if e.Url == ukCoreBookingOrg && e.ValueReference != nil {
			ext = e.ValueReference.Reference.Get()
		}
	}
	var orgURL string
	for _, e := range res.Bundle.Entry {
		if e.Resource == fhir.Resource(org) {
			orgURL = e.FullUrl.Get()
		}
	}
	if ext == "" || ext != orgURL {
		t.Errorf("the booking organisation extension refers to %q, want the Organization entry %q", ext, orgURL)
	}
	// What GP Connect cannot carry is not sent, so it cannot come back.
	if len(back.ReasonCode) != 0 || len(back.Specialty) != 0 {
		t.Error("reason or specialty were sent in the booking")
	}
}

func TestBookingRefused(t *testing.T) {
	b := booking(t)
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		b    Booking
		want string
	}{
		{"long description", func(m map[string]any) { m["description"] = strings.Repeat("x", 101) }, b, "Appointment.description: GP Connect allows 100 characters, this has 101"},
		{"no slot", func(m map[string]any) { delete(m, "slot") }, b, "Appointment.slot"},
		{"no created", func(m map[string]any) { delete(m, "created") }, b, "Appointment.created"},
		{"unknown slot", func(m map[string]any) { m["slot"] = []any{map[string]any{"reference": "Slot/zz"}} }, b, `Appointment.slot[0]: the provider's id of "Slot/zz" is not known`},
		{"no location", func(m map[string]any) { m["participant"] = m["participant"].([]any)[:1] }, b, "GP Connect needs the location"},
		{"no booking organisation", nil, Booking{ProviderReference: b.ProviderReference}, "booking organisation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BookingRequest(appointment(t, tc.edit), tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if _, err := CancelRequest(appointment(t, nil), "9", "", b); err == nil || !strings.Contains(err.Error(), "cancellation reason") {
		t.Errorf("a cancellation without a reason: got %v", err)
	}
}

// TestBookingFromSlotSearch: the free slots a provider answers with are
// imported keeping the provider's ids, and a booking made on them names
// the provider's Slot and Location.
func TestBookingFromSlotSearch(t *testing.T) {
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://provider.example/B82617/STU3/1/gpconnect/fhir"
	res := im.ImportFrom(base, fixture(t, "1.2.8-release/appointments/search-for-free-slots-response-payload-1.json"))
	if res.Failed() {
		t.Fatalf("refused: %s", firstError(res))
	}
	checkImport(t, res)
	if errs := validate(t, res); len(errs) > 0 {
		t.Fatalf("does not validate: %v", errs)
	}
	if !hasEntry(res.Bundle, "Slot?identifier=https%3A%2F%2Fprovider.example%2FB82617%2FSTU3%2F1%2Fgpconnect%2Ffhir%2FSlot%7C1584") {
		t.Fatal("the Slot is not keyed on the provider's id")
	}
	// The imported resources by full URL, standing in for the store.
	byURL := map[string]fhir.Resource{}
	var slot, location string
	for _, e := range res.Bundle.Entry {
		byURL[e.FullUrl.Get()] = e.Resource
		switch e.Resource.(type) {
		case *fhir.Slot:
			if slot == "" {
				slot = e.FullUrl.Get()
			}
		case *fhir.Location:
			location = e.FullUrl.Get()
		}
	}
	a := appointment(t, func(m map[string]any) {
		m["slot"] = []any{map[string]any{"reference": slot}}
		m["participant"] = []any{
			map[string]any{"actor": map[string]any{"reference": "Patient/p1"}, "status": "accepted"},
			map[string]any{"actor": map[string]any{"reference": location}, "status": "accepted"},
		}
	})
	b := booking(t)
	b.ProviderReference = func(ref string) (string, bool) {
		switch r := byURL[ref].(type) {
		case *fhir.Slot:
			return ProviderID(base, "Slot", r.Identifier)
		case *fhir.Location:
			return ProviderID(base, "Location", r.Identifier)
		}
		p, ok := providerIDs[ref]
		return p, ok
	}
	book, err := BookingRequest(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Slot        []struct{ Reference string }
		Participant []struct{ Actor struct{ Reference string } }
	}
	if err := json.Unmarshal(book, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Slot) != 1 || m.Slot[0].Reference != "Slot/1584" || len(m.Participant) != 2 || m.Participant[1].Actor.Reference != "Location/17" {
		t.Errorf("the booking names %+v and %+v, want Slot/1584 and Location/17", m.Slot, m.Participant)
	}
}
