package care

// Every code and identifier care coordination uses, with its source. Codes
// that carefhir defines itself (under Base) are constants; codes of national
// terminologies that could not be confirmed against a terminology server
// are configuration (Codes), with the values in UK use as defaults.

import (
	"fmt"
	"strings"

	"carefhir/fhir"
)

// Base is the canonical base of what carefhir defines itself: the PAM
// Questionnaire, the PCSP profile and the code systems below.
const Base = "https://carefhir.example.org/fhir"

// Canonical URLs of the definitions installed at start-up.
const (
	// PAMQuestionnaireURL is the PAM Questionnaire (pam.go).
	PAMQuestionnaireURL = Base + "/Questionnaire/pam-13"
	// PAMQuestionnaireVersion is its business version.
	PAMQuestionnaireVersion = "2.0.0"
	// PCSPProfileURL is the StructureDefinition PCSPCarePlan (pcsp.go).
	PCSPProfileURL = Base + "/StructureDefinition/PCSPCarePlan"
	// ReviewDateURL is the extension PCSPReviewDate: when the plan is next
	// reviewed (valueDate).
	ReviewDateURL = Base + "/StructureDefinition/PCSPReviewDate"
	// RiskValueURL is the extension on a cohort Group's member carrying the
	// risk value it was ranked by (valueDecimal).
	RiskValueURL = Base + "/StructureDefinition/cohort-risk-value"
	// MDTCareTeamURL is the extension on an Appointment naming the CareTeam
	// whose multidisciplinary team meeting it is (valueReference), for
	// clients that cannot set Appointment.basedOn (which R4 restricts to
	// ServiceRequest).
	MDTCareTeamURL = Base + "/StructureDefinition/mdt-care-team"
)

// Code systems carefhir defines.
const (
	// SystemPAMAnswer codes PAM answers: "1" disagree strongly, "2"
	// disagree, "3" agree, "4" agree strongly, "NA" not applicable.
	SystemPAMAnswer = Base + "/CodeSystem/pam-answer"
	// SystemPAM codes the PAM Observations: "pam-score" and "pam-level".
	// Searches rely on these; the SNOMED CT codes of Codes are added beside.
	SystemPAM = Base + "/CodeSystem/pam"
	// SystemCarePlanCategory codes the category "pcsp" of a personalised
	// care and support plan.
	SystemCarePlanCategory = Base + "/CodeSystem/care-plan-category"
	// SystemPCSPActivity codes the kinds of support a PCSP activity is
	// (PCSPActivities).
	SystemPCSPActivity = Base + "/CodeSystem/pcsp-activity"
	// SystemCareRole codes care-coordination roles without a SNOMED CT
	// concept of their own (practice-nurse, social-prescribing-link-worker,
	// health-and-wellbeing-coach, care-coordinator).
	SystemCareRole = Base + "/CodeSystem/care-role"
	// SystemCareTask codes the reminder Tasks: "pcsp-review" and
	// "pam-remeasure".
	SystemCareTask = Base + "/CodeSystem/care-task"
	// SystemRiskScore codes risk scores that rank people for proactive
	// care: "efi", the electronic frailty index (0 to 1), as carefhir synth
	// generates it. Deployments rank by their own codes ($cohort riskCode).
	SystemRiskScore = Base + "/CodeSystem/risk-score"
	// SystemCohortCriterion codes the characteristics of a cohort Group, one
	// per criterion of $cohort (cohort.go).
	SystemCohortCriterion = Base + "/CodeSystem/cohort-criterion"
)

// National code systems and identifiers.
const (
	SystemSNOMED = "http://snomed.info/sct"
	SystemUCUM   = "http://unitsofmeasure.org"
	// SystemObservationCategory is HL7's observation category code system
	// (R4 valueset-observation-category); "survey" is its code for
	// assessment tool results.
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	// SystemODS identifies organisations by ODS code (NHS England).
	SystemODS = "https://fhir.nhs.uk/Id/ods-organization-code"
)

// Codes of the PAM, PCSP and reminder resources carefhir defines.
const (
	CodePAMScore      = "pam-score"
	CodePAMLevel      = "pam-level"
	CodePCSP          = "pcsp"
	CodeReviewTask    = "pcsp-review"
	CodeRemeasureTask = "pam-remeasure"
	CodeCoordinator   = "care-coordinator"
	CodeFrailty       = "efi"
	// UnitScore is the UCUM unit of the PAM score: an arbitrary unit
	// annotation ({score}) as UCUM allows for scores without dimension.
	UnitScore = "{score}"
)

// PCSPActivities are the kinds of support a PCSP activity may be, coded
// in SystemPCSPActivity (the NHS England comprehensive model of
// personalised care lists them as its components).
var PCSPActivities = map[string]string{
	"social-prescribing":           "Referral to social prescribing",
	"health-coaching":              "Health and wellbeing coaching",
	"self-management-education":    "Self-management education",
	"peer-support":                 "Peer support",
	"training-employment-benefits": "Training, employment and benefits support",
	"personal-health-budget":       "Personal health budget",
	"shared-decision-making":       "Shared decision making preparation",
}

// Codes are the SNOMED CT concepts care coordination uses. The defaults
// are those in UK use as published (sources beside each); they could not
// be confirmed against the NHS terminology server, so a deployment may
// replace them (--care-codes).
type Codes struct {
	// PAMLevel: 962851000000103 "Patient Activation Measure level" (UK
	// edition, in UK use).
	PAMLevel string `json:"pamLevel"`
	// PAMScore: 925431000000109, used for the score in UK registries
	// (unverified).
	PAMScore string `json:"pamScore"`
	// SocialPrescribingReferral: 871731000000106 "Referral to social
	// prescribing service" (UK edition).
	SocialPrescribingReferral string `json:"socialPrescribingReferral"`
	// CareCoordinator: 768820003 "Care coordinator" (occupation).
	CareCoordinator string `json:"careCoordinator"`
	// GeneralPractitioner: 62247001 "General practitioner" (occupation).
	GeneralPractitioner string `json:"generalPractitioner"`
	// Pharmacist: 46255001 "Pharmacist" (occupation).
	Pharmacist string `json:"pharmacist"`
}

// Check refuses a code that is no SNOMED CT concept id (digits), naming
// its key: each is searched as http://snomed.info/sct|code, so an empty
// one would match every SNOMED CT code (frailty results read as PAM
// scores), and a comma or a bar would be read as a second code or a
// system.
func (c Codes) Check() error {
	for _, code := range []struct{ key, value string }{
		{"pamLevel", c.PAMLevel}, {"pamScore", c.PAMScore}, {"socialPrescribingReferral", c.SocialPrescribingReferral},
		{"careCoordinator", c.CareCoordinator}, {"generalPractitioner", c.GeneralPractitioner}, {"pharmacist", c.Pharmacist},
	} {
		if code.value == "" || strings.Trim(code.value, "0123456789") != "" {
			return fmt.Errorf("%s %q is not a SNOMED CT concept id (its digits)", code.key, code.value)
		}
	}
	return nil
}

// DefaultCodes are the codes in UK use.
func DefaultCodes() Codes {
	return Codes{
		PAMLevel:                  "962851000000103",
		PAMScore:                  "925431000000109",
		SocialPrescribingReferral: "871731000000106",
		CareCoordinator:           "768820003",
		GeneralPractitioner:       "62247001",
		Pharmacist:                "46255001",
	}
}

func coding(system, code, display string) *fhir.Coding {
	c := &fhir.Coding{System: fhir.NewUri(system), Code: fhir.NewCode(code)}
	if display != "" {
		c.Display = fhir.NewString(display)
	}
	return c
}

// hasCoding reports whether cc holds system|code.
func hasCoding(cc *fhir.CodeableConcept, system, code string) bool {
	if cc == nil {
		return false
	}
	for _, c := range cc.Coding {
		if c.System.Get() == system && c.Code.Get() == code {
			return true
		}
	}
	return false
}

// refOf returns the literal reference of r, "" when r is nil.
func refOf(r *fhir.Reference) string {
	if r == nil {
		return ""
	}
	return r.Reference.Get()
}
