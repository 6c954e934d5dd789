package notify

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"

	"carefhir/store"
)

// The engine-level records of topic-based subscriptions.
const (
	// counterType holds, per subscription, the number of events
	// delivered since it started (events-since-subscription-start).
	counterType = "NotifyCounter"
	// eventType keeps each event delivered, for $events.
	eventType = "NotifyEvent"
)

// event is an event of a topic-based subscription, as kept for $events.
type event struct {
	Number    int64     `json:"number"`
	Timestamp time.Time `json:"timestamp"`
	Type      string    `json:"type"`
	ID        string    `json:"id"`
	Version   int64     `json:"version"`
	Deleted   bool      `json:"deleted,omitempty"`
	// Method is the HTTP method of the interaction that wrote Version,
	// as its history shows it: "" when not recorded.
	Method string `json:"method,omitempty"`
	// Creates marks a Version that created the resource (row.Creates).
	Creates bool `json:"creates,omitempty"`
}

// eventID names the record of event number of subscription sub, in order.
func eventID(sub string, number int64) string { return fmt.Sprintf("%s-%012d", sub, number) }

// counter is the count of the events delivered to a subscription, kept
// across the Subscriptions that have held its id: Count events were
// numbered under it, Start of them before the current Subscription
// started (it was created after a deletion of the id).
type counter struct {
	Count   int64 `json:"count"`
	Start   int64 `json:"start,omitempty"`
	version int64 // of the record; 0: none yet
}

// since is events-since-subscription-start.
func (c counter) since() int64 { return c.Count - c.Start }

// readCounter returns the counter of sub.
func readCounter(ctx context.Context, r store.Reader, sub string) (counter, error) {
	v, err := r.Read(ctx, counterType, sub)
	if errors.Is(err, store.ErrNotFound) {
		return counter{}, nil
	}
	if err != nil {
		return counter{}, err
	}
	var c counter
	if err := json.Unmarshal(v.JSON, &c); err != nil {
		return counter{}, fmt.Errorf("event counter of %s: %w", sub, err)
	}
	c.version = v.VersionID
	return c, nil
}

// putCounter writes c as the counter of sub.
func putCounter(ctx context.Context, w store.Writer, sub string, c counter, at time.Time) error {
	body, _ := json.Marshal(c)
	return w.Put(ctx, &store.Write{Type: counterType, ID: sub, Expected: c.version, LastUpdated: at, JSON: body})
}

// restartCounter starts the events of sub again from 0: the events
// numbered so far belong to the Subscriptions that held the id before.
func restartCounter(ctx context.Context, tx store.Tx, sub string, now time.Time) error {
	c, err := readCounter(ctx, tx, sub)
	if err != nil || c.version == 0 {
		return err
	}
	c.Start = c.Count
	return putCounter(ctx, tx, sub, c, now.UTC().Truncate(time.Millisecond))
}

// recordEvent keeps ev, numbered from the start of c, and counts it.
func recordEvent(ctx context.Context, w store.Tx, sub string, ev event, c counter, now time.Time) error {
	at := now.UTC().Truncate(time.Millisecond)
	body, _ := json.Marshal(ev)
	if err := w.Put(ctx, &store.Write{Type: eventType, ID: eventID(sub, c.Start+ev.Number), LastUpdated: at, JSON: body,
		Index: store.Index{Tokens: []store.Token{{Param: "subscription", Code: sub}}}}); err != nil {
		return err
	}
	c.Count = c.Start + ev.Number
	return putCounter(ctx, w, sub, c, at)
}

// statusParameters is the SubscriptionStatus of the R4 backport, as a
// Parameters resource.
func (n *Notifier) statusParameters(sub *subscription, status, typ string, since int64, events []event) map[string]any {
	params := []any{
		map[string]any{"name": "subscription", "valueReference": map[string]any{"reference": n.cfg.BaseURL + "/Subscription/" + sub.id}},
		map[string]any{"name": "topic", "valueCanonical": sub.topic.URL},
		map[string]any{"name": "status", "valueCode": status},
		map[string]any{"name": "type", "valueCode": typ},
		map[string]any{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(since, 10)},
	}
	for _, ev := range events {
		parts := []any{
			map[string]any{"name": "event-number", "valueString": strconv.FormatInt(ev.Number, 10)},
			map[string]any{"name": "timestamp", "valueInstant": ev.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00")},
		}
		if sub.content != contentEmpty {
			parts = append(parts, map[string]any{"name": "focus", "valueReference": map[string]any{"reference": n.cfg.BaseURL + "/" + ev.Type + "/" + ev.ID}})
		}
		params = append(params, map[string]any{"name": "notification-event", "part": parts})
	}
	return map[string]any{"resourceType": "Parameters", "meta": map[string]any{"profile": []string{profileStatus}}, "parameter": params}
}

// notificationBundle is a notification of the backport: a history Bundle
// whose first entry is the status, then the focus resources (for
// full-resource content).
func (n *Notifier) notificationBundle(sub *subscription, status, typ string, since int64, events []event, resources map[int64][]byte, now time.Time) ([]byte, error) {
	entries := []any{map[string]any{
		"fullUrl":  "urn:uuid:" + newUUID(),
		"resource": n.statusParameters(sub, status, typ, since, events),
		"request":  map[string]any{"method": "GET", "url": n.cfg.BaseURL + "/Subscription/" + sub.id + "/$status"},
		"response": map[string]any{"status": "200"},
	}}
	for _, ev := range events {
		if sub.content == contentEmpty {
			continue
		}
		entry := map[string]any{"fullUrl": n.cfg.BaseURL + "/" + ev.Type + "/" + ev.ID}
		// The request is the one that wrote the version, and its status
		// whether it created the resource, as its history shows them: a
		// version that created it (the first, or one written after a
		// delete) is 201. For an event recorded before either was, a
		// tombstone was a DELETE, version 1 a POST that created it, any
		// other a PUT.
		method, status := ev.Method, "200"
		switch {
		case ev.Deleted:
			method, status = cmp.Or(method, "DELETE"), "204"
		case ev.Creates || ev.Version == 1:
			status = "201"
		}
		if method == "" {
			method = "PUT"
			if ev.Version == 1 {
				method = "POST"
			}
		}
		req := map[string]any{"method": method, "url": ev.Type + "/" + ev.ID}
		if method == "POST" {
			req["url"] = ev.Type
		}
		entry["request"] = req
		entry["response"] = map[string]any{"status": status}
		if body, ok := resources[ev.Number]; ok && sub.content == contentFull {
			entry["resource"] = json.RawMessage(body)
		}
		entries = append(entries, entry)
	}
	return json.Marshal(map[string]any{"resourceType": "Bundle", "id": newUUID(), "type": "history",
		"timestamp": now.UTC().Format("2006-01-02T15:04:05.000Z07:00"), "entry": entries})
}

// deliverTopic delivers the event of rw, the version v of its focus, to a
// topic-based subscription: the next event number, the Bundle, and, once
// delivered, the event kept and counted.
func (n *Notifier) deliverTopic(ctx context.Context, recs store.Tx, sub *subscription, rw *row, v *store.Version) error {
	c, err := readCounter(ctx, recs, sub.id)
	if err != nil {
		return err
	}
	now := n.cfg.Now()
	ev := event{Number: c.since() + 1, Timestamp: rw.Created, Type: rw.Type, ID: rw.ID, Version: rw.Version, Deleted: rw.Deleted, Method: rw.Method, Creates: rw.Creates}
	resources := map[int64][]byte{}
	if !rw.Deleted {
		resources[ev.Number] = v.JSON
	}
	body, err := n.notificationBundle(sub, statusActive, "event-notification", ev.Number, []event{ev}, resources, now)
	if err != nil {
		return err
	}
	if err := n.send(ctx, sub, http.MethodPost, sub.endpoint, body); err != nil {
		return err
	}
	n.sent(sub.id, now)
	return recordEvent(ctx, recs, sub.id, ev, c, now)
}

// handshakeTopic sends the handshake Bundle of a topic-based subscription.
func (n *Notifier) handshakeTopic(ctx context.Context, recs store.Tx, sub *subscription) error {
	c, err := readCounter(ctx, recs, sub.id)
	if err != nil {
		return err
	}
	body, err := n.notificationBundle(sub, statusRequested, "handshake", c.since(), nil, nil, n.cfg.Now())
	if err != nil {
		return err
	}
	return n.send(ctx, sub, http.MethodPost, sub.endpoint, body)
}

// sent notes when a subscription was last sent anything, for heartbeats.
func (n *Notifier) sent(sub string, at time.Time) {
	n.lastSentMu.Lock()
	n.lastSent[sub] = at
	n.lastSentMu.Unlock()
}

// dueHeartbeats returns, by subscription, the sending of a heartbeat to
// each active topic-based subscription with a heartbeat period that was
// sent nothing for that long. The caller sends them, each apart from the
// others, so that an endpoint slow to answer delays no other.
//
// What was last sent to a subscription no longer active (deleted,
// switched off, in error, or written again as requested) is forgotten:
// kept, it would grow with every subscription ever seen, and time the
// first heartbeat of a subscription made active again, or created under
// the id of a deleted one, from what was sent before.
func (n *Notifier) dueHeartbeats(ctx context.Context, subs []*subscription) map[string]func(context.Context) {
	recs, err := n.records()
	if err != nil {
		return nil
	}
	now := n.cfg.Now()
	beating := map[string]bool{}
	due := map[string]func(context.Context){}
	for _, sub := range subs {
		if sub.topic == nil || sub.heartbeat <= 0 || sub.status != statusActive || sub.refused || sub.ended(now) {
			continue
		}
		beating[sub.id] = true
		n.lastSentMu.Lock()
		last, ok := n.lastSent[sub.id]
		if !ok {
			n.lastSent[sub.id] = now // the period counts from when this process first sees it
		}
		n.lastSentMu.Unlock()
		if !ok || now.Sub(last) < sub.heartbeat {
			continue
		}
		due[sub.id] = func(ctx context.Context) { n.heartbeat(ctx, recs, sub, now) }
	}
	n.lastSentMu.Lock()
	maps.DeleteFunc(n.lastSent, func(id string, _ time.Time) bool { return !beating[id] })
	n.lastSentMu.Unlock()
	return due
}

// heartbeat sends sub a heartbeat, while its owner's authorisation is in
// place: a heartbeat tells the receiver that the subscription is active.
func (n *Notifier) heartbeat(ctx context.Context, recs store.Tx, sub *subscription, now time.Time) {
	if _, _, ok, err := n.authorisedOwner(ctx, recs, sub.id); err != nil || !ok {
		if err != nil {
			n.cfg.Logger.Warn("notify: heartbeat", "subscription", sub.id, "err", err)
		}
		return
	}
	c, err := readCounter(ctx, recs, sub.id)
	if err != nil {
		n.cfg.Logger.Warn("notify: heartbeat", "subscription", sub.id, "err", err)
		return
	}
	body, err := n.notificationBundle(sub, statusActive, "heartbeat", c.since(), nil, nil, now)
	if err == nil {
		err = n.send(ctx, sub, http.MethodPost, sub.endpoint, body)
	}
	if err != nil {
		n.cfg.Logger.Warn("notify: heartbeat", "subscription", sub.id, "err", err)
		return
	}
	n.sent(sub.id, now)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents a fatal error instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
