package notify

import (
	"encoding/json"
	"slices"
	"time"

	"carefhir/fhir"
	"carefhir/store"
)

// The Subscriptions R5 Backport IG (R4 profile): the extensions a
// topic-based Subscription carries, and the profile of the status
// Parameters of its notifications.
const (
	backport          = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	extFilterCriteria = backport + "backport-filter-criteria"
	extPayloadContent = backport + "backport-payload-content"
	extHeartbeat      = backport + "backport-heartbeat-period"
	profileStatus     = backport + "backport-subscription-status-r4"
	profileBackport   = backport + "backport-subscription"
)

// TopicBase is where the canonical URLs of the server's SubscriptionTopics
// start.
const TopicBase = "https://carefhir.nhs.uk/fhir/SubscriptionTopic/"

// The payload contents of a topic-based subscription.
const (
	contentEmpty = "empty"
	contentIDs   = "id-only"
	contentFull  = "full-resource"
)

// topic is a SubscriptionTopic of a care-coordination event: a change of
// one resource type, decided on the version before and the version after.
type topic struct {
	URL, Title, Type string
	// Filters are the search parameters filterBy may use.
	Filters []string
	// triggered reports whether the change from before (nil: a create)
	// to after (nil: a delete) is the event.
	triggered func(before, after map[string]any) bool
}

// pamCode is the code of the PAM score Observation.
const pamSystem, pamCode = "https://carefhir.example.org/fhir/CodeSystem/pam", "pam-score"

// Topics are the SubscriptionTopics this server raises.
var Topics = []topic{
	{URL: TopicBase + "appointment-booked", Title: "Appointment booked", Type: "Appointment",
		Filters: []string{"patient", "actor", "practitioner", "location", "service-type"}, triggered: becomes("status", "booked")},
	{URL: TopicBase + "appointment-cancelled", Title: "Appointment cancelled", Type: "Appointment",
		Filters: []string{"patient", "actor", "practitioner", "location", "service-type"}, triggered: becomes("status", "cancelled")},
	{URL: TopicBase + "careplan-created", Title: "Care plan created", Type: "CarePlan",
		Filters: []string{"patient", "subject", "category", "care-team"}, triggered: func(b, a map[string]any) bool { return b == nil && a != nil }},
	{URL: TopicBase + "careplan-status-changed", Title: "Care plan status changed", Type: "CarePlan",
		Filters: []string{"patient", "subject", "category", "care-team", "status"}, triggered: func(b, a map[string]any) bool {
			return b != nil && a != nil && b["status"] != a["status"]
		}},
	{URL: TopicBase + "pam-recorded", Title: "PAM score recorded", Type: "Observation",
		Filters: []string{"patient", "subject", "performer"}, triggered: func(b, a map[string]any) bool { return b == nil && a != nil && isPAM(a) }},
	{URL: TopicBase + "task-assigned", Title: "Task assigned", Type: "Task",
		Filters: []string{"patient", "owner", "requester", "code"}, triggered: func(b, a map[string]any) bool {
			if a == nil {
				return false
			}
			owner := ref(a["owner"])
			return owner != "" && (b == nil || ref(b["owner"]) != owner)
		}},
}

// becomes is the trigger of an element taking a value: created with it,
// or updated to it from another.
func becomes(element, value string) func(b, a map[string]any) bool {
	return func(b, a map[string]any) bool {
		return a != nil && a[element] == value && (b == nil || b[element] != value)
	}
}

func ref(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

// isPAM reports whether an Observation is a PAM score.
func isPAM(obs map[string]any) bool {
	code, _ := obs["code"].(map[string]any)
	codings, _ := code["coding"].([]any)
	return slices.ContainsFunc(codings, func(c any) bool {
		m, _ := c.(map[string]any)
		return m["system"] == pamSystem && m["code"] == pamCode
	})
}

func topicByURL(url string) *topic {
	for i := range Topics {
		if Topics[i].URL == url {
			return &Topics[i]
		}
	}
	return nil
}

// decodeMap decodes a version's JSON for the triggers; nil for none.
func decodeMap(v *store.Version) map[string]any {
	if v == nil || v.Deleted {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(v.JSON, &m) != nil {
		return nil
	}
	return m
}

// parseTopic reads the backport parts of a topic-based Subscription into s.
func (n *Notifier) parseTopic(res *fhir.Subscription, s *subscription) error {
	t := topicByURL(res.Criteria.Get())
	if t == nil {
		return invalid("Subscription.criteria", "%q is not a SubscriptionTopic of this server (see %s…)", res.Criteria.Get(), TopicBase)
	}
	s.topic, s.typ = t, t.Type
	for _, ext := range res.Criteria.Extension {
		if ext.Url != extFilterCriteria {
			continue
		}
		if ext.ValueString == nil {
			return wrongValue("Subscription.criteria.extension", extFilterCriteria, "valueString")
		}
		typ, where, err := n.parseCriteria(ext.ValueString.Get())
		if err != nil {
			return err
		}
		if typ != t.Type {
			return invalid("Subscription.criteria.extension", "the filter %q is on %s; the topic's resource is %s", ext.ValueString.Get(), typ, t.Type)
		}
		for _, c := range where {
			if !slices.Contains(t.Filters, c.Param) {
				return invalid("Subscription.criteria.extension", "the topic %s filters by %v, not %s", t.Title, t.Filters, c.Param)
			}
		}
		s.where = append(s.where, where...)
	}
	s.content = contentIDs
	if res.Channel.Payload != nil {
		for _, ext := range res.Channel.Payload.Extension {
			if ext.Url != extPayloadContent {
				continue
			}
			if ext.ValueCode == nil {
				return wrongValue("Subscription.channel.payload.extension", extPayloadContent, "valueCode")
			}
			s.content = ext.ValueCode.Get()
		}
	}
	if !slices.Contains([]string{contentEmpty, contentIDs, contentFull}, s.content) {
		return invalid("Subscription.channel.payload.extension", "payload content %q is not empty, id-only or full-resource", s.content)
	}
	if s.payload != payloadFull {
		return invalid("Subscription.channel.payload", "a topic-based subscription's notifications are Bundles: payload must be %s", payloadFull)
	}
	for _, ext := range res.Channel.Extension {
		if ext.Url != extHeartbeat {
			continue
		}
		if ext.ValueUnsignedInt == nil {
			return wrongValue("Subscription.channel.extension", extHeartbeat, "valueUnsignedInt")
		}
		s.heartbeat = time.Duration(ext.ValueUnsignedInt.Get()) * time.Second
	}
	return nil
}

// wrongValue refuses a backport extension, at expression, that holds its
// value in another type than the IG defines it with (want): read as
// absent, it would give the client other notifications than it asked
// for, unfiltered or without heartbeats.
func wrongValue(expression, url, want string) error {
	return invalid(expression, "the extension %s holds its value as %s", url, want)
}
