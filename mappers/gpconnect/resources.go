package gpconnect

import (
	"fmt"
	"slices"
	"strings"

	"carefhir/profiles"
)

// rule maps one top-level STU3 element into out.
type rule func(c *conv, out map[string]any, v any, path string)

// extRule maps one resource-level STU3 extension into out.
type extRule func(c *conv, out map[string]any, ext map[string]any, path string)

// mapping is how one STU3 resource type becomes an R4 one. An element
// without a rule is reported as not mapped; id, meta, text, identifier,
// extension and contained are handled for every type (conv.resource).
type mapping struct {
	r4Type     string
	elements   map[string]rule
	extensions map[string]extRule
	finish     func(c *conv, out map[string]any)
}

// same returns rules carrying each named element unchanged.
func same(names ...string) map[string]rule {
	m := map[string]rule{}
	for _, n := range names {
		m[n] = copied
	}
	return m
}

// with adds rules to m.
func with(m map[string]rule, more map[string]rule) map[string]rule {
	for k, v := range more {
		m[k] = v
	}
	return m
}

// Code systems of the statuses R4 made CodeableConcepts.
const (
	conditionClinical    = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	conditionVerStatus   = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	allergyClinical      = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	allergyVerification  = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	conditionAssertedExt = "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"
)

// mappings holds the STU3 types GP Connect sends that carefhir imports.
var mappings = map[string]*mapping{
	"Patient": {
		r4Type: "Patient",
		elements: same("active", "name", "telecom", "gender", "birthDate", "deceasedBoolean", "deceasedDateTime",
			"address", "maritalStatus", "multipleBirthBoolean", "multipleBirthInteger", "photo", "contact",
			"communication", "generalPractitioner", "managingOrganization", "link"),
		extensions: map[string]extRule{
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSCommunication-1": nhsCommunication,
		},
	},
	"Organization": {
		r4Type:   "Organization",
		elements: same("active", "type", "name", "alias", "telecom", "address", "partOf", "contact", "endpoint"),
		extensions: map[string]extRule{
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MainLocation-1": referenceExtension(ukCoreMainLocation),
			"https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-MainLocation-1": referenceExtension(ukCoreMainLocation),
		},
	},
	"Practitioner": {
		r4Type:   "Practitioner",
		elements: same("active", "name", "telecom", "address", "gender", "birthDate", "photo", "qualification", "communication"),
	},
	"PractitionerRole": {
		r4Type: "PractitionerRole",
		elements: same("active", "period", "practitioner", "organization", "code", "specialty", "location",
			"healthcareService", "telecom", "availableTime", "notAvailable", "availabilityExceptions", "endpoint"),
	},
	"Location": {
		r4Type: "Location",
		elements: with(same("status", "operationalStatus", "name", "alias", "description", "mode", "telecom",
			"address", "physicalType", "position", "managingOrganization", "partOf", "endpoint"), map[string]rule{
			"type": listed("type"),
		}),
	},
	"HealthcareService": {
		r4Type: "HealthcareService",
		elements: with(same("active", "providedBy", "type", "specialty", "location", "name", "comment", "extraDetails",
			"photo", "telecom", "coverageArea", "serviceProvisionCode", "characteristic", "referralMethod",
			"appointmentRequired", "availableTime", "notAvailable", "availabilityExceptions", "endpoint"), map[string]rule{
			"category":        listed("category"),
			"eligibility":     eligibility,
			"eligibilityNote": dropped("R4 keeps an eligibility note only beside a coded eligibility"),
			"programName":     programName,
		}),
	},
	"Condition": {
		r4Type: "Condition",
		elements: with(same("category", "severity", "code", "bodySite", "subject", "onsetDateTime", "onsetAge",
			"onsetPeriod", "onsetRange", "onsetString", "abatementDateTime", "abatementAge", "abatementPeriod",
			"abatementRange", "abatementString", "asserter", "stage", "evidence", "note"), map[string]rule{
			"clinicalStatus":     concept("clinicalStatus", conditionClinical, "active", "recurrence", "relapse", "inactive", "remission", "resolved"),
			"verificationStatus": concept("verificationStatus", conditionVerStatus, "unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"),
			"context":            renamed("encounter"),
			"assertedDate":       assertedDate,
			"abatementBoolean":   abatementBoolean,
		}),
	},
	"AllergyIntolerance": {
		r4Type: "AllergyIntolerance",
		elements: with(same("type", "category", "criticality", "code", "patient", "onsetDateTime", "onsetAge",
			"onsetPeriod", "onsetRange", "onsetString", "recorder", "asserter", "lastOccurrence", "note", "reaction"), map[string]rule{
			"clinicalStatus":     concept("clinicalStatus", allergyClinical, "active", "inactive", "resolved"),
			"verificationStatus": concept("verificationStatus", allergyVerification, "unconfirmed", "confirmed", "refuted", "entered-in-error"),
			"assertedDate":       renamed("recordedDate"),
		}),
		extensions: map[string]extRule{
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-AllergyIntoleranceEnd-1": allergyEnd,
			"http://hl7.org/fhir/StructureDefinition/encounter-associatedEncounter":                          associatedEncounter,
		},
		finish: allergyStatus,
	},
	"Medication": {
		r4Type: "Medication",
		elements: with(same("code", "status", "manufacturer", "form"), map[string]rule{
			"isBrand":          dropped("R4 Medication has no isBrand"),
			"isOverTheCounter": dropped("R4 Medication has no isOverTheCounter"),
			"ingredient":       partsRenamed(map[string]string{"amount": "strength"}),
			"package":          dropped("R4 Medication has no package (it moved to MedicationKnowledge)"),
		}),
	},
	"MedicationStatement": {
		r4Type: "MedicationStatement",
		elements: with(same("basedOn", "partOf", "status", "category", "medicationCodeableConcept", "medicationReference",
			"effectiveDateTime", "effectivePeriod", "dateAsserted", "informationSource", "subject", "derivedFrom",
			"reasonCode", "reasonReference", "note"), map[string]rule{
			"context":        renamed("context"),
			"taken":          taken,
			"reasonNotTaken": renamed("statusReason"),
			"dosage":         dosages("dosage"),
		}),
		finish: takenStatus,
	},
	"MedicationRequest": {
		r4Type: "MedicationRequest",
		elements: with(same("basedOn", "groupIdentifier", "status", "intent", "priority", "medicationCodeableConcept",
			"medicationReference", "subject", "supportingInformation", "authoredOn", "recorder", "reasonCode",
			"reasonReference", "note", "dispenseRequest", "priorPrescription", "detectedIssue", "eventHistory"), map[string]rule{
			"category":          listed("category"),
			"context":           renamed("encounter"),
			"requester":         agent("requester"),
			"dosageInstruction": dosages("dosageInstruction"),
			"substitution":      substitution,
			"definition":        dropped("R4 instantiates canonical definitions, not references"),
		}),
		extensions: map[string]extRule{
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescriptionType-1": prescriptionType,
		},
	},
	"Immunization": {
		r4Type: "Immunization",
		elements: with(same("status", "vaccineCode", "patient", "primarySource", "reportOrigin", "location", "manufacturer",
			"lotNumber", "expirationDate", "site", "route", "doseQuantity", "note"), map[string]rule{
			"notGiven":            notGiven,
			"date":                renamed("occurrenceDateTime"),
			"encounter":           copied,
			"practitioner":        immunizationPerformers,
			"explanation":         explanation,
			"reaction":            copied,
			"vaccinationProtocol": protocols,
		}),
		extensions: map[string]extRule{
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-DateRecorded-1": dateRecorded,
			"https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-DateRecorded-1": dateRecorded,
		},
		finish: immunizationFinish,
	},
	"Observation": {
		r4Type: "Observation",
		elements: with(same("basedOn", "status", "category", "code", "subject", "effectiveDateTime", "effectivePeriod",
			"issued", "performer", "valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueRange",
			"valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod", "dataAbsentReason",
			"bodySite", "method", "specimen", "device", "referenceRange"), map[string]rule{
			"context":         renamed("encounter"),
			"interpretation":  listed("interpretation"),
			"comment":         noted,
			"related":         related,
			"component":       components,
			"valueAttachment": dropped("R4 Observation cannot hold an attachment"),
		}),
	},
	"DiagnosticReport": {
		r4Type: "DiagnosticReport",
		elements: with(same("basedOn", "status", "code", "subject", "effectiveDateTime", "effectivePeriod", "issued",
			"specimen", "result", "imagingStudy", "conclusion", "presentedForm"), map[string]rule{
			"category":       listed("category"),
			"context":        renamed("encounter"),
			"performer":      reportPerformers,
			"codedDiagnosis": renamed("conclusionCode"),
			"image":          dropped("R4 DiagnosticReport keys images to Media resources, which GP Connect does not send"),
		}),
	},
	"Specimen": {
		r4Type: "Specimen",
		elements: same("accessionIdentifier", "status", "type", "subject", "receivedTime", "parent", "request",
			"collection", "processing", "container", "note"),
	},
	"Encounter": {
		r4Type: "Encounter",
		elements: with(same("status", "statusHistory", "class", "classHistory", "type", "priority", "subject",
			"episodeOfCare", "participant", "appointment", "period", "length", "account",
			"hospitalization", "location", "serviceProvider", "partOf"), map[string]rule{
			"diagnosis":        partsRenamed(map[string]string{"role": "use"}),
			"reason":           renamed("reasonCode"),
			"incomingReferral": renamed("basedOn"),
		}),
		finish: encounterClass,
	},
	"ReferralRequest": {
		r4Type: "ServiceRequest",
		elements: with(same("basedOn", "replaces", "groupIdentifier", "intent", "priority", "subject",
			"occurrenceDateTime", "occurrencePeriod", "authoredOn", "reasonCode", "reasonReference", "note",
			"relevantHistory"), map[string]rule{
			"status":           recoded("status", referralStatus),
			"type":             listed("category"),
			"serviceRequested": serviceRequested,
			"context":          renamed("encounter"),
			"requester":        agent("requester"),
			"specialty":        renamed("performerType"),
			"recipient":        renamed("performer"),
			"description":      noted,
			"supportingInfo":   renamed("supportingInfo"),
			"definition":       dropped("R4 instantiates canonical definitions, not references"),
		}),
	},
	"ProcedureRequest": {
		r4Type: "ServiceRequest",
		elements: with(same("basedOn", "replaces", "requisition", "intent", "priority", "doNotPerform", "category",
			"code", "subject", "occurrenceDateTime", "occurrencePeriod", "occurrenceTiming", "asNeededBoolean",
			"asNeededCodeableConcept", "authoredOn", "performerType", "reasonCode", "reasonReference",
			"supportingInfo", "specimen", "bodySite", "note", "relevantHistory"), map[string]rule{
			"status":     recoded("status", referralStatus),
			"context":    renamed("encounter"),
			"requester":  agent("requester"),
			"performer":  listed("performer"),
			"definition": dropped("R4 instantiates canonical definitions, not references"),
		}),
	},
	"List": {
		r4Type: "List",
		elements: same("status", "mode", "title", "code", "subject", "encounter", "date", "source", "orderedBy",
			"note", "entry", "emptyReason"),
	},
	"Schedule": {
		r4Type: "Schedule",
		elements: with(same("active", "serviceType", "specialty", "actor", "planningHorizon", "comment"), map[string]rule{
			"serviceCategory": listed("serviceCategory"),
		}),
	},
	"Slot": {
		r4Type: "Slot",
		elements: with(same("serviceType", "specialty", "appointmentType", "schedule", "status", "start", "end",
			"overbooked", "comment"), map[string]rule{
			"serviceCategory": listed("serviceCategory"),
		}),
		extensions: map[string]extRule{
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2": deliveryChannel,
		},
	},
	"Appointment": {
		r4Type: "Appointment",
		elements: with(same("status", "serviceType", "specialty", "appointmentType", "priority", "description",
			"supportingInformation", "start", "end", "minutesDuration", "slot", "created", "comment", "participant",
			"requestedPeriod"), map[string]rule{
			"serviceCategory":  listed("serviceCategory"),
			"reason":           renamed("reasonCode"),
			"indication":       renamed("reasonReference"),
			"incomingReferral": renamed("basedOn"),
		}),
		extensions: map[string]extRule{
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1":           referenceExtension(ukCoreBookingOrg),
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1": cancellationReason,
			"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2":               deliveryChannel,
		},
	},
}

// referralStatus maps ReferralRequest and ProcedureRequest statuses to
// ServiceRequest's.
var referralStatus = map[string]string{
	"draft": "draft", "active": "active", "suspended": "on-hold", "cancelled": "revoked",
	"completed": "completed", "entered-in-error": "entered-in-error", "unknown": "unknown",
}

// nhsCommunication carries the language and whether it is preferred into
// Patient.communication, and the modes of communication and the
// proficiency into the proficiency extension there, where UK Core has
// them (R4's patient-proficiency); the interpreter need goes on the
// Patient (interpreterRequired).
func nhsCommunication(c *conv, out map[string]any, ext map[string]any, path string) {
	comm := map[string]any{}
	var level map[string]any
	var modes []any
	for i, x := range asList(ext["extension"]) {
		sub := object(x)
		p := fmt.Sprintf("%s.extension[%d]", path, i)
		switch sub["url"] {
		case "language":
			lang := c.value(sub["valueCodeableConcept"], p+".valueCodeableConcept")
			toBCP47(lang)
			put(comm, "language", lang)
		case "preferred":
			put(comm, "preferred", sub["valueBoolean"])
		case "interpreterRequired":
			if b, ok := sub["valueBoolean"].(bool); ok {
				interpreterRequired(out, b)
			}
		case "modeOfCommunication":
			if cd := ability(sub["valueCodeableConcept"], careConnectAbilityMode, v3AbilityMode, "ESGN", "ESP", "EWR", "RSGN", "RSP", "RWR"); cd != nil {
				modes = append(modes, map[string]any{"url": "type", "valueCoding": cd})
			} else {
				c.warn(p, "a mode of communication not coded in %s is not carried", careConnectAbilityMode)
			}
		case "communicationProficiency":
			if cd := ability(sub["valueCodeableConcept"], careConnectAbilityProficiency, v3AbilityProficiency, "E", "F", "G", "P"); cd != nil {
				level = map[string]any{"url": "level", "valueCoding": cd}
			} else {
				c.warn(p, "a proficiency not coded in %s is not carried", careConnectAbilityProficiency)
			}
		default:
			c.warn(p, "%v of the NHS communication extension has no UK Core equal", sub["url"])
		}
	}
	if level != nil || len(modes) > 0 {
		parts := modes
		if level != nil {
			parts = append([]any{level}, modes...)
		}
		comm["extension"] = []any{map[string]any{"url": proficiencyURL, "extension": parts}}
	}
	if comm["language"] == nil {
		if len(comm) > 0 {
			c.warn(path, "a communication preference without a language is not carried")
		}
		return
	}
	out["communication"] = append(asList(out["communication"]), comm)
}

// bcp47 is the code system of languages UK Core binds
// Patient.communication.language to (all-languages).
const bcp47 = "urn:ietf:bcp:47"

// toBCP47 recodes in place the codings of Care Connect's human languages
// in the CodeableConcept cc whose code is an ISO 639 language code (two
// or three letters), which BCP 47 takes as it is: UK Core retired Care
// Connect's code system for BCP 47, and searches by language name BCP 47.
// Its other codes (q1 to q5, for sign languages and Braille) are no BCP 47
// tags and are kept as sent.
func toBCP47(cc any) {
	for _, x := range asList(object(cc)["coding"]) {
		cd := object(x)
		code, _ := cd["code"].(string)
		if cd["system"] == profiles.CareConnectLanguageSystem && len(code) >= 2 && len(code) <= 3 && strings.Trim(strings.ToLower(code), "abcdefghijklmnopqrstuvwxyz") == "" {
			cd["system"], cd["code"] = bcp47, strings.ToLower(code)
		}
	}
}

// The codes of how, and how well, a person uses a language: CareConnect
// copied HL7 v3's into code systems of its own; R4's proficiency
// extension, which UK Core puts on Patient.communication, binds v3's.
const (
	proficiencyURL                = "http://hl7.org/fhir/StructureDefinition/patient-proficiency"
	careConnectAbilityMode        = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-LanguageAbilityMode-1"
	careConnectAbilityProficiency = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-LanguageAbilityProficiency-1"
	v3AbilityMode                 = r4CodeSystems + "v3-LanguageAbilityMode"
	v3AbilityProficiency          = r4CodeSystems + "v3-LanguageAbilityProficiency"
)

// ability returns the coding of code system from in the CodeableConcept
// v as a Coding of code system to, which holds the same codes, or nil
// when it has none of them.
func ability(v any, from, to string, codes ...string) map[string]any {
	for _, x := range asList(object(v)["coding"]) {
		cd := object(x)
		code, _ := cd["code"].(string)
		if cd["system"] == from && slices.Contains(codes, code) {
			out := map[string]any{"system": to, "code": code}
			put(out, "display", cd["display"])
			return out
		}
	}
	return nil
}

// interpreterRequiredURL is the R4 core extension saying whether the
// patient needs an interpreter, which GP Connect says per language.
const interpreterRequiredURL = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"

// interpreterRequired records on the Patient out whether an interpreter
// is needed: R4 says it once for the patient, so it is needed when GP
// Connect says so for any language.
func interpreterRequired(out map[string]any, needed bool) {
	for _, x := range asList(out["extension"]) {
		if ext := object(x); ext["url"] == interpreterRequiredURL {
			ext["valueBoolean"] = ext["valueBoolean"] == true || needed
			return
		}
	}
	out["extension"] = append(asList(out["extension"]), map[string]any{"url": interpreterRequiredURL, "valueBoolean": needed})
}

func eligibility(c *conv, out map[string]any, v any, path string) {
	if cc := c.value(v, path); cc != nil {
		out["eligibility"] = []any{map[string]any{"code": cc}}
	}
}

func programName(c *conv, out map[string]any, v any, path string) {
	for _, x := range asList(v) {
		if s, ok := x.(string); ok {
			out["program"] = append(asList(out["program"]), map[string]any{"text": s})
		}
	}
}

func assertedDate(c *conv, out map[string]any, v any, path string) {
	out["extension"] = append(asList(out["extension"]), map[string]any{"url": conditionAssertedExt, "valueDateTime": v})
}

func abatementBoolean(c *conv, out map[string]any, v any, path string) {
	if b, _ := v.(bool); b {
		c.warn(path, "not carried: R4 has no abatementBoolean; an abated condition is one whose clinicalStatus is inactive, remission or resolved")
	}
}

// allergyStatus applies R4's rule (ait-1) that clinicalStatus is present
// unless the allergy was entered in error: GP Connect's "no known
// allergies" entries and ended allergies may lack it.
func allergyStatus(c *conv, out map[string]any) {
	if out["clinicalStatus"] != nil {
		return
	}
	if vs := object(out["verificationStatus"]); vs != nil {
		for _, x := range asList(vs["coding"]) {
			if object(x)["code"] == "entered-in-error" {
				return
			}
		}
	}
	c.warn(c.ent.path+".clinicalStatus", "absent; R4 needs one unless the entry is in error, so it is recorded as active")
	out["clinicalStatus"] = map[string]any{"coding": []any{map[string]any{"system": allergyClinical, "code": "active"}}}
}

// taken reports the STU3 answers R4's status cannot hold. R4 says "not
// taken" with its status, which takenStatus sets once status is copied;
// "y" is what any other status says.
func taken(c *conv, out map[string]any, v any, path string) {
	switch v {
	case "y", "n":
	case "unk":
		// GP Connect's MedicationStatement requires unk of every provider:
		// it says nothing about this medication.
		c.info(path, "not carried: R4 MedicationStatement has no taken, and unk (which GP Connect always sends) leaves the status %v as it is", c.ent.src["status"])
	default:
		c.warn(path, "not carried: R4 MedicationStatement has no taken (%v); its status says whether the medication is taken", v)
	}
}

// takenStatus applies taken "n": R4 says that the patient is not taking
// the medication with the status not-taken, as the HL7 STU3 to R4 map
// does, unless the statement was entered in error.
func takenStatus(c *conv, out map[string]any) {
	if c.ent.src["taken"] == "n" && out["status"] != "entered-in-error" {
		out["status"] = "not-taken"
	}
}

func substitution(c *conv, out map[string]any, v any, path string) {
	s := object(v)
	r4 := map[string]any{}
	for _, k := range sortedKeys(s) {
		switch k {
		case "allowed":
			r4["allowedBoolean"] = s[k]
		case "reason":
			put(r4, "reason", c.value(s[k], path+".reason"))
		default:
			c.warn(path+"."+k, "not mapped")
		}
	}
	if len(r4) > 0 {
		out["substitution"] = r4
	}
}

// dosages carries STU3 Dosages, whose dose[x] and rate[x] R4 moved into
// doseAndRate.
func dosages(name string) rule {
	return func(c *conv, out map[string]any, v any, path string) {
		for i, x := range asList(v) {
			d := object(x)
			p := fmt.Sprintf("%s[%d]", path, i)
			r4 := map[string]any{}
			dr := map[string]any{}
			for _, k := range sortedKeys(d) {
				switch k {
				case "doseRange", "doseQuantity", "rateRatio", "rateRange", "rateQuantity":
					put(dr, k, c.value(d[k], p+"."+k))
				case "doseSimpleQuantity":
					put(dr, "doseQuantity", c.value(d[k], p+"."+k))
				case "rateSimpleQuantity":
					put(dr, "rateQuantity", c.value(d[k], p+"."+k))
				default:
					put(r4, k, c.value(d[k], p+"."+k))
				}
			}
			if len(dr) > 0 {
				r4["doseAndRate"] = []any{dr}
			}
			if len(r4) > 0 {
				out[name] = append(asList(out[name]), r4)
			}
		}
	}
}

// notGiven is applied by immunizationFinish once status is copied: the
// elements are walked in name order, and status would overwrite it.
func notGiven(*conv, map[string]any, any, string) {}

// immunizationPerformers carries practitioner {role, actor} as performer
// {function, actor}.
func immunizationPerformers(c *conv, out map[string]any, v any, path string) {
	for i, x := range asList(v) {
		p := fmt.Sprintf("%s[%d]", path, i)
		pr := object(x)
		r4 := map[string]any{}
		put(r4, "function", c.value(pr["role"], p+".role"))
		put(r4, "actor", c.value(pr["actor"], p+".actor"))
		if r4["actor"] == nil {
			c.warn(p, "a performer whose actor is not in the payload is not carried")
			continue
		}
		out["performer"] = append(asList(out["performer"]), r4)
	}
}

func explanation(c *conv, out map[string]any, v any, path string) {
	e := object(v)
	for _, k := range sortedKeys(e) {
		switch k {
		case "reason":
			put(out, "reasonCode", c.value(e[k], path+".reason"))
		case "reasonNotGiven":
			if l := asList(c.value(e[k], path+".reasonNotGiven")); len(l) > 0 {
				out["statusReason"] = l[0]
				if len(l) > 1 {
					c.warn(path+".reasonNotGiven[1]", "not carried: R4 has one status reason")
				}
			}
		default:
			c.warn(path+"."+k, "not mapped")
		}
	}
}

func protocols(c *conv, out map[string]any, v any, path string) {
	for i, x := range asList(v) {
		p := fmt.Sprintf("%s[%d]", path, i)
		pr := object(x)
		r4 := map[string]any{}
		for _, k := range sortedKeys(pr) {
			switch k {
			case "doseSequence":
				r4["doseNumberPositiveInt"] = pr[k]
			case "description":
				c.warn(p+"."+k, "not carried: R4 protocolApplied has no description")
			case "authority", "series":
				put(r4, k, c.value(pr[k], p+"."+k))
			case "targetDisease":
				put(r4, k, c.value(pr[k], p+"."+k))
			case "seriesDoses":
				r4["seriesDosesPositiveInt"] = pr[k]
			default:
				c.warn(p+"."+k, "not carried: R4 protocolApplied has no %s", k)
			}
		}
		if r4["doseNumberPositiveInt"] == nil {
			c.warn(p, "a protocol without a dose number is not carried: R4 needs one")
			continue
		}
		out["protocolApplied"] = append(asList(out["protocolApplied"]), r4)
	}
}

// immunizationFinish applies notGiven: a vaccination not given is R4's
// not-done, whatever STU3 status came with it (GP Connect always sends
// completed), unless the record was entered in error. And R4 needs
// occurrence[x], which STU3 allowed to be absent.
func immunizationFinish(c *conv, out map[string]any) {
	if b, _ := c.ent.src["notGiven"].(bool); b && out["status"] != "entered-in-error" {
		out["status"] = "not-done"
	}
	if out["occurrenceDateTime"] == nil {
		out["occurrenceString"] = "unknown"
		c.warn(c.ent.path+".date", "absent; R4 needs an occurrence, recorded as \"unknown\"")
	}
}

// related carries Observation.related by its type: has-member to hasMember,
// derived-from to derivedFrom; the other kinds have no R4 element.
func related(c *conv, out map[string]any, v any, path string) {
	for i, x := range asList(v) {
		p := fmt.Sprintf("%s[%d]", path, i)
		r := object(x)
		name := map[any]string{"has-member": "hasMember", "derived-from": "derivedFrom"}[r["type"]]
		if name == "" {
			c.warn(p, "not carried: R4 Observation has no %v relation", r["type"])
			continue
		}
		if t := c.value(r["target"], p+".target"); t != nil {
			out[name] = append(asList(out[name]), t)
		}
	}
}

func components(c *conv, out map[string]any, v any, path string) {
	for i, x := range asList(v) {
		p := fmt.Sprintf("%s[%d]", path, i)
		cm := object(x)
		r4 := map[string]any{}
		for _, k := range sortedKeys(cm) {
			if k == "interpretation" {
				if cc := c.value(cm[k], p+"."+k); cc != nil {
					r4[k] = []any{cc}
				}
				continue
			}
			put(r4, k, c.value(cm[k], p+"."+k))
		}
		out["component"] = append(asList(out["component"]), r4)
	}
}

func reportPerformers(c *conv, out map[string]any, v any, path string) {
	for i, x := range asList(v) {
		p := fmt.Sprintf("%s[%d]", path, i)
		pr := object(x)
		if pr["role"] != nil {
			c.warn(p+".role", "not carried: R4 DiagnosticReport.performer is a reference without a role")
		}
		if a := c.value(pr["actor"], p+".actor"); a != nil {
			out["performer"] = append(asList(out["performer"]), a)
		}
	}
}

func serviceRequested(c *conv, out map[string]any, v any, path string) {
	for i, x := range asList(v) {
		p := fmt.Sprintf("%s[%d]", path, i)
		if i > 0 {
			c.warn(p, "not carried: R4 ServiceRequest has one code")
			continue
		}
		put(out, "code", c.value(x, p))
	}
}

// referenceExtension carries an STU3 extension whose value is a
// reference as the UK Core extension url, which holds the same reference.
func referenceExtension(url string) extRule {
	return func(c *conv, out map[string]any, ext map[string]any, path string) {
		if ref := c.value(ext["valueReference"], path+".valueReference"); ref != nil {
			out["extension"] = append(asList(out["extension"]), map[string]any{"url": url, "valueReference": ref})
		}
	}
}

func cancellationReason(c *conv, out map[string]any, ext map[string]any, path string) {
	if s, ok := ext["valueString"].(string); ok {
		out["cancelationReason"] = map[string]any{"text": s}
	}
}

func deliveryChannel(c *conv, out map[string]any, ext map[string]any, path string) {
	if code, ok := ext["valueCode"].(string); ok {
		out["extension"] = append(asList(out["extension"]), map[string]any{"url": ukCoreDeliveryChanel,
			"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": ukCoreDeliveryChannelCS, "code": code}}}})
	}
}

// encounterClass fills the class R4 requires and STU3 did not: GP Connect
// consultations seldom say whether they were in person, at home or by
// telephone, so the class is recorded as unknown rather than guessed.
func encounterClass(c *conv, out map[string]any) {
	if out["class"] == nil {
		out["class"] = map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK", "display": "unknown"}
		c.info(c.ent.path+".class", "absent; R4 needs one, so it is recorded as unknown (v3-NullFlavor UNK)")
	}
}

// allergyEnd carries GP Connect's end of an allergy (its date and why it
// ended), which neither R4 nor UK Core has an element for, as a note; the
// clinical status GP Connect sets with it (resolved) says it ended.
func allergyEnd(c *conv, out map[string]any, ext map[string]any, path string) {
	var date, reason string
	for i, x := range asList(ext["extension"]) {
		sub := object(x)
		switch sub["url"] {
		case "endDate":
			date, _ = sub["valueDateTime"].(string)
		case "reasonEnded":
			reason, _ = sub["valueString"].(string)
		default:
			c.warn(fmt.Sprintf("%s.extension[%d]", path, i), "part %v of the allergy end extension is not mapped", sub["url"])
		}
	}
	text := "Ended"
	if date != "" {
		text += " " + date
	}
	if reason != "" {
		text += ": " + reason
	}
	out["note"] = append(asList(out["note"]), map[string]any{"text": text})
	c.info(path, "the end of the allergy is carried as a note (%s): R4 and UK Core have no element for it", text)
}

// associatedEncounter carries the consultation an allergy was recorded
// in, which STU3 AllergyIntolerance could only name by the core
// associatedEncounter extension (as GP Connect does), to R4's own
// AllergyIntolerance.encounter.
func associatedEncounter(c *conv, out map[string]any, ext map[string]any, path string) {
	ref := c.value(ext["valueReference"], path+".valueReference")
	if ref == nil {
		c.warn(path, "an associated encounter without a reference is not carried")
		return
	}
	out["encounter"] = ref
}

// courseOfTherapy maps GP Connect prescription types to R4's course of
// therapy: acute stays acute, repeats and repeat dispensing are a
// continuing course; delayed prescribing has no equal and is reported.
var courseOfTherapy = map[string]string{"acute": "acute", "repeat": "continuous", "repeat-dispensing": "continuous"}

func prescriptionType(c *conv, out map[string]any, ext map[string]any, path string) {
	cc := object(ext["valueCodeableConcept"])
	for _, x := range asList(cc["coding"]) {
		cd := object(x)
		code, _ := cd["code"].(string)
		if r4, ok := courseOfTherapy[code]; ok {
			concept := map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "code": r4}}}
			put(concept, "text", cd["display"])
			out["courseOfTherapyType"] = concept
			return
		}
	}
	c.warn(path, "prescription type %s has no R4 course of therapy", jsonText(cc))
}

func dateRecorded(c *conv, out map[string]any, ext map[string]any, path string) {
	put(out, "recorded", ext["valueDateTime"])
}
