package gpconnect

import (
	"fmt"
	"strings"
)

// R4 extensions and code systems the STU3 ones become.
const (
	ukCoreSCTDescID         = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-CodingSCTDescId"
	ukCoreNHSVerified       = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
	ukCoreNHSVerifiedCS     = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
	ukCoreBookingOrg        = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-BookingOrganization"
	ukCoreMainLocation      = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MainLocation"
	ukCoreDeliveryChanel    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeliveryChannel"
	ukCoreDeliveryChannelCS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeliveryChannel"
)

// extension maps an STU3 extension found inside a data type, or reports
// it and returns nil. Resource-level extensions go through the type's own
// table first (mapping.extensions).
func (c *conv) extension(ext map[string]any, path string) map[string]any {
	u, _ := ext["url"].(string)
	switch stu3Name(u) {
	case "Extension-coding-sctdescid":
		return c.sctDescID(ext, path)
	case "Extension-CareConnect-GPC-NHSNumberVerificationStatus-1", "Extension-CareConnect-NHSNumberVerificationStatus-1":
		cc := object(ext["valueCodeableConcept"])
		var codings []any
		for i, x := range asList(cc["coding"]) {
			cd := object(x)
			code, _ := cd["code"].(string)
			if code == "" {
				c.warn(fmt.Sprintf("%s.valueCodeableConcept.coding[%d]", path, i), "a verification status without a code is not carried")
				continue
			}
			r4 := map[string]any{"system": ukCoreNHSVerifiedCS, "code": code}
			put(r4, "display", cd["display"])
			codings = append(codings, r4)
		}
		if len(codings) == 0 {
			return nil
		}
		return map[string]any{"url": ukCoreNHSVerified, "valueCodeableConcept": map[string]any{"coding": codings}}
	}
	c.warn(path, "extension %s is not mapped: it has no UK Core equal", u)
	return nil
}

// stu3Name is the last segment of an STU3 extension URL; the same
// extensions were published under fhir.nhs.uk and fhir.hl7.org.uk, over
// http and https.
func stu3Name(u string) string {
	if !strings.Contains(u, "/STU3/StructureDefinition/") {
		return u
	}
	return u[strings.LastIndex(u, "/")+1:]
}

// sctDescID carries the SNOMED CT description id of a coding; EMIS writes
// the sub-extensions capitalised (DescriptionID), which is mended here.
func (c *conv) sctDescID(ext map[string]any, path string) map[string]any {
	var subs []any
	for i, x := range asList(ext["extension"]) {
		sub := object(x)
		p := fmt.Sprintf("%s.extension[%d]", path, i)
		name, _ := sub["url"].(string)
		switch strings.ToLower(name) {
		case "descriptionid":
			v, ok := sub["valueId"]
			if !ok {
				v = sub["valueString"]
			}
			if v != nil {
				// UK Core types the description id as an Identifier.
				subs = append(subs, map[string]any{"url": "descriptionId", "valueIdentifier": map[string]any{"value": v}})
			}
		case "descriptiondisplay":
			if v, ok := sub["valueString"]; ok {
				subs = append(subs, map[string]any{"url": "descriptionDisplay", "valueString": v})
			}
		default:
			c.warn(p, "part %q of the SNOMED CT description extension is not mapped", name)
		}
	}
	if len(subs) == 0 {
		return nil
	}
	return map[string]any{"url": ukCoreSCTDescID, "extension": subs}
}
