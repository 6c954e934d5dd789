package care

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/operation"
	"carefhir/profiles"
)

// checkResponse refuses a QuestionnaireResponse that does not fit the
// Questionnaire it names (any Questionnaire the server holds, the PAM one
// included): 422 with an issue per problem, by FHIRPath and linkId. A
// response naming a Questionnaire the server does not hold is 422 too; one
// naming a contained Questionnaire is left to the validator.
func (c *Care) checkResponse(ctx context.Context, s operation.Store, ch *operation.Change) error {
	if ch.Deleted {
		return nil
	}
	qr, ok := ch.Resource.(*fhir.QuestionnaireResponse)
	if !ok || qr.Questionnaire.Get() == "" || strings.HasPrefix(qr.Questionnaire.Get(), "#") {
		return nil
	}
	q, err := c.findQuestionnaire(ctx, s, qr.Questionnaire.Get())
	if err != nil {
		return err
	}
	if q == nil {
		return operation.Errorf(http.StatusUnprocessableEntity, "not-found", "QuestionnaireResponse.questionnaire",
			"the Questionnaire %s is not held by this server", qr.Questionnaire.Get())
	}
	body, err := fhirjson.Marshal(qr)
	if err != nil {
		return err
	}
	issues, err := profiles.CheckResponse(body, q)
	if err != nil {
		return err
	}
	out := &operation.Error{Status: http.StatusUnprocessableEntity}
	for _, is := range issues {
		if is.Severity != "error" && is.Severity != "fatal" {
			continue
		}
		oi := operation.Issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Message}
		if is.Expression != "" {
			oi.Expression = []string{is.Expression}
		}
		out.Issues = append(out.Issues, oi)
	}
	if len(out.Issues) > 0 {
		return out
	}
	return nil
}

// findQuestionnaire returns the Questionnaire a canonical names (url or
// url|version) as JSON: the PAM Questionnaire, or a stored one (the latest
// version when none is named); nil when there is none.
func (c *Care) findQuestionnaire(ctx context.Context, s operation.Store, canonical string) ([]byte, error) {
	u, version, _ := strings.Cut(canonical, "|")
	if u == PAMQuestionnaireURL && (version == "" || version == PAMQuestionnaireVersion) {
		return fhirjson.Marshal(c.questionnaire)
	}
	params := url.Values{"url": {u}, "_count": {"50"}}
	if version != "" {
		params.Set("version", version)
	}
	page, err := s.Search(ctx, "Questionnaire", params)
	if err != nil {
		return nil, fmt.Errorf("find Questionnaire %s: %w", canonical, err)
	}
	if len(page.Matches) == 0 {
		return nil, nil
	}
	latest := page.Matches[0]
	for _, v := range page.Matches[1:] {
		if v.LastUpdated.After(latest.LastUpdated) {
			latest = v
		}
	}
	return latest.JSON, nil
}
