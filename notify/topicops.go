package notify

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
)

// Operations are $status and $events of topic-based subscriptions (for
// server.Config.Operations).
func (n *Notifier) Operations() []operation.Operation {
	return []operation.Operation{
		{Name: "status", Definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status",
			Levels: operation.Type | operation.Instance, Types: []string{"Subscription"}, Idempotent: true, Invoke: n.status},
		{Name: "events", Definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events",
			Levels: operation.Instance, Types: []string{"Subscription"}, Idempotent: true, Invoke: n.events},
	}
}

// operationDefinitions holds the IG's OperationDefinitions of $status and
// $events, which Operations names.
//
//go:embed operationdefinitions/*.json
var operationDefinitions embed.FS

// OperationDefinitions returns the OperationDefinitions of $status and $events, JSON
// files for the host to serve (operation.Definitions reads them).
func OperationDefinitions() fs.FS { return operationDefinitions }

// maxEvents bounds the events one $events answer holds.
const maxEvents = 100

// topicSubscription reads the Subscription an operation is invoked on, as
// the caller, and its counter of events.
func (n *Notifier) topicSubscription(ctx context.Context, inv *operation.Invocation) (*subscription, recorder, counter, error) {
	v, err := inv.Store.Read(ctx, "Subscription", inv.ID)
	if err != nil {
		return nil, nil, counter{}, err
	}
	if v.Deleted {
		return nil, nil, counter{}, operation.Errorf(410, "deleted", "", "Subscription/%s was deleted", inv.ID)
	}
	res, err := decodeSubscription(v)
	if err != nil {
		return nil, nil, counter{}, err
	}
	// As a server of other settings may accept it: one this server
	// refuses now (its endpoint, its type) is still topic-based.
	sub, err := n.parseUnderAnySettings(res)
	if err != nil || sub.topic == nil {
		return nil, nil, counter{}, operation.Errorf(422, "not-supported", "", "Subscription/%s is not a topic-based subscription", inv.ID)
	}
	sub.status = res.Status.Get()
	r, err := asRecorder(inv.Store)
	if err != nil {
		return nil, nil, counter{}, err
	}
	c, err := readCounter(ctx, r.Records(), sub.id)
	return sub, r, c, err
}

// maxStatuses bounds the SubscriptionStatuses one $status answers at the
// type level.
const maxStatuses = 100

// status answers the SubscriptionStatus of a topic-based subscription; at
// the type level, those of the topic-based Subscriptions the caller may
// read, of the ids and statuses asked for (any, when none is), as the
// IG's OperationDefinition has it.
func (n *Notifier) status(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	if inv.ID == "" {
		return n.statuses(ctx, inv)
	}
	sub, _, c, err := n.topicSubscription(ctx, inv)
	if err != nil {
		return nil, err
	}
	return n.statusBundle([]*subscription{sub}, []counter{c})
}

// subscriptionStatuses are the codes of R4's subscription-status, which
// $status's status parameter takes: another would match nothing, and the
// empty answer would read as there being no such Subscription.
var subscriptionStatuses = []string{"requested", "active", "error", "off"}

// statuses answers $status at the type level.
func (n *Notifier) statuses(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	params := url.Values{"_count": {strconv.Itoa(maxStatuses)}}
	for _, status := range inv.Texts("status") {
		for code := range strings.SplitSeq(status, ",") {
			if !slices.Contains(subscriptionStatuses, code) {
				return nil, operation.Errorf(400, "code-invalid", "Parameters.parameter.where(name='status')",
					"status %q is not a Subscription status (%s)", code, strings.Join(subscriptionStatuses, ", "))
			}
		}
	}
	for name, param := range map[string]string{"id": "_id", "status": "status"} {
		if values := inv.Texts(name); len(values) > 0 {
			params.Set(param, strings.Join(values, ","))
		}
	}
	page, err := inv.Store.Search(ctx, "Subscription", params)
	if err != nil {
		return nil, err
	}
	if page.Next != "" {
		return nil, operation.Errorf(422, "too-costly", "", "more than %d Subscriptions match: name them with id, or narrow them with status", maxStatuses)
	}
	r, err := asRecorder(inv.Store)
	if err != nil {
		return nil, err
	}
	var subs []*subscription
	var counters []counter
	for _, v := range page.Matches {
		res, err := decodeSubscription(v)
		if err != nil {
			return nil, err
		}
		sub, err := n.parseUnderAnySettings(res)
		if err != nil || sub.topic == nil {
			continue // not a topic-based subscription, which has no SubscriptionStatus
		}
		c, err := readCounter(ctx, r.Records(), sub.id)
		if err != nil {
			return nil, err
		}
		subs, counters = append(subs, sub), append(counters, c)
	}
	return n.statusBundle(subs, counters)
}

// statusBundle is the searchset Bundle of the SubscriptionStatus of each
// of subs, whose counter of events is the same of counters.
func (n *Notifier) statusBundle(subs []*subscription, counters []counter) (*operation.Result, error) {
	entries := []any{}
	for i, sub := range subs {
		entries = append(entries, map[string]any{
			"fullUrl":  "urn:uuid:" + newUUID(),
			"resource": n.statusParameters(sub, sub.status, "query-status", counters[i].since(), nil),
			"search":   map[string]any{"mode": "match"},
		})
	}
	b := map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(subs)}
	if len(entries) > 0 {
		b["entry"] = entries
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return bundleResult(body)
}

// events answers the events kept of a topic-based subscription, from
// eventsSinceNumber to eventsUntilNumber (at most 100), with content as
// asked, each focus read as the caller.
func (n *Notifier) events(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	sub, r, c, err := n.topicSubscription(ctx, inv)
	if err != nil {
		return nil, err
	}
	since, err := inv.Int("eventsSinceNumber", 1)
	if err != nil {
		return nil, err
	}
	count := c.since()
	until, err := inv.Int("eventsUntilNumber", int(count))
	if err != nil {
		return nil, err
	}
	if content, err := inv.Text("content"); err != nil {
		return nil, err
	} else if content != "" {
		if content != contentEmpty && content != contentIDs && content != contentFull {
			return nil, operation.Errorf(400, "invalid", "content", "content %q is not empty, id-only or full-resource", content)
		}
		sub.content = content
	}
	recs := r.Records()
	// The answer starts from the first event kept from since on, rather
	// than spend its 100 on numbers purged (docs/subscriptions.md,
	// Retention).
	if since, err = firstKept(ctx, recs, sub.id, c, max(since, 1), int(count)); err != nil {
		return nil, err
	}
	until = min(until, int(count), since+maxEvents-1)
	var evs []event
	resources := map[int64][]byte{}
	for num := since; num <= until; num++ {
		v, err := recs.Read(ctx, eventType, eventID(sub.id, c.Start+int64(num)))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var ev event
		if err := json.Unmarshal(v.JSON, &ev); err != nil {
			return nil, fmt.Errorf("event %s: %w", v.ID, err)
		}
		if sub.content != contentEmpty {
			// The event names its focus (and sends it, in full): only to
			// a caller who may read that version, as its owner could when
			// it was delivered. A deletion is decided by the version it
			// deleted.
			fv, err := r.VRead(ctx, ev.Type, ev.ID, ev.Version)
			var denied *access.Denied
			switch {
			case errors.Is(err, store.ErrNotFound) || errors.As(err, &denied):
				continue // not the caller's to read
			case err != nil:
				return nil, err
			}
			if sub.content == contentFull && !ev.Deleted {
				resources[ev.Number] = fv.JSON
			}
		}
		evs = append(evs, ev)
	}
	body, err := n.notificationBundle(sub, sub.status, "query-event", count, evs, resources, n.cfg.Now())
	if err != nil {
		return nil, err
	}
	return bundleResult(body)
}

// firstKept returns the least number in [from, to] whose event of
// subscription sub (with counter c) is kept, or to+1 when none is. The
// events kept are a subscription's latest: a purge removes the oldest
// first (retain.go), so whether an event is kept turns, as numbers grow,
// from no to yes once, and a binary search finds where.
func firstKept(ctx context.Context, r store.Reader, sub string, c counter, from, to int) (int, error) {
	lo, hi := from, to+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, err := r.Read(ctx, eventType, eventID(sub, c.Start+int64(mid)))
		switch {
		case err == nil:
			hi = mid
		case errors.Is(err, store.ErrNotFound):
			lo = mid + 1
		default:
			return 0, fmt.Errorf("event %d of %s: %w", mid, sub, err)
		}
	}
	return lo, nil
}

// bundleResult decodes a notification bundle the server built: as stored
// data, since it carries focus versions as they were stored, which may
// hold what the codec has refused only since they were written.
func bundleResult(body []byte) (*operation.Result, error) {
	res, err := fhirjson.UnmarshalStoredAs(body, "Bundle")
	if err != nil {
		return nil, fmt.Errorf("notify: bundle: %w", err)
	}
	return &operation.Result{Resource: res.(*fhir.Bundle)}, nil
}
