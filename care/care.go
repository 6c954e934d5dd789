// Package care holds the business rules of care coordination in primary
// care: the Patient Activation Measure and its scoring, personalised care
// and support plans, caseloads, cohorts and reminders. It is written
// against the operation and store interfaces and knows nothing of HTTP:
// the host registers its operations and write hooks into the server.
package care

import (
	"context"
	"embed"
	"fmt"
	"time"

	"carefhir/care/calendar"
	"carefhir/fhir"
	"carefhir/fhir/canonical"
	"carefhir/fhir/fhirjson"
	"carefhir/operation"
	"carefhir/store"
)

// Config is what care coordination is configured with.
type Config struct {
	PAM   PAMConfig
	Codes Codes // zero: DefaultCodes
	// BaseURL is the server's public base, such as
	// https://carefhir.example.org/fhir: an absolute reference under it
	// names a resource held here, as the search index reads it, and one
	// to any other server never does. Empty: only relative references
	// name resources held here.
	BaseURL string
	// ReviewWindow is how long before a PCSP's review date its reminder is
	// made; 0 means DefaultReviewWindow.
	ReviewWindow time.Duration
	// RemeasureAfter is how long after the latest PAM a new one is due, in
	// months; 0 means DefaultRemeasureMonths.
	RemeasureMonths int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Zone is where calendar dates are reckoned (today, ages, overdue
	// reviews, due dates); nil means Europe/London, the UK's dates
	// (calendar.UK, which needs no zone database on the host).
	Zone *time.Location
	// CohortAmongMost is the most people a cohort may hold for its next
	// criterion to be searched among them by name rather than over the
	// whole population; 0 means DefaultCohortAmongMost, a negative value
	// never.
	CohortAmongMost int
	// CohortMostMembers is the most people a cohort Group holds; 0 means
	// DefaultCohortMostMembers. Criteria selecting more are refused.
	CohortMostMembers int
	// CanonicalVersions is the most stored Questionnaires of one url
	// compared to find the newest when a response names the url without
	// a version: the server's Limits.CanonicalVersions, which bounds the
	// ValueSets and CodeSystems so compared, so that one setting bounds
	// both. 0 means canonical.DefaultMostVersions, the server's default.
	CanonicalVersions int
}

// Defaults of Config.
const (
	DefaultReviewWindow    = 14 * 24 * time.Hour
	DefaultRemeasureMonths = 6
	// Up to this many people, a few searches naming them cost less than
	// reading what a criterion selects in a population of 100,000.
	DefaultCohortAmongMost = 10_000
	// A Group of this many members is some 4 MB of JSON: it can be read
	// whole, sent back under the default body limit (10 MiB), and stored
	// by MongoDB, whose documents hold 16 MiB with their search values.
	DefaultCohortMostMembers = 20_000
)

// Care is care coordination, configured.
type Care struct {
	cfg           Config
	questionnaire *fhir.Questionnaire
}

// New returns care coordination with cfg, defaults filled in.
func New(cfg Config) (*Care, error) {
	if cfg.Codes == (Codes{}) {
		cfg.Codes = DefaultCodes()
	}
	if cfg.CohortAmongMost == 0 {
		cfg.CohortAmongMost = DefaultCohortAmongMost
	}
	if cfg.CohortMostMembers == 0 {
		cfg.CohortMostMembers = DefaultCohortMostMembers
	}
	if cfg.CanonicalVersions <= 0 {
		cfg.CanonicalVersions = canonical.DefaultMostVersions
	}
	if cfg.ReviewWindow == 0 {
		cfg.ReviewWindow = DefaultReviewWindow
	}
	if cfg.RemeasureMonths == 0 {
		cfg.RemeasureMonths = DefaultRemeasureMonths
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Zone == nil {
		cfg.Zone = calendar.UK()
	}
	if cfg.PAM.Wording != nil && len(cfg.PAM.Wording) != pamItems {
		return nil, fmt.Errorf("care: PAM wording has %d statements, want %d", len(cfg.PAM.Wording), pamItems)
	}
	return &Care{cfg: cfg, questionnaire: PAMQuestionnaire(cfg.PAM.Wording)}, nil
}

// operationDefinitions holds the OperationDefinition of each operation of
// care coordination, named by its Definition: the parameters it takes are
// those its Invoke accepts (Invocation.Only).
//
//go:embed operationdefinitions/*.json
var operationDefinitions embed.FS

// Definitions returns the conformance resources care coordination installs
// at start-up, read-only, as JSON: the PAM Questionnaire, the PCSP profile,
// the extensions of care coordination (review date, MDT care team, cohort
// risk value), its search parameters (SearchParameters) and the
// OperationDefinitions of its operations.
func (c *Care) Definitions() ([][]byte, error) {
	q, err := fhirjson.Marshal(c.questionnaire)
	if err != nil {
		return nil, fmt.Errorf("care: encode the PAM Questionnaire: %w", err)
	}
	ops, err := operation.Definitions(operationDefinitions)
	if err != nil {
		return nil, fmt.Errorf("care: %w", err)
	}
	defs := [][]byte{q, []byte(pcspProfile), []byte(reviewDateExtension), []byte(mdtCareTeamExtension), []byte(riskValueExtension)}
	defs = append(defs, SearchParameters()...)
	return append(defs, ops...), nil
}

// Hooks returns the write hooks of care coordination, in the order they
// run: responses checked against their Questionnaire, PCSPs checked, PAM
// responses scored (a scored one naming its Patient), reminders closed by
// the writes that complete them (a PAM level recorded in a GP system too),
// reminders handed over with the patient to the coordinator taking over
// (from one whose part ended, who was taken out of the team, or whose
// team was deleted or ended).
func (c *Care) Hooks() []operation.Hook {
	return []operation.Hook{
		{Name: "questionnaire-response", Types: []string{"QuestionnaireResponse"}, Check: c.checkResponse},
		{Name: "pcsp", Types: []string{"CarePlan"}, Check: c.checkPCSP, After: c.closeReviewTasks},
		{Name: "pam-scoring", Types: []string{"QuestionnaireResponse"}, Check: c.checkPAM, After: c.scoreOnWrite},
		{Name: "pam-recorded-elsewhere", Types: []string{"Observation"}, After: c.closeOnResultElsewhere},
		{Name: handoverHook, Types: []string{"CareTeam"}, Check: c.keepRemoved, After: c.handOver},
	}
}

// Operations returns the operations of care coordination.
func (c *Care) Operations() []operation.Operation {
	return []operation.Operation{
		{
			Name: "pam-score", Definition: Base + "/OperationDefinition/QuestionnaireResponse-pam-score",
			Levels: operation.Instance, Types: []string{"QuestionnaireResponse"}, Invoke: c.pamScore,
		},
		{
			Name: "caseload", Definition: Base + "/OperationDefinition/caseload",
			Levels: operation.Instance, Types: []string{"Practitioner", "PractitionerRole", "CareTeam", "Organization"},
			Idempotent: true, Complete: true, Invoke: c.caseload,
		},
		{
			Name: "cohort", Definition: Base + "/OperationDefinition/Group-cohort",
			Levels: operation.Type | operation.Instance, Types: []string{"Group"}, Complete: true, Invoke: c.cohort,
		},
		{
			Name: "generate-reminders", Definition: Base + "/OperationDefinition/Task-generate-reminders",
			Levels: operation.Type, Types: []string{"Task"}, Complete: true, Invoke: c.generateReminders,
		},
	}
}

// Today is the calendar date of now in the zone of the configuration (the
// UK's), as midnight UTC of that date: a UK night in summer time is
// already the next day there while it is still the day before in UTC.
// It is the date reminders are due as of when no other is given.
func (c *Care) Today() time.Time {
	return c.dateOf(c.cfg.Now())
}

// dateOf returns the calendar date of t in the zone of the
// configuration, as midnight UTC of that date.
func (c *Care) dateOf(t time.Time) time.Time {
	y, m, d := t.In(c.cfg.Zone).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// current returns the current version of typ/id as the transaction of ch
// leaves it: the version the transaction writes, else the stored one.
func current(ctx context.Context, s operation.Store, ch *operation.Change, typ, id string) (*store.Version, error) {
	if ch.Written != nil {
		for _, v := range ch.Written(typ) {
			if v.ID == id {
				return v, nil
			}
		}
	}
	return s.Read(ctx, typ, id)
}

// decode reads stored JSON as a resource of type T, as the server serves
// it (fhirjson.UnmarshalStored): a version an older release let through,
// with a date on a day its month lacks, is read, not refused as a request
// body would be.
func decode[T fhir.Resource](b []byte) (T, error) {
	var zero T
	res, err := fhirjson.UnmarshalStored(b)
	if err != nil {
		return zero, err
	}
	t, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("care: a %s where a %T was expected", res.ResourceType(), zero)
	}
	return t, nil
}
