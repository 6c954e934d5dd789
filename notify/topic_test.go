package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/notify"
	"carefhir/operation"
	"carefhir/server/auth/authtest"
	"carefhir/store"
)

// topicSubscription is a backport Subscription to a topic of this server.
func topicSubscription(topic, filter, endpoint, content string, heartbeat int) string {
	criteria := map[string]any{"extension": []any{map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": filter}}}
	channel := map[string]any{"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
		"_payload": map[string]any{"extension": []any{map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": content}}}}
	if heartbeat > 0 {
		channel["extension"] = []any{map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", "valueUnsignedInt": heartbeat}}
	}
	sub := map[string]any{"resourceType": "Subscription", "status": "requested", "reason": "test",
		"meta":     map[string]any{"profile": []string{"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"}},
		"criteria": notify.TopicBase + topic, "channel": channel}
	if filter != "" {
		sub["_criteria"] = criteria
	}
	b, _ := json.Marshal(sub)
	return string(b)
}

// notification is what a test reads of a backport notification Bundle.
type notification struct {
	Type, Topic, Since string
	Events             []string // event-number:focus
	Resources          []string // ids of the resources the Bundle carries
}

func readNotification(t *testing.T, body string) notification {
	t.Helper()
	var b struct {
		ResourceType, Type string
		Entry              []struct {
			Resource json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.ResourceType != "Bundle" || len(b.Entry) == 0 {
		t.Fatalf("not a notification Bundle: %s", body)
	}
	var p struct {
		ResourceType string
		Meta         struct{ Profile []string }
		Parameter    []struct {
			Name                                   string
			ValueCode, ValueString, ValueCanonical string
			Part                                   []struct {
				Name           string
				ValueString    string
				ValueReference struct{ Reference string }
			}
		}
	}
	json.Unmarshal(b.Entry[0].Resource, &p)
	if p.ResourceType != "Parameters" || len(p.Meta.Profile) != 1 || !strings.HasSuffix(p.Meta.Profile[0], "backport-subscription-status-r4") {
		t.Fatalf("first entry is not a SubscriptionStatus: %s", b.Entry[0].Resource)
	}
	n := notification{}
	for _, par := range p.Parameter {
		switch par.Name {
		case "type":
			n.Type = par.ValueCode
		case "topic":
			n.Topic = par.ValueCanonical
		case "events-since-subscription-start":
			n.Since = par.ValueString
		case "notification-event":
			var num, focus string
			for _, part := range par.Part {
				if part.Name == "event-number" {
					num = part.ValueString
				}
				if part.Name == "focus" {
					focus = part.ValueReference.Reference[strings.LastIndex(part.ValueReference.Reference, "/")+1:]
				}
			}
			n.Events = append(n.Events, num+":"+focus)
		}
	}
	if b.Type != "history" && n.Type != "query-status" {
		t.Errorf("Bundle type %s", b.Type)
	}
	for _, e := range b.Entry[1:] {
		var r struct{ ID string }
		if json.Unmarshal(e.Resource, &r) == nil && r.ID != "" {
			n.Resources = append(n.Resources, r.ID)
		}
	}
	return n
}

// TestTopicSubscription: the appointment-booked topic with a patient
// filter: handshake, an event per booking (created booked or updated to
// booked), none for other changes, numbered from 1; $status and $events;
// heartbeats.
func TestTopicSubscription(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		r := e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "Appointment?patient=Patient/p1", rx.URL+"/hook", "full-resource", 60))
		if r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		sub := idOf(t, r)
		e.deliver()
		got := rx.take()
		if len(got) != 1 || readNotification(t, got[0].Body).Type != "handshake" {
			t.Fatalf("handshake: %+v", got)
		}

		booked := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		proposed := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "proposed")))
		e.do("admin", "POST", "/Appointment", appointment("p2", "booked")) // filtered out
		upd := func(id, status, extra string) string {
			return strings.Replace(appointment("p1", status), `{"resourceType":"Appointment",`, `{"resourceType":"Appointment","id":"`+id+`",`+extra, 1)
		}
		e.do("admin", "PUT", "/Appointment/"+booked, upd(booked, "booked", `"description":"still booked",`)) // no change of status
		e.do("admin", "PUT", "/Appointment/"+proposed, upd(proposed, "booked", ""))                          // becomes booked
		e.do("admin", "PUT", "/Appointment/"+booked, upd(booked, "cancelled", ""))                           // another topic
		e.deliver()
		got = rx.take()
		var seen []string
		for _, g := range got {
			n := readNotification(t, g.Body)
			if n.Type != "event-notification" || n.Topic != notify.TopicBase+"appointment-booked" || len(n.Resources) != 1 {
				t.Errorf("notification %+v", n)
			}
			seen = append(seen, n.Since+" "+strings.Join(n.Events, ","))
		}
		want := []string{"1 1:" + booked, "2 2:" + proposed}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Fatalf("events %v, want %v", seen, want)
		}

		st := readNotification(t, e.do("admin", "GET", "/Subscription/"+sub+"/$status", "").body)
		if st.Type != "query-status" || st.Since != "2" {
			t.Errorf("$status: %+v", st)
		}
		evs := readNotification(t, e.do("admin", "GET", "/Subscription/"+sub+"/$events?eventsSinceNumber=2&content=full-resource", "").body)
		if evs.Type != "query-event" || fmt.Sprint(evs.Events) != "[2:"+proposed+"]" || fmt.Sprint(evs.Resources) != "["+proposed+"]" {
			t.Errorf("$events: %+v", evs)
		}

		// Heartbeat after 60 s without a notification.
		e.deliver()
		e.clock.Advance(59 * time.Second)
		e.deliver()
		if got := rx.take(); len(got) != 0 {
			t.Fatalf("sent before the heartbeat period: %+v", got)
		}
		e.clock.Advance(2 * time.Second)
		e.deliver()
		got = rx.take()
		if len(got) != 1 || readNotification(t, got[0].Body).Type != "heartbeat" {
			t.Errorf("heartbeat: %+v", got)
		}
	})
}

// TestTopicRefused: unknown topics, filters on another type or on a
// parameter the topic does not filter by, and bad payload contents are 422.
func TestTopicRefused(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	for _, body := range []string{
		topicSubscription("no-such-topic", "", "https://rx.test/", "id-only", 0),
		topicSubscription("appointment-booked", "Task?patient=Patient/p1", "https://rx.test/", "id-only", 0),
		topicSubscription("appointment-booked", "Appointment?status=booked", "https://rx.test/", "id-only", 0),
		topicSubscription("appointment-booked", "", "https://rx.test/", "everything", 0),
	} {
		if r := e.do("admin", "POST", "/Subscription", body); r.status != 422 {
			t.Errorf("%d %s\nfor %s", r.status, r.body, body)
		}
	}
}

// TestStatusOfSubscriptions: $status on the Subscription type answers the
// SubscriptionStatus of each topic-based Subscription the caller may
// read, of the ids and statuses asked for, as the IG's OperationDefinition
// served has it.
func TestStatusOfSubscriptions(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	rx := newReceiver(t)
	active := idOf(t, e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "", rx.URL+"/hook", "id-only", 0)))
	e.deliver()
	requested := idOf(t, e.do("admin", "POST", "/Subscription", topicSubscription("task-assigned", "", "https://rx.test/hook", "id-only", 0)))
	idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", "https://rx.test/hook", "")))
	statuses := func(query string) []string {
		t.Helper()
		r := e.do("admin", "GET", "/Subscription/$status"+query, "")
		var b struct {
			Type  string
			Total int
			Entry []struct {
				Resource struct {
					Parameter []struct {
						Name           string
						ValueCode      string
						ValueReference struct{ Reference string }
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(r.body), &b); r.status != 200 || err != nil || b.Type != "searchset" || b.Total != len(b.Entry) {
			t.Fatalf("$status%s: %d %s", query, r.status, r.body)
		}
		var got []string
		for _, en := range b.Entry {
			var sub, status string
			for _, p := range en.Resource.Parameter {
				switch p.Name {
				case "subscription":
					sub = p.ValueReference.Reference[strings.LastIndex(p.ValueReference.Reference, "/")+1:]
				case "status":
					status = p.ValueCode
				}
			}
			got = append(got, sub+" "+status)
		}
		slices.Sort(got)
		return got
	}
	all := []string{active + " active", requested + " requested"}
	slices.Sort(all)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", all},
		{"?id=" + requested, []string{requested + " requested"}},
		{"?id=" + requested + "&id=" + active, all},
		{"?status=active", []string{active + " active"}},
		{"?status=off", nil},
	} {
		if got := statuses(c.query); !slices.Equal(got, c.want) {
			t.Errorf("$status%s: %v, want %v", c.query, got, c.want)
		}
	}
	// A status that is no Subscription status is refused, naming the
	// parameter, rather than answered as if no Subscription had it.
	for _, query := range []string{"?status=bogus", "?status=active,bogus", "?status=Active"} {
		if r := e.do("admin", "GET", "/Subscription/$status"+query, ""); r.status != 400 || !strings.Contains(r.body, `name='status'`) || !strings.Contains(r.body, "code-invalid") {
			t.Errorf("$status%s: %d %s, want 400 naming status", query, r.status, r.body)
		}
	}
}

// TestTopicExtensionValueOfAnotherType: a backport extension holding its
// value in another type than the IG's is refused, 422 naming the element,
// and nothing is stored: read as absent, it would notify unfiltered, or
// without the heartbeats asked for.
func TestTopicExtensionValueOfAnotherType(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	for _, c := range []struct{ body, at string }{
		{strings.Replace(topicSubscription("appointment-booked", "Appointment?patient=Patient/p1", "https://rx.test/", "id-only", 0), `"valueString"`, `"valueCode"`, 1),
			"Subscription.criteria.extension"},
		{strings.Replace(topicSubscription("appointment-booked", "", "https://rx.test/", "full-resource", 0), `"valueCode"`, `"valueString"`, 1),
			"Subscription.channel.payload.extension"},
		{strings.Replace(topicSubscription("appointment-booked", "", "https://rx.test/", "id-only", 300), `"valueUnsignedInt":300`, `"valueString":"300"`, 1),
			"Subscription.channel.extension"},
	} {
		if r := e.do("admin", "POST", "/Subscription", c.body); r.status != 422 || !strings.Contains(r.body, `"`+c.at+`"`) {
			t.Errorf("%d %s\nfor %s, want 422 naming %s", r.status, r.body, c.body, c.at)
		}
	}
	if got := e.do("admin", "GET", "/Subscription?_summary=count", "").body; !strings.Contains(got, `"total":0`) {
		t.Errorf("Subscriptions stored: %s, want none", got)
	}
}

// TestTopicEventsReadAsCaller: $events names or sends the focus of an
// event only to a caller who may read it, whatever the content asked:
// another reader of the Subscription learns nothing of resources outside
// their own reach.
func TestTopicEventsReadAsCaller(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		r := e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "Appointment?patient=Patient/p1", rx.URL+"/hook", "id-only", 0))
		if r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		sub := idOf(t, r)
		e.deliver()
		mine := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		hidden := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		if got := rx.take(); len(got) != 3 {
			t.Fatalf("notifications: %+v", got)
		}
		e.tokens["nurse"] = e.idp.Sign(t, authtest.Claims(issuer, e.base, map[string]any{
			"sub": "nurse", "scope": "system/Subscription.rs system/Appointment.rs?_id=" + mine}))
		for _, content := range []string{"id-only", "full-resource"} {
			r := e.do("nurse", "GET", "/Subscription/"+sub+"/$events?content="+content, "")
			if r.status != 200 {
				t.Fatalf("$events %s: %d %s", content, r.status, r.body)
			}
			if strings.Contains(r.body, hidden) {
				t.Errorf("$events %s names %s, which the caller may not read: %s", content, hidden, r.body)
			}
			if evs := readNotification(t, r.body); fmt.Sprint(evs.Events) != "[1:"+mine+"]" {
				t.Errorf("$events %s: %v, want [1:%s]", content, evs.Events, mine)
			}
		}
		if evs := readNotification(t, e.do("admin", "GET", "/Subscription/"+sub+"/$events", "").body); fmt.Sprint(evs.Events) != "[1:"+mine+" 2:"+hidden+"]" {
			t.Errorf("$events of the owner: %v", evs.Events)
		}
	})
}

// TestHeartbeatEndpointHangs: a heartbeat endpoint that never answers
// holds back no other subscription's notifications.
func TestHeartbeatEndpointHangs(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{}, func(c *notify.Config) {
			c.Poll, c.Timeout = 10*time.Millisecond, time.Hour
		})
		beating := make(chan struct{}, 1)
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if strings.Contains(string(body), `"heartbeat"`) {
				select {
				case beating <- struct{}{}:
				default:
				}
				<-release
			}
		}))
		t.Cleanup(hang.Close)
		t.Cleanup(func() { close(release) })
		rx := newReceiver(t)
		e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "", hang.URL+"/hook", "id-only", 1))
		e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", ""))
		e.deliver()
		rx.take()

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.n.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		e.clock.Advance(2 * time.Second)
		select {
		case <-beating:
		case <-time.After(20 * time.Second):
			t.Fatal("no heartbeat was sent")
		}
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		for deadline := time.Now().Add(20 * time.Second); len(rx.take()) == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("a notification of another subscription waits for a heartbeat that hangs")
			}
		}
	})
}

// TestTopicSubscriptionCreatedAgain: a Subscription created under the id
// of a deleted one counts its events from its own start, and $events
// lists none of the deleted one's.
func TestTopicSubscriptionCreatedAgain(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		body := strings.Replace(topicSubscription("appointment-booked", "", rx.URL+"/hook", "id-only", 0), `"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"scr"`, 1)
		if r := e.do("admin", "PUT", "/Subscription/scr", body); r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		e.deliver()
		old := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		e.do("admin", "DELETE", "/Subscription/scr", "")
		if r := e.do("admin", "PUT", "/Subscription/scr", body); r.status != 201 {
			t.Fatalf("subscribe again: %d %s", r.status, r.body)
		}
		e.deliver()
		booked := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		var seen []string
		for _, g := range rx.take() {
			n := readNotification(t, g.Body)
			seen = append(seen, n.Type+" "+n.Since+" "+strings.Join(n.Events, ","))
		}
		want := []string{"handshake 0 ", "event-notification 1 1:" + old, "handshake 0 ", "event-notification 1 1:" + booked}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Errorf("notifications %q, want %q", seen, want)
		}
		r := e.do("admin", "GET", "/Subscription/scr/$events", "")
		if evs := readNotification(t, r.body); evs.Since != "1" || fmt.Sprint(evs.Events) != "[1:"+booked+"]" {
			t.Errorf("$events: %+v, want only 1:%s", evs, booked)
		}
	})
}

// TestNoHeartbeatAfterEnd: a topic-based subscription past its end is
// sent no heartbeat, which would say it is active, and is switched off.
func TestNoHeartbeatAfterEnd(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	rx := newReceiver(t)
	end := e.clock.Now().Add(100 * time.Second).UTC().Format(time.RFC3339)
	def := `{"end":"` + end + `",` + topicSubscription("appointment-booked", "", rx.URL+"/hook", "id-only", 60)[1:]
	sub := idOf(t, e.do("admin", "POST", "/Subscription", def))
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{{0, "[handshake]"}, {61 * time.Second, "[heartbeat]"}, {61 * time.Second, "[]"}} {
		e.clock.Advance(step.advance)
		e.deliver()
		var types []string
		for _, g := range rx.take() {
			types = append(types, readNotification(t, g.Body).Type)
		}
		if got := fmt.Sprint(types); got != step.want {
			t.Errorf("at %s: sent %s, want %s", e.clock.Now().Format(time.TimeOnly), got, step.want)
		}
	}
	if got := e.do("admin", "GET", "/Subscription/"+sub, "").body; field(t, got, "status") != "off" {
		t.Errorf("past its end: %s, want status off", got)
	}
}

// TestHeartbeatPeriodOfNewSubscription: a Subscription created under the
// id of a deleted one is sent its first heartbeat a period after it is
// first seen active, as any new subscription is, not at once for the time
// since the deleted one was last sent something.
func TestHeartbeatPeriodOfNewSubscription(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		def := `{"id":"hb",` + topicSubscription("appointment-booked", "Appointment?patient=Patient/p1", rx.URL+"/hook", "id-only", 60)[1:]
		// sent delivers what is due and returns the types of the
		// notifications sent.
		sent := func() []string {
			t.Helper()
			e.deliver()
			var types []string
			for _, g := range rx.take() {
				types = append(types, readNotification(t, g.Body).Type)
			}
			return types
		}
		if r := e.do("admin", "PUT", "/Subscription/hb", def); r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		if got := sent(); fmt.Sprint(got) != "[handshake]" {
			t.Fatalf("first subscription: sent %v", got)
		}
		e.clock.Advance(61 * time.Second)
		if got := sent(); fmt.Sprint(got) != "[heartbeat]" {
			t.Fatalf("first subscription, after its period: sent %v", got)
		}
		if r := e.do("admin", "DELETE", "/Subscription/hb", ""); r.status != 200 && r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		if got := sent(); len(got) != 0 {
			t.Fatalf("after the delete: sent %v", got)
		}

		e.clock.Advance(2 * time.Minute)
		if r := e.do("admin", "PUT", "/Subscription/hb", def); r.status != 201 {
			t.Fatalf("subscribe again: %d %s", r.status, r.body)
		}
		if got := sent(); fmt.Sprint(got) != "[handshake]" {
			t.Errorf("new subscription: sent %v, want its handshake alone", got)
		}
		e.clock.Advance(59 * time.Second)
		if got := sent(); len(got) != 0 {
			t.Errorf("new subscription, within its period: sent %v", got)
		}
		e.clock.Advance(2 * time.Second)
		if got := sent(); fmt.Sprint(got) != "[heartbeat]" {
			t.Errorf("new subscription, after its period: sent %v", got)
		}
	})
}

// TestHeartbeatStopsWhenOwnerLapses: once the token of a subscription's
// owner has expired, it is sent no more heartbeats, which would tell the
// receiver that all is well, and is set to error, saying why.
func TestHeartbeatStopsWhenOwnerLapses(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e, exp := newEnvExpiringApp(t, eng)
		rx := newReceiver(t)
		r := e.do("app", "POST", "/Subscription", topicSubscription("appointment-booked", "", rx.URL+"/hook", "id-only", 60))
		if r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		sub := idOf(t, r)
		e.deliver()
		e.clock.Advance(61 * time.Second)
		e.deliver()
		var types []string
		for _, g := range rx.take() {
			types = append(types, readNotification(t, g.Body).Type)
		}
		if fmt.Sprint(types) != "[handshake heartbeat]" {
			t.Fatalf("sent %v while the token is current, want the handshake and a heartbeat", types)
		}

		e.clock.Advance(exp.Sub(e.clock.Now()) + 2*time.Minute)
		e.deliver()
		if got := rx.take(); len(got) != 0 {
			t.Errorf("sent %d notifications after the owner's token expired", len(got))
		}
		r = e.do("admin", "GET", "/Subscription/"+sub, "")
		if st, why := field(t, r.body, "status"), field(t, r.body, "error"); st != "error" || !strings.Contains(why, "token expired at") {
			t.Errorf("subscription after the lapse: status %q, error %q", st, why)
		}
	})
}

// TestTopicNotificationMethod: the entry of an event's focus names the
// request that wrote the version, as its history does: POST of the type
// for a create, PUT of the resource for an update as create, PATCH for a
// patch; in the notification and in $events alike.
func TestTopicNotificationMethod(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e, rx, sub := topicSubscriber(t, eng, "appointment-booked")
		idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		if r := e.do("admin", "PUT", "/Appointment/put1", `{"id":"put1",`+appointment("p1", "booked")[1:]); r.status != 201 {
			t.Fatalf("update as create: %d %s", r.status, r.body)
		}
		patched := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "proposed")))
		if r := e.doWith("admin", "PATCH", "/Appointment/"+patched, `[{"op":"replace","path":"/status","value":"booked"}]`,
			header("Content-Type", "application/json-patch+json")); r.status != 200 {
			t.Fatalf("PATCH: %d %s", r.status, r.body)
		}
		wantFocusRequests(t, e, rx, sub, "a POST, a PUT as create, a PATCH",
			"POST Appointment 201", "PUT Appointment/put1 201", "PATCH Appointment/"+patched+" 200")
	})
}

// TestTopicNotificationRecreated: a resource written again after its
// delete is created again (R4 http.html, update as create), as its history
// shows it: its event is a create, 201, whatever its version, and a topic
// raised by creates only is raised by it; in the notification and in
// $events alike.
func TestTopicNotificationRecreated(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e, rx, sub := topicSubscriber(t, eng, "careplan-created")
		plan := func(status string) string {
			return `{"resourceType":"CarePlan","id":"cp1","status":"` + status + `","intent":"plan","subject":{"reference":"Patient/p1"}}`
		}
		for _, w := range []struct {
			method, body string
			status       int
		}{{"PUT", plan("active"), 201}, {"DELETE", "", 200}, {"PUT", plan("active"), 201}, {"PUT", plan("on-hold"), 200}} {
			if r := e.do("admin", w.method, "/CarePlan/cp1", w.body); r.status != w.status && !(w.method == "DELETE" && r.status == 204) {
				t.Fatalf("%s CarePlan/cp1: %d %s", w.method, r.status, r.body)
			}
		}
		wantFocusRequests(t, e, rx, sub, "a create, a delete, a create again, an update",
			"PUT CarePlan/cp1 201", "PUT CarePlan/cp1 201")
	})
}

// TestTopicSubscriptionLoadedMidWrite: a process that loads the
// subscriptions again between a write's check and its outbox rows (its
// poll), and finds there a topic-based subscription another process has
// just made, still compares the version the write replaces: an
// Appointment booked before and after the update is not booked again.
// Two processes on one store: MongoDB (a SQLite directory serves one).
func TestTopicSubscriptionLoadedMidWrite(t *testing.T) {
	eng := engines[1]
	t.Run(eng.name, func(t *testing.T) {
		place := eng.place(t)
		var a *env
		var polling atomic.Bool
		// The deliverer of a polls after the Notifier's check of a write.
		poll := operation.Hook{Name: "poll", Types: []string{"Appointment"}, Check: func(ctx context.Context, _ operation.Store, _ *operation.Change) error {
			if !polling.Load() {
				return nil
			}
			return a.n.DeliverPending(context.WithoutCancel(ctx))
		}}
		a = newEnvHooks(t, eng.open(t, place), map[string]map[string]any{}, []operation.Hook{poll}, func(c *notify.Config) { c.Holder = "a" })
		b := newEnv(t, eng.open(t, place), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b" })
		upd := func(id, status string) string {
			return `{"id":"` + id + `","description":"moved",` + appointment("p1", status)[1:]
		}
		booked := idOf(t, a.do("admin", "POST", "/Appointment", appointment("p1", "booked"))) // a loads the subscriptions: none
		rx := newReceiver(t)
		sub := idOf(t, b.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "", rx.URL+"/hook", "id-only", 0)))
		b.deliver()
		rx.take()

		polling.Store(true)
		if r := a.do("admin", "PUT", "/Appointment/"+booked, upd(booked, "booked")); r.status != 200 {
			t.Fatalf("update, still booked: %d %s", r.status, r.body)
		}
		proposed := idOf(t, a.do("admin", "POST", "/Appointment", appointment("p1", "proposed")))
		if r := a.do("admin", "PUT", "/Appointment/"+proposed, upd(proposed, "booked")); r.status != 200 {
			t.Fatalf("update to booked: %d %s", r.status, r.body)
		}
		b.deliver()
		var seen []string
		for _, g := range rx.take() {
			seen = append(seen, readNotification(t, g.Body).Events...)
		}
		if want := []string{"1:" + proposed}; !slices.Equal(seen, want) {
			t.Errorf("events notified of an update still booked (%s), then one to booked (%s): %v, want %v", booked, proposed, seen, want)
		}
		evs := readNotification(t, b.do("admin", "GET", "/Subscription/"+sub+"/$events", "").body)
		if want := []string{"1:" + proposed}; !slices.Equal(evs.Events, want) {
			t.Errorf("$events: %v, want %v", evs.Events, want)
		}
	})
}

// topicSubscriber returns a server on eng with an active full-resource
// subscription to topic, whose handshake rx has taken.
func topicSubscriber(t *testing.T, eng engine, topic string) (e *env, rx *receiver, sub string) {
	t.Helper()
	e = newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
	rx = newReceiver(t)
	sub = idOf(t, e.do("admin", "POST", "/Subscription", topicSubscription(topic, "", rx.URL+"/hook", "full-resource", 0)))
	e.deliver()
	rx.take()
	return e, rx, sub
}

// wantFocusRequests delivers what is due and requires the focus entries
// of the notifications rx takes, and of the $events of sub, to be want
// (focusRequests), the events of writes.
func wantFocusRequests(t *testing.T, e *env, rx *receiver, sub, writes string, want ...string) {
	t.Helper()
	e.deliver()
	var seen []string
	for _, g := range rx.take() {
		seen = append(seen, focusRequests(t, g.Body)...)
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("notifications of %s: %q, want %q", writes, seen, want)
	}
	r := e.do("admin", "GET", "/Subscription/"+sub+"/$events", "")
	if got := focusRequests(t, r.body); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("$events of %s: %q, want %q", writes, got, want)
	}
}

// focusRequests returns the request (method and url) and response status
// of each entry after the SubscriptionStatus of a notification Bundle.
func focusRequests(t *testing.T, body string) []string {
	t.Helper()
	var b struct {
		Entry []struct {
			Request  struct{ Method, URL string }
			Response struct{ Status string }
		}
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || len(b.Entry) == 0 {
		t.Fatalf("not a notification Bundle: %s", body)
	}
	var out []string
	for _, e := range b.Entry[1:] {
		out = append(out, e.Request.Method+" "+e.Request.URL+" "+e.Response.Status)
	}
	return out
}

// daylessAppointments serves each Appointment's versions as a server that
// did not yet refuse a day its month lacks could have stored them: with a
// start on 30 February.
type daylessAppointments struct {
	store.Store
	store.Finder
}

func (d daylessAppointments) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	v, err := d.Store.VRead(ctx, typ, id, version)
	if err != nil || typ != "Appointment" || v.Deleted {
		return v, err
	}
	older := *v
	older.JSON = bytes.Replace(v.JSON, []byte(`"resourceType":"Appointment",`), []byte(`"resourceType":"Appointment","start":"2026-02-30T10:00:00Z",`), 1)
	return &older, nil
}

// TestTopicEventsOfStoredDaylessDate: $events with full resources sends
// a focus version stored with a date on a day its month lacks as it is
// stored, as a read of it does.
func TestTopicEventsOfStoredDaylessDate(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		e := newEnv(t, daylessAppointments{Store: st, Finder: st.(store.Finder)}, map[string]map[string]any{})
		rx := newReceiver(t)
		r := e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "", rx.URL+"/hook", "full-resource", 0))
		if r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		sub := idOf(t, r)
		e.deliver()
		appt := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		r = e.do("admin", "GET", "/Subscription/"+sub+"/$events?content=full-resource", "")
		if r.status != 200 {
			t.Fatalf("$events: %d %s", r.status, r.body)
		}
		if !strings.Contains(r.body, `"id":"`+appt+`"`) || !strings.Contains(r.body, `"start":"2026-02-30T10:00:00Z"`) {
			t.Errorf("$events does not send Appointment/%s as stored: %s", appt, r.body)
		}
	})
}
