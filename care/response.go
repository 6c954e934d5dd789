package care

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/canonical"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/search"
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

// findQuestionnaire returns the Questionnaire a canonical names (url or
// url|version) as JSON: the PAM Questionnaire, or one that the transaction
// of ch writes or the store holds, the newest of those with the url and
// version (canonical.Newest: the highest version, then the one updated
// last), as a ValueSet named by url is found; what the transaction writes
// of a resource replaces what is stored of it. nil when there is none.
// Each stored one is read to compare versions, so at most
// Config.CanonicalVersions of them are, as the server bounds ValueSets:
// a url held in more is 422 too-costly, naming the version.
func (c *Care) findQuestionnaire(ctx context.Context, s operation.Store, ch *operation.Change, named string) ([]byte, error) {
	u, version, _ := strings.Cut(named, "|")
	if u == PAMQuestionnaireURL && (version == "" || version == PAMQuestionnaireVersion) {
		return fhirjson.Marshal(c.questionnaire)
	}
	tooMany := operation.Errorf(http.StatusUnprocessableEntity, "too-costly", "QuestionnaireResponse.questionnaire",
		"more than %d Questionnaires held here have the url %s, more than are compared to find the newest: name the version (url|version)", c.cfg.CanonicalVersions, u)
	var found []*store.Version
	written := map[string]bool{}
	if ch.Written != nil {
		for _, v := range ch.Written("Questionnaire") {
			written[v.ID] = true
			// Only what chooses is decoded: the one chosen is read
			// whole once, to check the response against it.
			var q struct {
				URL     string `json:"url"`
				Version string `json:"version"`
			}
			if err := json.Unmarshal(v.JSON, &q); err != nil {
				return nil, fmt.Errorf("find Questionnaire %s: %w", named, err)
			}
			if q.URL == u && (version == "" || q.Version == version) {
				found = append(found, v)
			}
		}
	}
	// Of those stored, all are compared, up to a bound: one more is read
	// to tell, and as many more as the transaction writes, whose own are
	// taken as it writes them, above. An engine that cannot page what a
	// unit of work wrote (MongoDB) answers ErrUnsupported past the page.
	// Escaped, a comma in the url or version is part of it, not a second
	// one the search would also find (a response naming …/q,x is not
	// one of …/q).
	params := url.Values{"url": {search.EscapeValue(u)}, "_count": {strconv.Itoa(c.cfg.CanonicalVersions + len(written) + 1)}}
	if version != "" {
		params.Set("version", search.EscapeValue(version))
	}
	page, err := s.Search(ctx, "Questionnaire", params)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, tooMany
	}
	if err != nil {
		return nil, fmt.Errorf("find Questionnaire %s: %w", named, err)
	}
	stored := 0
	for _, v := range page.Matches {
		if !written[v.ID] {
			found = append(found, v)
			stored++
		}
	}
	if stored > c.cfg.CanonicalVersions {
		return nil, tooMany
	}
	newest, err := canonical.Newest(found)
	if err != nil {
		return nil, fmt.Errorf("find Questionnaire %s: %w", named, err)
	}
	if newest == nil {
		return nil, nil
	}
	return newest.JSON, nil
}
