package care

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/operation"
	"carefhir/profiles"
	"carefhir/store"
)

// checkResponse refuses a QuestionnaireResponse that does not fit the
// Questionnaire it names (any Questionnaire the server holds, the PAM one
// included): 422 with an issue per problem, by FHIRPath and linkId. A
// response naming a Questionnaire the server does not hold is 422 too; one
// naming a contained Questionnaire is left to the validator. In a
// transaction, the Questionnaires it writes count, whatever the order of
// its entries.
func (c *Care) checkResponse(ctx context.Context, s operation.Store, ch *operation.Change) error {
	if ch.Deleted {
		return nil
	}
	qr, ok := ch.Resource.(*fhir.QuestionnaireResponse)
	if !ok || qr.Questionnaire.Get() == "" || strings.HasPrefix(qr.Questionnaire.Get(), "#") {
		return nil
	}
	q, err := c.findQuestionnaire(ctx, s, ch, qr.Questionnaire.Get())
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

// maxQuestionnaireVersions bounds the Questionnaires of one url compared
// to find the latest where the engine cannot sort them (see
// findQuestionnaire).
const maxQuestionnaireVersions = 100

// findQuestionnaire returns the Questionnaire a canonical names (url or
// url|version) as JSON: the PAM Questionnaire, or one that the transaction
// of ch writes or the store holds (the latest version when none is named;
// what the transaction writes of a resource replaces what is stored of
// it); nil when there is none.
func (c *Care) findQuestionnaire(ctx context.Context, s operation.Store, ch *operation.Change, canonical string) ([]byte, error) {
	u, version, _ := strings.Cut(canonical, "|")
	if u == PAMQuestionnaireURL && (version == "" || version == PAMQuestionnaireVersion) {
		return fhirjson.Marshal(c.questionnaire)
	}
	var found []*store.Version
	written := map[string]bool{}
	if ch.Written != nil {
		for _, v := range ch.Written("Questionnaire") {
			written[v.ID] = true
			q, err := decode[*fhir.Questionnaire](v.JSON)
			if err != nil {
				return nil, fmt.Errorf("find Questionnaire %s: %w", canonical, err)
			}
			if q.Url.Get() == u && (version == "" || q.Version.Get() == version) {
				found = append(found, v)
			}
		}
	}
	// Of those stored, the one updated last, whatever their number: one
	// more is read than the transaction writes, whose own are taken as it
	// writes them, above.
	params := url.Values{"url": {u}, "_sort": {"-_lastUpdated"}, "_count": {strconv.Itoa(len(written) + 1)}}
	if version != "" {
		params.Set("version", version)
	}
	page, err := s.Search(ctx, "Questionnaire", params)
	if errors.Is(err, errors.ErrUnsupported) {
		// An engine that cannot sort with what a unit of work wrote
		// (MongoDB) answers a page in id order, with those writes: all
		// of them, up to a bound.
		params.Del("_sort")
		params.Set("_count", strconv.Itoa(maxQuestionnaireVersions))
		if page, err = s.Search(ctx, "Questionnaire", params); errors.Is(err, errors.ErrUnsupported) {
			return nil, operation.Errorf(http.StatusUnprocessableEntity, "too-costly", "QuestionnaireResponse.questionnaire",
				"more than %d Questionnaires held here have the url %s, more than are compared in a transaction writing Questionnaires: name the version (url|version)", maxQuestionnaireVersions, u)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("find Questionnaire %s: %w", canonical, err)
	}
	for _, v := range page.Matches {
		if !written[v.ID] {
			found = append(found, v)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	latest := found[0]
	for _, v := range found[1:] {
		if v.LastUpdated.After(latest.LastUpdated) {
			latest = v
		}
	}
	return latest.JSON, nil
}
