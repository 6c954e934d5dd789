package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Indexes are made at start-up (Open) and by Migrate, never while a request
// is served: an index build inside a transaction waits on the transaction
// and the transaction on the build, and a build on a busy collection slows
// every write to it. Which search parameters are indexed is a choice, made
// here and changed by operators (see IndexedParam), because MongoDB allows
// at most 64 indexes per collection and every index costs each write of
// the collection one key per value.

// IndexedParam is a search parameter of one resource type whose values have
// an index.
type IndexedParam struct {
	Type  string `bson:"type"`
	Param string `bson:"param"`
	// Kind is the parameter's search type: token, string, date,
	// reference, quantity, number or uri.
	Kind string `bson:"kind"`
	// Sort adds the indexes of _sort=Param and _sort=-Param.
	Sort bool `bson:"sort,omitempty"`
	// With names a date parameter of the type to pair with this one, a
	// reference: one index serves "this reference, that date range,
	// newest first" (Observation?subject=…&date=…&_sort=-date) without
	// sorting in memory.
	With string `bson:"with,omitempty"`
}

// settingsCollection holds the engine's settings: the document
// {_id: "indexes", add: [IndexedParam…], drop: [{type, param}…]} adds
// parameters to the default index plan and takes some out.
const settingsCollection = "settings"

// indexSettingsID is the _id of the index settings document.
const indexSettingsID = "indexes"

// indexSettings is the operator's change to DefaultIndexes.
type indexSettings struct {
	Add  []IndexedParam `bson:"add"`
	Drop []struct {
		Type  string `bson:"type"`
		Param string `bson:"param"`
	} `bson:"drop"`
}

// DefaultIndexes returns the search parameters indexed unless the settings
// say otherwise: those of the searches a care-coordination server answers
// most (by identifier, by patient, by code, by status, by date, newest
// first), chosen per type. A search on another parameter is answered by
// scanning the type's collection.
func DefaultIndexes() []IndexedParam {
	var out []IndexedParam
	add := func(typ string, params ...string) {
		for _, p := range params {
			// "name:kind", "name:kind:sort" or "name:reference:with=date".
			parts := strings.Split(p, ":")
			ip := IndexedParam{Type: typ, Param: parts[0], Kind: parts[1]}
			for _, opt := range parts[2:] {
				if opt == "sort" {
					ip.Sort = true
				} else if with, ok := strings.CutPrefix(opt, "with="); ok {
					ip.With = with
				}
			}
			out = append(out, ip)
		}
	}
	add("AllergyIntolerance", "identifier:token", "patient:reference", "code:token", "clinical-status:token")
	add("Appointment", "identifier:token", "patient:reference", "actor:reference", "date:date:sort", "status:token")
	add("AuditEvent", "date:date:sort", "patient:reference", "agent:reference", "entity:reference", "type:token")
	add("Bundle", "identifier:token", "type:token")
	add("CarePlan", "identifier:token", "subject:reference", "patient:reference", "status:token", "category:token", "date:date")
	add("CareTeam", "identifier:token", "subject:reference", "patient:reference", "status:token", "participant:reference")
	add("CodeSystem", "url:uri", "version:token", "name:string", "status:token")
	add("Communication", "identifier:token", "subject:reference", "patient:reference", "recipient:reference",
		"sender:reference", "sent:date:sort", "status:token")
	add("Condition", "identifier:token", "subject:reference", "patient:reference", "code:token",
		"clinical-status:token", "category:token", "onset-date:date")
	add("Consent", "identifier:token", "patient:reference", "status:token", "category:token")
	add("DiagnosticReport", "identifier:token", "subject:reference:with=date", "patient:reference", "code:token",
		"category:token", "status:token", "date:date:sort")
	add("DocumentReference", "identifier:token", "subject:reference:with=date", "patient:reference",
		"type:token", "category:token", "date:date:sort", "status:token")
	add("Encounter", "identifier:token", "subject:reference:with=date", "patient:reference", "date:date:sort",
		"status:token", "class:token", "service-provider:reference")
	add("EpisodeOfCare", "identifier:token", "patient:reference", "status:token", "organization:reference")
	add("Flag", "identifier:token", "subject:reference", "patient:reference", "date:date")
	add("Goal", "identifier:token", "subject:reference", "patient:reference", "lifecycle-status:token")
	add("Group", "identifier:token", "member:reference", "code:token")
	add("HealthcareService", "identifier:token", "organization:reference", "service-type:token", "name:string",
		"active:token")
	add("Immunization", "identifier:token", "patient:reference", "vaccine-code:token", "status:token", "date:date:sort")
	add("List", "identifier:token", "subject:reference", "patient:reference", "code:token", "status:token", "date:date")
	add("Location", "identifier:token", "name:string", "organization:reference")
	add("Medication", "identifier:token", "code:token")
	add("MedicationRequest", "identifier:token", "subject:reference", "patient:reference", "status:token",
		"intent:token", "authoredon:date:sort", "code:token", "medication:reference", "requester:reference")
	add("MedicationStatement", "identifier:token", "subject:reference", "patient:reference", "status:token", "effective:date")
	add("Observation", "identifier:token", "subject:reference:with=date", "patient:reference", "code:token",
		"category:token", "status:token", "date:date:sort", "encounter:reference", "performer:reference")
	add("OperationDefinition", "url:uri", "version:token", "name:string", "code:token")
	add("Organization", "identifier:token", "name:string", "type:token", "partof:reference")
	add("Patient", "identifier:token", "family:string:sort", "given:string", "name:string", "birthdate:date:sort",
		"gender:token", "general-practitioner:reference", "organization:reference", "telecom:token",
		"address-postalcode:string")
	add("Practitioner", "identifier:token", "name:string", "family:string", "given:string")
	add("PractitionerRole", "identifier:token", "practitioner:reference", "organization:reference", "role:token")
	add("Provenance", "target:reference", "patient:reference", "recorded:date")
	add("Questionnaire", "identifier:token", "url:uri", "name:string", "status:token")
	add("QuestionnaireResponse", "identifier:token", "questionnaire:reference", "subject:reference",
		"patient:reference", "status:token", "authored:date:sort")
	add("RelatedPerson", "identifier:token", "patient:reference", "name:string")
	add("Schedule", "identifier:token", "actor:reference")
	add("SearchParameter", "url:uri", "version:token", "name:string", "status:token")
	add("ServiceRequest", "identifier:token", "subject:reference", "patient:reference", "status:token",
		"requester:reference", "authored:date:sort", "code:token", "category:token")
	add("Slot", "schedule:reference", "start:date:sort", "status:token")
	add("Specimen", "identifier:token", "subject:reference", "patient:reference", "type:token", "collected:date")
	add("StructureDefinition", "url:uri", "version:token", "name:string", "status:token")
	add("Subscription", "status:token")
	add("Task", "identifier:token", "status:token", "owner:reference", "requester:reference", "patient:reference",
		"focus:reference", "subject:reference", "authored-on:date:sort", "code:token", "business-status:token")
	add("ValueSet", "url:uri", "version:token", "name:string", "status:token")
	return out
}

// unsearchedTypes are the resource types served whose collections have no
// parameter indexed by default, but are made (and sharded) with the
// others.
var unsearchedTypes = []string{"Binary", "CapabilityStatement", "OperationOutcome", "Parameters"}

// indexPlan is the indexes of every resource type's collection: the
// engine's own (lastUpdated both ways) and those of the indexed
// parameters.
type indexPlan map[string][]bson.D

// planIndexes returns the plan of params, checked against MongoDB's limit
// of 64 indexes per collection.
func planIndexes(params []IndexedParam) (indexPlan, error) {
	plan := indexPlan{}
	seen := map[string]bool{}
	for _, p := range params {
		if !validType(p.Type) || p.Param == "" {
			return nil, fmt.Errorf("indexed parameter %q of %q: invalid", p.Param, p.Type)
		}
		if seen[p.Type+"."+p.Param] {
			continue
		}
		seen[p.Type+"."+p.Param] = true
		if plan[p.Type] == nil {
			plan[p.Type] = ownIndexes()
		}
		keys, err := paramIndexes(p)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if !slices.ContainsFunc(plan[p.Type], func(d bson.D) bool { return keyString(d) == keyString(k) }) {
				plan[p.Type] = append(plan[p.Type], k)
			}
		}
	}
	for _, typ := range unsearchedTypes {
		if plan[typ] == nil {
			plan[typ] = ownIndexes()
		}
	}
	var over []string
	for _, typ := range slices.Sorted(maps.Keys(plan)) {
		if n := len(plan[typ]) + 1; n > maxIndexes { // + _id's
			over = append(over, fmt.Sprintf("%s needs %d", typ, n))
		}
	}
	if len(over) > 0 {
		return nil, fmt.Errorf("%w: %s; index fewer parameters of it (settings %q)",
			ErrTooManyIndexes, strings.Join(over, ", "), indexSettingsID)
	}
	return plan, nil
}

// ErrTooManyIndexes reports an index plan that needs more indexes on a
// collection than MongoDB allows (64, _id's included).
var ErrTooManyIndexes = errors.New("more indexes than MongoDB allows on one collection (64)")

// ownIndexes are the indexes of every resource collection: lastUpdated in
// both directions with the id as tie-breaker (_sort=_lastUpdated,
// _sort=-_lastUpdated, _lastUpdated ranges). Searches without a sort read
// the _id index in order.
func ownIndexes() []bson.D {
	return []bson.D{
		{{Key: fieldTime, Value: 1}, {Key: "_id", Value: 1}},
		{{Key: fieldTime, Value: -1}, {Key: "_id", Value: 1}},
	}
}

// paramIndexes returns the indexes of one indexed parameter. Equality
// fields carry _id after them, so that a search for a value reads its
// matches in id order, the order of pages. A date has one index per end:
// its values may be arrays, and MongoDB cannot index two array fields of
// one document together.
func paramIndexes(p IndexedParam) ([]bson.D, error) {
	one := func(kind string) bson.D {
		return bson.D{{Key: field(kind, p.Param), Value: 1}, {Key: "_id", Value: 1}}
	}
	var out []bson.D
	switch p.Kind {
	case "token":
		out = append(out, one(""))
	case "string":
		out = append(out, one("s"))
	case "reference":
		out = append(out, one("r"))
		if p.With != "" {
			out = append(out, bson.D{{Key: field("r", p.Param), Value: 1}, {Key: field("z", p.With), Value: -1}, {Key: "_id", Value: 1}})
		}
	case "uri":
		out = append(out, one("u"))
		if p.Param == "_profile" {
			// The smallest profile of each resource, a scalar: $meta's
			// skip scan reads it beside the multikey index of all.
			out = append(out, bson.D{{Key: field("a", p.Param), Value: 1}, {Key: "_id", Value: 1}})
		}
	case "date":
		out = append(out, bson.D{{Key: field("dl", p.Param), Value: 1}}, bson.D{{Key: field("dh", p.Param), Value: 1}})
	case "number":
		out = append(out, bson.D{{Key: field("n", p.Param), Value: 1}})
	case "quantity":
		// "qh" holds the high ends of a parameter's Ranges, which a
		// search for values above some x reads beside "q".
		out = append(out, bson.D{{Key: field("q", p.Param), Value: 1}}, bson.D{{Key: field("qh", p.Param), Value: 1}})
	default:
		return nil, fmt.Errorf("indexed parameter %s.%s: kind %q, want token, string, date, reference, quantity, number or uri", p.Type, p.Param, p.Kind)
	}
	if p.With != "" && p.Kind != "reference" {
		return nil, fmt.Errorf("indexed parameter %s.%s: with is for reference parameters", p.Type, p.Param)
	}
	if p.Sort {
		out = append(out,
			bson.D{{Key: field("a", p.Param), Value: 1}, {Key: "_id", Value: 1}},
			bson.D{{Key: field("z", p.Param), Value: -1}, {Key: "_id", Value: 1}})
	}
	return out, nil
}

// indexedParams returns DefaultIndexes changed by the settings stored in
// the database.
func (s *Store) indexedParams(ctx context.Context) ([]IndexedParam, error) {
	var set indexSettings
	err := s.db.Collection(settingsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: indexSettingsID}}).Decode(&set)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("index settings: %w", err)
	}
	params := slices.DeleteFunc(DefaultIndexes(), func(p IndexedParam) bool {
		return slices.ContainsFunc(set.Drop, func(d struct {
			Type  string `bson:"type"`
			Param string `bson:"param"`
		}) bool {
			return d.Type == p.Type && d.Param == p.Param
		})
	})
	return append(params, set.Add...), nil
}

// createIndexes creates the indexes of the plan that are missing: on
// every collection of the plan and on every resource collection already in
// the database. It returns what it created, one line per collection. With
// prune, it also drops the search indexes that are no longer planned.
func (s *Store) createIndexes(ctx context.Context, prune bool) ([]string, error) {
	params, err := s.indexedParams(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := planIndexes(params)
	if err != nil {
		return nil, err
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	for _, name := range names {
		if validType(name) && plan[name] == nil {
			plan[name] = ownIndexes()
		}
	}
	var done []string
	for _, typ := range slices.Sorted(maps.Keys(plan)) {
		coll := s.db.Collection(typ)
		if prune {
			dropped, err := dropUnplanned(ctx, coll, plan[typ])
			if err != nil {
				return done, fmt.Errorf("indexes of %s: %w", typ, err)
			}
			if dropped > 0 {
				done = append(done, fmt.Sprintf("%s: dropped %d indexes no longer planned", typ, dropped))
			}
		}
		n, err := ensure(ctx, coll, plan[typ])
		if err != nil {
			return done, fmt.Errorf("indexes of %s: %w", typ, err)
		}
		if n > 0 {
			done = append(done, fmt.Sprintf("%s: created %d indexes", typ, n))
		}
	}
	return done, nil
}

// dropUnplanned drops the indexes of coll on search fields ("ix…") that
// plan does not hold, and returns how many.
func dropUnplanned(ctx context.Context, coll *mongo.Collection, plan []bson.D) (int, error) {
	cur, err := coll.Indexes().List(ctx)
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == codeNamespaceNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var specs []struct {
		Name string `bson:"name"`
		Key  bson.D `bson:"key"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		return 0, err
	}
	dropped := 0
	for _, spec := range specs {
		if len(spec.Key) == 0 || !strings.HasPrefix(spec.Key[0].Key, "ix") {
			continue
		}
		if slices.ContainsFunc(plan, func(d bson.D) bool { return keyString(d) == keyString(spec.Key) }) {
			continue
		}
		if err := coll.Indexes().DropOne(ctx, spec.Name); err != nil {
			return dropped, fmt.Errorf("drop %s: %w", spec.Name, err)
		}
		dropped++
	}
	return dropped, nil
}
