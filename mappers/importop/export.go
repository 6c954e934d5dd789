package importop

import (
	"bytes"
	"context"
	"net/http"
	"net/url"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	mcsv "carefhir/mappers/csv"
	"carefhir/mappers/gpconnect"
	"carefhir/mappers/pds"
	"carefhir/operation"
	"carefhir/store"
)

// recordSearches are the searches that gather a patient's
// care-coordination record, each with the parameter naming the patient.
var recordSearches = []struct{ typ, param string }{
	{"CarePlan", "subject"},
	{"Goal", "subject"},
	{"CareTeam", "subject"},
	{"Appointment", "patient"},
	{"Observation", "subject"},
	{"QuestionnaireResponse", "subject"},
	{"Task", "subject"},
}

func invokeExport(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	if err := inv.Only("format", "provider", "organization"); err != nil {
		return nil, err
	}
	if inv.Type == "Patient" {
		// They say where an Appointment is booked: a Patient's export
		// given them would not be what was asked for.
		for _, name := range []string{"provider", "organization"} {
			if len(inv.Params(name)) > 0 {
				return nil, operation.Errorf(http.StatusBadRequest, "invalid", "Parameters.parameter.where(name='"+name+"')", "parameter %s applies to the $export-gp of an Appointment, not of a Patient", name)
			}
		}
	}
	format, err := inv.Text("format")
	if err != nil {
		return nil, err
	}
	switch {
	case inv.Type == "Patient" && (format == "bundle" || format == ""):
		b, err := PatientRecord(ctx, inv.Store, inv.Base, inv.ID)
		if err != nil {
			return nil, err
		}
		return &operation.Result{Resource: b}, nil
	case inv.Type == "Patient" && format == "csv":
		var buf bytes.Buffer
		if err := CodedEntries(ctx, inv.Store, inv.ID, &buf); err != nil {
			return nil, err
		}
		return &operation.Result{Body: buf.Bytes(), ContentType: "text/csv; charset=utf-8"}, nil
	case inv.Type == "Appointment" && (format == "gpconnect" || format == ""):
		provider, err := inv.Text("provider")
		if err != nil {
			return nil, err
		}
		ods, err := inv.Text("organization")
		if err != nil {
			return nil, err
		}
		body, err := Booking(ctx, inv.Store, inv.ID, provider, ods)
		if err != nil {
			return nil, err
		}
		return &operation.Result{Body: body, ContentType: "application/fhir+json; fhirVersion=3.0"}, nil
	}
	want := "bundle or csv"
	if inv.Type == "Appointment" {
		want = "gpconnect"
	}
	return nil, operation.Errorf(http.StatusBadRequest, "value", "format", "format %q is not one %s/$export-gp writes: use %s", format, inv.Type, want)
}

// patient reads the Patient id: 404 when it was never held, 410 when it
// was deleted.
func patient(ctx context.Context, st operation.Store, id string) (*fhir.Patient, error) {
	v, err := operation.ReadInstance(ctx, st, "Patient", id)
	if err != nil {
		return nil, err
	}
	// Read as served: a version an older release stored with a date on a
	// day its month lacks is exported as it is held.
	res, err := fhirjson.UnmarshalStoredAs(v.JSON, "Patient")
	if err != nil {
		return nil, err
	}
	return res.(*fhir.Patient), nil
}

// eachRecord calls fn with every resource of the patient's
// care-coordination record.
func eachRecord(ctx context.Context, st operation.Store, id string, fn func(v *store.Version) error) error {
	for _, s := range recordSearches {
		if err := st.Each(ctx, s.typ, url.Values{s.param: {"Patient/" + id}}, fn); err != nil {
			return err
		}
	}
	return nil
}

// PatientRecord returns the care-coordination record of Patient id as a
// collection Bundle: the Patient (redacted when its record is restricted,
// as is a restricted Patient another resource of the record contains),
// then its care plans, goals, care teams, appointments, observations,
// questionnaire responses and tasks. Each entry's fullUrl is the
// resource's URL under base, the server's public base: R4 wants it
// absolute, and the references of the record (Patient/id) resolve against
// the base it starts with.
func PatientRecord(ctx context.Context, st operation.Store, base, id string) (*fhir.Bundle, error) {
	p, err := patient(ctx, st, id)
	if err != nil {
		return nil, err
	}
	b := &fhir.Bundle{Type: fhir.NewCode("collection")}
	b.Entry = append(b.Entry, &fhir.BundleEntry{FullUrl: fhir.NewUri(base + "/Patient/" + id), Resource: pds.Redact(p)})
	err = eachRecord(ctx, st, id, func(v *store.Version) error {
		res, err := fhirjson.UnmarshalStoredAs(v.JSON, v.Type)
		if err != nil {
			return err
		}
		b.Entry = append(b.Entry, &fhir.BundleEntry{FullUrl: fhir.NewUri(base + "/" + v.Type + "/" + v.ID), Resource: pds.RedactAll(res)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// CodedEntries writes the coded-entries CSV of Patient id: a row per
// coded observation, care plan and goal, for upload to a GP system.
func CodedEntries(ctx context.Context, st operation.Store, id string, w *bytes.Buffer) error {
	p, err := patient(ctx, st, id)
	if err != nil {
		return err
	}
	nhs := ""
	for _, ident := range p.Identifier {
		if ident.System.Get() == "https://fhir.nhs.uk/Id/nhs-number" {
			nhs = ident.Value.Get()
		}
	}
	if nhs == "" {
		return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "Patient.identifier", "Patient/%s has no NHS number, which GP systems match rows on", id)
	}
	l, err := mcsv.ExportLayoutNamed("coded-entries")
	if err != nil {
		return err
	}
	ew, err := mcsv.NewEntryWriter(w, l)
	if err != nil {
		return err
	}
	err = eachRecord(ctx, st, id, func(v *store.Version) error {
		switch v.Type {
		case "Observation", "CarePlan", "Goal":
		default:
			return nil
		}
		res, err := fhirjson.UnmarshalStoredAs(v.JSON, v.Type)
		if err != nil {
			return err
		}
		_, err = ew.Write(nhs, res)
		return err
	})
	if err != nil {
		return err
	}
	return ew.Flush()
}

// Booking returns the GP Connect booking request of Appointment id, for
// the provider at base provider, booked by the organisation of ODS code
// ods. The references of the appointment become the provider's ids of the
// resources, which their imports from that provider recorded.
func Booking(ctx context.Context, st operation.Store, id, provider, ods string) ([]byte, error) {
	if provider == "" || ods == "" {
		return nil, operation.Errorf(http.StatusBadRequest, "required", "provider", "a GP Connect booking needs provider (the provider's FHIR base) and organization (the booking organisation's ODS code)")
	}
	if !mappers.ODSCode(ods) {
		// Searched for as it is, "A1,B2" would find either organisation,
		// and the booking would name one the caller did not choose.
		return nil, operation.Errorf(http.StatusBadRequest, "value", "organization", "organization %q is not an ODS code (3 to 10 upper-case letters and digits)", ods)
	}
	v, err := operation.ReadInstance(ctx, st, "Appointment", id)
	if err != nil {
		return nil, err
	}
	res, err := fhirjson.UnmarshalStoredAs(v.JSON, "Appointment")
	if err != nil {
		return nil, err
	}
	orgs, err := st.Search(ctx, "Organization", url.Values{"identifier": {"https://fhir.nhs.uk/Id/ods-organization-code|" + ods}})
	if err != nil {
		return nil, err
	}
	if len(orgs.Matches) == 0 {
		return nil, operation.Errorf(http.StatusUnprocessableEntity, "not-found", "organization", "no Organization has ODS code %s", ods)
	}
	org, err := fhirjson.UnmarshalStoredAs(orgs.Matches[0].JSON, "Organization")
	if err != nil {
		return nil, err
	}
	b := gpconnect.Booking{
		Organization: org.(*fhir.Organization),
		ProviderReference: func(ref string) (string, bool) {
			return providerRef(ctx, st, provider, ref)
		},
	}
	body, err := gpconnect.BookingRequest(res.(*fhir.Appointment), b)
	if err != nil {
		return nil, operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "Appointment", "%v", err)
	}
	return body, nil
}

// providerRef reads the resource ref names and returns the provider's id
// of it.
func providerRef(ctx context.Context, st operation.Store, provider, ref string) (string, bool) {
	typ, id, ok := cut(ref)
	if !ok {
		return "", false
	}
	v, err := st.Read(ctx, typ, id)
	if err != nil || v.Deleted {
		return "", false
	}
	res, err := fhirjson.UnmarshalStoredAs(v.JSON, typ)
	if err != nil {
		return "", false
	}
	var ids []*fhir.Identifier
	switch r := res.(type) {
	case *fhir.Slot:
		ids = r.Identifier
	case *fhir.Location:
		ids = r.Identifier
	case *fhir.Patient:
		ids = r.Identifier
	case *fhir.Practitioner:
		ids = r.Identifier
	}
	return gpconnect.ProviderID(provider, typ, ids)
}

func cut(ref string) (typ, id string, ok bool) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:], i > 0 && i < len(ref)-1
		}
	}
	return "", "", false
}
