package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/notify"
	"carefhir/operation"
	"carefhir/server/access"
	"carefhir/server/auth/authtest"
	"carefhir/store"
	"carefhir/store/mongo"
	"carefhir/store/sqlite"
)

// subscription is a Subscription body to endpoint.
func subscription(criteria, endpoint, payload string, headers ...string) string {
	ch := map[string]any{"type": "rest-hook", "endpoint": endpoint}
	if payload != "" {
		ch["payload"] = payload
	}
	if len(headers) > 0 {
		ch["header"] = headers
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Subscription", "status": "requested",
		"reason": "test", "criteria": criteria, "channel": ch})
	return string(b)
}

func appointment(patient, status string) string {
	return fmt.Sprintf(`{"resourceType":"Appointment","status":%q,"participant":[{"actor":{"reference":"Patient/%s"},"status":"accepted"}]}`, status, patient)
}

// idOf returns the id in a created resource's body.
func idOf(t testing.TB, r *response) string {
	t.Helper()
	var v struct{ ID string }
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.ID == "" {
		t.Fatalf("no id in %d %s", r.status, r.body)
	}
	return v.ID
}

func field(t *testing.T, body, name string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	s, _ := v[name].(string)
	return s
}

func eachEngine(t *testing.T, fn func(t *testing.T, e engine)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { fn(t, e) })
	}
}

// TestRestHook: handshake, then a notification for each matching create,
// update and delete, none for others, with every payload.
func TestRestHook(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		e.do("admin", "PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`)
		e.do("admin", "PUT", "/Patient/p2", `{"resourceType":"Patient","id":"p2"}`)

		empty := e.do("admin", "POST", "/Subscription", subscription("Appointment?patient=Patient/p1&status=booked", rx.URL+"/empty", "", "Authorization: Bearer secret"))
		full := e.do("admin", "POST", "/Subscription", subscription("Appointment?patient=Patient/p1&status=booked", rx.URL+"/full", "application/fhir+json"))
		if empty.status != 201 || full.status != 201 {
			t.Fatalf("create: %d %s / %d %s", empty.status, empty.body, full.status, full.body)
		}
		fullID := idOf(t, full)
		e.deliver()
		got := rx.take()
		hs := map[string]received{}
		for _, g := range got {
			hs[g.Method+" "+g.Path] = g
		}
		if len(got) != 2 || hs["POST /empty"].Auth != "Bearer secret" || hs["POST /empty"].Body != "" || hs["POST /full"].Body != "" {
			t.Fatalf("handshakes: %+v", got)
		}
		if st := field(t, e.do("admin", "GET", "/Subscription/"+fullID, "").body, "status"); st != "active" {
			t.Fatalf("status after handshake = %q, want active", st)
		}

		booked := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.do("admin", "POST", "/Appointment", appointment("p2", "booked"))   // other patient
		e.do("admin", "POST", "/Appointment", appointment("p1", "proposed")) // other status
		e.deliver()
		got = rx.take()
		byPath := map[string]received{}
		for _, g := range got {
			byPath[g.Method+" "+g.Path] = g
		}
		if len(got) != 2 {
			t.Fatalf("after one matching create of three: %+v", got)
		}
		if g, ok := byPath["POST /empty"]; !ok || g.Body != "" {
			t.Errorf("empty payload: %+v", got)
		}
		g, ok := byPath["PUT /full/Appointment/"+booked]
		if !ok || g.ContentType != "application/fhir+json" || field(t, g.Body, "id") != booked {
			t.Errorf("full payload: %+v", got)
		}

		upd := strings.Replace(appointment("p1", "booked"), `{"resourceType":"Appointment",`, `{"resourceType":"Appointment","id":"`+booked+`","description":"moved",`, 1)
		e.do("admin", "PUT", "/Appointment/"+booked, upd)
		e.do("admin", "DELETE", "/Appointment/"+booked, "")
		e.deliver()
		got = rx.take()
		var full2 []string
		for _, g := range got {
			if strings.HasPrefix(g.Path, "/full") {
				full2 = append(full2, g.Method+" "+g.Path)
				if g.Method == "PUT" && field(t, g.Body, "description") != "moved" {
					t.Errorf("update delivered %s", g.Body)
				}
			}
		}
		want := []string{"PUT /full/Appointment/" + booked, "DELETE /full/Appointment/" + booked}
		if fmt.Sprint(full2) != fmt.Sprint(want) || len(got) != 4 {
			t.Errorf("update then delete: %v (all %+v), want %v", full2, got, want)
		}
	})
}

// TestSubscriptionRefused: criteria that do not parse, unsupported
// channels and payloads, and endpoints the SSRF guard refuses are 422, and
// nothing is stored.
func TestSubscriptionRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		for _, tt := range []struct{ name, body, where string }{
			{"unknown parameter", subscription("Appointment?colour=red", "https://rx.test/", ""), "Subscription.criteria"},
			{"unknown type", subscription("Spaceship?status=booked", "https://rx.test/", ""), "Subscription.criteria"},
			{"chain", subscription("Appointment?patient.name=Ward", "https://rx.test/", ""), "Subscription.criteria"},
			{"audit trail", subscription("AuditEvent?patient=Patient/p1", "https://rx.test/", ""), "Subscription.criteria"},
			{"bad payload", subscription("Appointment?status=booked", "https://rx.test/", "text/plain"), "Subscription.channel.payload"},
			{"http elsewhere", subscription("Appointment?status=booked", "http://rx.test/", ""), "Subscription.channel.endpoint"},
			{"metadata", subscription("Appointment?status=booked", "https://169.254.169.254/latest", ""), "Subscription.channel.endpoint"},
			{"link-local v6", subscription("Appointment?status=booked", "https://[fe80::1]/", ""), "Subscription.channel.endpoint"},
			{"metadata NAT64", subscription("Appointment?status=booked", "https://[64:ff9b::a9fe:a9fe]/latest", ""), "Subscription.channel.endpoint"},
			{"metadata NAT64 dotted", subscription("Appointment?status=booked", "https://[64:ff9b::169.254.169.254]/latest", ""), "Subscription.channel.endpoint"},
			{"Alibaba metadata NAT64", subscription("Appointment?status=booked", "https://[64:ff9b::100.100.100.200]/", ""), "Subscription.channel.endpoint"},
			{"ftp", subscription("Appointment?status=booked", "ftp://rx.test/", ""), "Subscription.channel.endpoint"},
			{"credentials", subscription("Appointment?status=booked", "https://u:p@rx.test/", ""), "Subscription.channel.endpoint"},
			{"fragment", subscription("Appointment?status=booked", "https://rx.test/hook#frag", "application/fhir+json"), "Subscription.channel.endpoint"},
			{"empty fragment", subscription("Appointment?status=booked", "https://rx.test/hook#", "application/fhir+json"), "Subscription.channel.endpoint"},
			{"port out of range", subscription("Appointment?status=booked", "https://rx.test:99999/hook", ""), "Subscription.channel.endpoint"},
			{"port zero", subscription("Appointment?status=booked", "https://rx.test:0/hook", ""), "Subscription.channel.endpoint"},
			{"header", subscription("Appointment?status=booked", "https://rx.test/", "", "no colon"), "Subscription.channel.header[0]"},
			{"header name", subscription("Appointment?status=booked", "https://rx.test/", "", "X-Ok: 1", "Bad Name: v"), "Subscription.channel.header[1]"},
			{"header name empty", subscription("Appointment?status=booked", "https://rx.test/", "", ": v"), "Subscription.channel.header[0]"},
			{"header name separator", subscription("Appointment?status=booked", "https://rx.test/", "", "X(1): v"), "Subscription.channel.header[0]"},
			{"header value control", subscription("Appointment?status=booked", "https://rx.test/", "", "X-Key: a\x7fb"), "Subscription.channel.header[0]"},
			{"header value line", subscription("Appointment?status=booked", "https://rx.test/", "", "X-Key: a\r\nHost: evil"), "Subscription.channel.header[0]"},
			{"header trailing line", subscription("Appointment?status=booked", "https://rx.test/", "", "X-Key: a\r\n"), "Subscription.channel.header[0]"},
			{"header host", subscription("Appointment?status=booked", "https://rx.test/", "", "Host: elsewhere.test"), "Subscription.channel.header[0]"},
			{"header content-length", subscription("Appointment?status=booked", "https://rx.test/", "", "content-length: 5"), "Subscription.channel.header[0]"},
			{"header transfer-encoding", subscription("Appointment?status=booked", "https://rx.test/", "", "Transfer-Encoding: chunked"), "Subscription.channel.header[0]"},
			{"header connection", subscription("Appointment?status=booked", "https://rx.test/", "", "Connection: close"), "Subscription.channel.header[0]"},
			{"header content-type", subscription("Appointment?status=booked", "https://rx.test/", "application/fhir+json", "X-Ok: 1", "Content-Type: text/plain"), "Subscription.channel.header[1]"},
			{"active", strings.Replace(subscription("Appointment?status=booked", "https://rx.test/", ""), `"requested"`, `"active"`, 1), "Subscription.status"},
			{"websocket", strings.Replace(subscription("Appointment?status=booked", "https://rx.test/", ""), `"rest-hook"`, `"websocket"`, 1), "Subscription.channel.type"},
		} {
			r := e.do("admin", "POST", "/Subscription", tt.body)
			if r.status != 422 || !strings.Contains(r.body, tt.where) {
				t.Errorf("%s: %d %s, want 422 at %s", tt.name, r.status, r.body, tt.where)
			}
		}
		if r := e.do("admin", "GET", "/Subscription", ""); r.status != 200 || strings.Contains(r.body, `"entry"`) {
			t.Errorf("refused subscriptions were stored: %s", r.body)
		}
	})
}

// TestEndpointQuery: a full payload goes to [endpoint]/[type]/[id] with
// the endpoint's query kept, for an update and a delete; the handshake
// and an empty payload go to the endpoint as written.
func TestEndpointQuery(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	rx := newReceiver(t)
	full := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/q?token=abc", "application/fhir+json")))
	e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/slash/?token=a%2Fb&x=1", "application/fhir+json"))
	e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/empty?token=abc", ""))
	e.deliver()
	got := map[string]bool{}
	for _, g := range rx.take() {
		got[g.Method+" "+g.Path+"?"+g.Query] = true
	}
	for _, want := range []string{"POST /q?token=abc", "POST /slash/?token=a%2Fb&x=1", "POST /empty?token=abc"} {
		if !got[want] {
			t.Errorf("handshake %s not made: %v", want, got)
		}
	}

	id := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
	e.do("admin", "DELETE", "/Appointment/"+id, "")
	e.deliver()
	var paths []string
	for _, g := range rx.take() {
		paths = append(paths, g.Method+" "+g.Path+"?"+g.Query)
	}
	slices.Sort(paths)
	want := []string{
		"DELETE /q/Appointment/" + id + "?token=abc",
		"DELETE /slash/Appointment/" + id + "?token=a%2Fb&x=1",
		"POST /empty?token=abc",
		"POST /empty?token=abc",
		"PUT /q/Appointment/" + id + "?token=abc",
		"PUT /slash/Appointment/" + id + "?token=a%2Fb&x=1",
	}
	if fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("deliveries:\n got %v\nwant %v", paths, want)
	}

	// An id may be "." or "..": it is appended as written, not resolved.
	e.do("admin", "PUT", "/Appointment/..", strings.Replace(appointment("p1", "booked"), "{", `{"id":"..",`, 1))
	e.deliver()
	paths = nil
	for _, g := range rx.take() {
		if g.Method == "PUT" {
			paths = append(paths, g.Path+"?"+g.Query)
		}
	}
	slices.Sort(paths)
	if want := []string{"/q/Appointment/..?token=abc", "/slash/Appointment/..?token=a%2Fb&x=1"}; fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("id \"..\": %v, want %v", paths, want)
	}

	// An update to an endpoint with a fragment is refused, and the
	// subscription kept as it was.
	r := e.do("admin", "PUT", "/Subscription/"+full, strings.Replace(subscription("Appointment?status=booked", rx.URL+"/q#frag", "application/fhir+json"), "{", `{"id":"`+full+`",`, 1))
	if r.status != 422 || !strings.Contains(r.body, "Subscription.channel.endpoint") || !strings.Contains(r.body, "fragment") {
		t.Errorf("update to an endpoint with a fragment: %d %s", r.status, r.body)
	}
	if got := e.do("admin", "GET", "/Subscription/"+full, "").body; !strings.Contains(got, `"endpoint":"`+rx.URL+`/q?token=abc"`) {
		t.Errorf("after a refused update: %s", got)
	}
}

// TestChannelHeaders: every channel header is sent on every request, a
// name repeated once for each value, with space around the value trimmed.
func TestChannelHeaders(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	rx := newReceiver(t)
	r := e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json",
		"Authorization: Bearer secret", "X-Tenant: gp1", "x-tenant:\tgp2 ", "X-Empty:"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	e.deliver()
	e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
	e.deliver()
	got := rx.take()
	if len(got) != 2 {
		t.Fatalf("handshake and event: %+v", got)
	}
	for _, g := range got {
		h := g.Header
		if h.Get("Authorization") != "Bearer secret" || fmt.Sprint(h.Values("X-Tenant")) != "[gp1 gp2]" || len(h.Values("X-Empty")) != 1 {
			t.Errorf("%s %s: headers %v", g.Method, g.Path, h)
		}
	}
	if got[1].ContentType != "application/fhir+json" {
		t.Errorf("event Content-Type %q", got[1].ContentType)
	}
}

// TestCriteriaParameters: criteria take the search parameters that select
// resources, _lastUpdated among them; result parameters, chains, _has and
// parameters not supported here are refused, each saying which it is.
func TestCriteriaParameters(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	for _, criteria := range []string{
		"Appointment?_lastUpdated=gt2026-01-01",
		"Appointment?_lastUpdated=ge2026-01-01T10:00:00.123Z&status=booked",
		"Appointment?_lastUpdated:missing=false",
		"Appointment?_id=a1",
		"Appointment?_tag=http://t.test|x",
		"Appointment?_tag:not=http://t.test|x",
		"Appointment?_profile=http://p.test/a",
		"Appointment?_security=http://s.test|r",
	} {
		if r := e.do("admin", "POST", "/Subscription", subscription(criteria, "https://rx.test/", "")); r.status != 201 {
			t.Errorf("%s: %d %s, want 201", criteria, r.status, r.body)
		}
	}
	result := "shapes the results of a search"
	unsupported := "not supported"
	chain := "chains and _has are not supported in criteria"
	for _, tt := range []struct{ criteria, says string }{
		{"Appointment?status=booked&_sort=date", result},
		{"Appointment?_count=10", result},
		{"Appointment?_include=Appointment:patient", result},
		{"Appointment?_revinclude=Encounter:appointment", result},
		{"Appointment?_summary=true", result},
		{"Appointment?_elements=status", result},
		{"Appointment?_total=accurate", result},
		{"Appointment?_contained=true", result},
		{"Appointment?_text=ward", unsupported},
		{"Appointment?_content=ward", unsupported},
		{"Appointment?_list=List/1", unsupported},
		{"Appointment?_filter=status eq booked", unsupported},
		{"Appointment?_query=booked", "named query"},
		{"Patient?_has:Appointment:patient:status=booked", chain},
		{"Appointment?patient.name=Ward", chain},
	} {
		r := e.do("admin", "POST", "/Subscription", subscription(tt.criteria, "https://rx.test/", ""))
		if r.status != 422 || !strings.Contains(r.body, "Subscription.criteria") || !strings.Contains(r.body, tt.says) {
			t.Errorf("%s: %d %s, want 422 saying %q", tt.criteria, r.status, r.body, tt.says)
		}
	}
}

// TestCriteriaLastUpdated: _lastUpdated in criteria is matched on the
// version written, whose lastUpdated is the write's, not on the one it
// replaces.
func TestCriteriaLastUpdated(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		created := e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		id := idOf(t, created)
		var meta struct{ Meta struct{ LastUpdated string } }
		if err := json.Unmarshal([]byte(created.body), &meta); err != nil || meta.Meta.LastUpdated == "" {
			t.Fatalf("no lastUpdated in %s", created.body)
		}
		at := meta.Meta.LastUpdated
		for path, criteria := range map[string]string{
			"/after":  "Appointment?_lastUpdated=gt" + at,
			"/before": "Appointment?_lastUpdated=le" + at,
			"/past":   "Appointment?_lastUpdated=lt2020-01-01",
		} {
			if r := e.do("admin", "POST", "/Subscription", subscription(criteria, rx.URL+path, "application/fhir+json")); r.status != 201 {
				t.Fatalf("%s: %d %s", criteria, r.status, r.body)
			}
		}
		e.deliver()
		rx.take()

		time.Sleep(2 * time.Millisecond) // a later lastUpdated, at millisecond precision
		upd := strings.Replace(appointment("p1", "booked"), "{", `{"id":"`+id+`","description":"moved",`, 1)
		if r := e.do("admin", "PUT", "/Appointment/"+id, upd); r.status != 200 {
			t.Fatalf("update: %d %s", r.status, r.body)
		}
		e.deliver()
		var paths []string
		for _, g := range rx.take() {
			paths = append(paths, g.Method+" "+g.Path)
		}
		if want := []string{"PUT /after/Appointment/" + id}; fmt.Sprint(paths) != fmt.Sprint(want) {
			t.Errorf("update after %s delivered %v, want %v", at, paths, want)
		}
	})
}

// TestRetriesThenError: a failing endpoint is retried with exponential
// backoff, in order, and the subscription becomes error after ErrorAfter.
func TestRetriesThenError(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		id := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json")))
		e.deliver()
		rx.take()
		first := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		second := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		rx.setStatus(http.StatusServiceUnavailable)

		// Attempts at 0s, then after 1s, 2s, 4s: none earlier.
		attempts := 0
		for _, wait := range []time.Duration{0, 500 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 3 * time.Second, time.Second} {
			e.clock.Advance(wait)
			e.deliver()
			got := rx.take()
			for _, g := range got {
				if g.Path != "/hook/Appointment/"+first {
					t.Fatalf("delivered %s before the first, failing one", g.Path)
				}
			}
			attempts += len(got)
		}
		if attempts != 4 || e.n.Failures() != 4 {
			t.Fatalf("attempts in 7s = %d (failures %d), want 4 (at 0, 1, 3 and 7s)", attempts, e.n.Failures())
		}
		if n, _ := e.n.Backlog(t.Context()); n != 2 {
			t.Errorf("backlog %d, want 2", n)
		}

		// Recovery delivers both, in order.
		rx.setStatus(http.StatusOK)
		e.clock.Advance(time.Minute)
		e.deliver()
		got := rx.take()
		if len(got) != 2 || got[0].Path != "/hook/Appointment/"+first || got[1].Path != "/hook/Appointment/"+second {
			t.Fatalf("after recovery: %+v", got)
		}

		// Failing for an hour sets error, with the reason.
		rx.setStatus(http.StatusInternalServerError)
		sub := e.failForAnHour(id)
		if field(t, sub, "status") != "error" || !strings.Contains(field(t, sub, "error"), "500") {
			t.Fatalf("after an hour of failures: %s", sub)
		}
		if n, _ := e.n.Backlog(t.Context()); n != 0 {
			t.Errorf("backlog of a subscription in error: %d, want 0", n)
		}
		rx.take()
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e.deliver()
		if got := rx.take(); len(got) != 0 {
			t.Errorf("a subscription in error was delivered: %+v", got)
		}
	})
}

// failForAnHour writes an Appointment that subscription id matches and
// delivers every minute for more than ErrorAfter, an hour, while its
// deliveries fail; it returns the Subscription as it then stands.
func (e *env) failForAnHour(id string) string {
	e.t.Helper()
	e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
	for range 70 {
		e.deliver()
		e.clock.Advance(time.Minute)
	}
	e.deliver()
	return e.do("admin", "GET", "/Subscription/"+id, "").body
}

// TestSubscriptionCreatedAgain: a Subscription created under the id of a
// deleted one is a new subscription: what was matched for the deleted one
// and not yet delivered is not sent to the new one's endpoint.
func TestSubscriptionCreatedAgain(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		withID := func(body string) string {
			return strings.Replace(body, `"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"scr"`, 1)
		}
		if r := e.do("admin", "PUT", "/Subscription/scr", withID(subscription("Appointment?status=booked", rx.URL+"/old", "application/fhir+json"))); r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		e.deliver()
		rx.take()
		rx.setStatus(http.StatusServiceUnavailable)
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e.deliver()
		rx.take()
		if r := e.do("admin", "DELETE", "/Subscription/scr", ""); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		if r := e.do("admin", "PUT", "/Subscription/scr", withID(subscription("Appointment?status=cancelled", rx.URL+"/new", ""))); r.status != 201 {
			t.Fatalf("subscribe again: %d %s", r.status, r.body)
		}
		rx.setStatus(http.StatusOK)
		e.clock.Advance(time.Minute)
		e.deliver()
		var got []string
		for _, g := range rx.take() {
			got = append(got, g.Method+" "+g.Path)
		}
		if want := []string{"POST /new"}; !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v: the handshake of the new subscription alone", got, want)
		}
	})
}

// TestProvenanceOfWriteNotified: the Provenance a client sends with a
// write in X-Provenance is notified as one it creates itself.
func TestProvenanceOfWriteNotified(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		e.do("admin", "POST", "/Subscription", subscription("Provenance?agent=Practitioner/gp1", rx.URL+"/hook", "application/fhir+json"))
		e.deliver()
		rx.take()
		prov := `{"resourceType":"Provenance","recorded":"2026-12-01T09:00:00Z","agent":[{"who":{"reference":"Practitioner/gp1"}}]}`
		r := e.doWith("admin", "POST", "/Appointment", appointment("p1", "booked"), http.Header{"X-Provenance": {prov}})
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		e.deliver()
		got := rx.take()
		if len(got) != 1 || !strings.HasPrefix(got[0].Path, "/hook/Provenance/") || !strings.Contains(got[0].Body, `"Appointment/`+idOf(t, r)+`/_history/1"`) {
			t.Errorf("delivered %+v, want the Provenance of the Appointment", got)
		}
	})
}

// TestBacklogHoldsBackNoOther: a failing subscription whose rows fill a
// scan's batch does not hold back another subscription's notifications.
func TestBacklogHoldsBackNoOther(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{}, func(c *notify.Config) { c.Batch = 3 })
		down, up := newReceiver(t), newReceiver(t)
		e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", down.URL+"/down", ""))
		e.do("admin", "POST", "/Subscription", subscription("Appointment?status=cancelled", up.URL+"/up", ""))
		e.deliver()
		down.take()
		up.take()
		down.setStatus(http.StatusServiceUnavailable)
		for range 4 {
			e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		}
		e.do("admin", "POST", "/Appointment", appointment("p1", "cancelled"))
		for range 3 {
			e.deliver()
			e.clock.Advance(10 * time.Second)
		}
		if got := up.take(); len(got) != 1 {
			t.Errorf("the other subscription was sent %d notifications, want 1, while the failing one holds 4 rows", len(got))
		}
		if got := down.take(); len(got) == 0 {
			t.Error("the failing subscription was not tried")
		}
	})
}

// TestSubscriptionMatchedOnceWritten: a Subscription is matched from its
// write on, even when the deliverer read the subscriptions while that
// write was not yet committed.
func TestSubscriptionMatchedOnceWritten(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		var n *notify.Notifier
		var polled atomic.Bool
		// The deliverer polls while the client's write of the Subscription
		// is under way (not the server's, which delivering makes).
		poll := operation.Hook{Name: "poll", Types: []string{"Subscription"}, After: func(ctx context.Context, _ operation.Store, _ *operation.Change) ([]operation.Issue, error) {
			if polled.Swap(true) {
				return nil, nil
			}
			return nil, n.DeliverPending(context.WithoutCancel(ctx))
		}}
		e := newEnvHooks(t, eng.open(t, eng.place(t)), map[string]map[string]any{}, []operation.Hook{poll})
		n = e.n
		rx := newReceiver(t)
		if r := e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "")); r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e.deliver()
		if got := rx.take(); len(got) != 2 {
			t.Fatalf("the receiver was sent %+v, want the handshake and the booking", got)
		}
	})
}

// TestOwnerPatientScope: a subscription made with a token confined to one
// patient never carries another patient's record, even when its criteria
// would match it.
func TestOwnerPatientScope(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{
			"app": {"sub": "app", "patient": "p1", "scope": "patient/Appointment.rs user/Subscription.cru patient/Patient.r"},
		})
		e.do("admin", "PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`)
		e.do("admin", "PUT", "/Patient/p2", `{"resourceType":"Patient","id":"p2"}`)
		rx := newReceiver(t)
		r := e.do("app", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
		if r.status != 201 {
			t.Fatalf("patient-scoped app subscribing: %d %s", r.status, r.body)
		}
		e.deliver()
		rx.take()
		mine := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		theirs := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p2", "booked")))
		e.deliver()
		got := rx.take()
		if len(got) != 1 || got[0].Path != "/hook/Appointment/"+mine {
			t.Fatalf("delivered %+v, want only Appointment/%s (not %s)", got, mine, theirs)
		}
		if strings.Contains(got[0].Body, "p2") {
			t.Errorf("leaked: %s", got[0].Body)
		}
		if e.n.Withheld() != 1 {
			t.Errorf("withheld %d, want 1", e.n.Withheld())
		}
	})
}

// TestOwnerKeptWhenAnotherWrites: an administrator's system token
// setting a patient app's Subscription back to requested does not become
// its owner: the notifications are still read as the app, of its patient
// only.
func TestOwnerKeptWhenAnotherWrites(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{
			"app": {"sub": "app", "patient": "p1", "scope": "patient/Appointment.rs user/Subscription.cru patient/Patient.r"},
		})
		e.do("admin", "PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`)
		rx := newReceiver(t)
		body := subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json")
		sub := idOf(t, e.do("app", "POST", "/Subscription", body))
		e.deliver()
		again := strings.Replace(body, `"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+sub+`"`, 1)
		if r := e.do("admin", "PUT", "/Subscription/"+sub, again); r.status != 200 {
			t.Fatalf("administrator requesting it again: %d %s", r.status, r.body)
		}
		e.deliver()
		rx.take()
		mine := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		theirs := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p2", "booked")))
		e.deliver()
		if got := rx.take(); len(got) != 1 || got[0].Path != "/hook/Appointment/"+mine {
			t.Errorf("delivered %+v, want only Appointment/%s (not %s)", got, mine, theirs)
		}
	})
}

// TestOwnerMayNotRead: a Subscription whose owner may read no resource of
// its criteria's type is refused however it is written, naming the
// criteria, and nothing is stored; switching one off is not refused.
func TestOwnerMayNotRead(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{
			"noscope":   {"sub": "noscope", "scope": "user/Subscription.cruds"},
			"nopatient": {"sub": "nopatient", "scope": "patient/Appointment.rs user/Subscription.cruds"},
		})
		rx := newReceiver(t)
		body := subscription("Appointment?status=booked", rx.URL+"/hook", "")
		id := idOf(t, e.do("admin", "POST", "/Subscription", body))
		withID := strings.Replace(body, `{`, `{"id":"`+id+`",`, 1)
		withID = strings.Replace(withID, `"reason":"test"`, `"reason":"changed"`, 1)
		patch := `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[` +
			`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Subscription.reason"},{"name":"value","valueString":"patched"}]}]}`
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + body + `,"request":{"method":"POST","url":"Subscription"}}]}`
		for _, who := range []string{"noscope", "nopatient"} {
			for _, w := range []struct{ method, path, body string }{
				{"POST", "/Subscription", body},
				{"PUT", "/Subscription/" + id, withID},
				{"PATCH", "/Subscription/" + id, patch},
				{"POST", "", tx},
			} {
				r := e.do(who, w.method, w.path, w.body)
				if r.status != 403 || !strings.Contains(r.body, `criteria"]`) || !strings.Contains(r.body, `"forbidden"`) {
					t.Errorf("%s %s %s: %d %s, want 403 forbidden at the criteria", who, w.method, w.path, r.status, r.body)
				}
			}
		}
		if r := e.do("admin", "GET", "/Subscription", ""); strings.Count(r.body, `"fullUrl"`) != 1 {
			t.Errorf("Subscriptions stored: %s", r.body)
		}
		if r := e.do("admin", "GET", "/Subscription/"+id, ""); field(t, r.body, "reason") != "test" || !strings.Contains(r.body, `"versionId":"1"`) {
			t.Errorf("Subscription changed: %s", r.body)
		}
		off := strings.Replace(withID, `"status":"requested"`, `"status":"off"`, 1)
		if r := e.do("noscope", "PUT", "/Subscription/"+id, off); r.status != 200 {
			t.Errorf("switching off: %d %s", r.status, r.body)
		}
	})
}

// TestDeliveriesAudited: a notification that carries its resource is in
// the audit trail, as a read of that version by the subscription's owner;
// one without content and one withheld are not.
func TestDeliveriesAudited(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		auditor := access.NewAuditor(st, access.AuditConfig{})
		t.Cleanup(auditor.Close)
		e := newEnv(t, st, map[string]map[string]any{
			"app": {"sub": "app", "patient": "p1", "scope": "patient/Appointment.rs user/Subscription.cru"},
		}, func(c *notify.Config) { c.Auditor = auditor })
		e.do("admin", "PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`)
		rx := newReceiver(t)
		full := idOf(t, e.do("app", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/full", "application/fhir+json")))
		e.do("app", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/empty", ""))
		e.deliver()
		rx.take()
		mine := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.do("admin", "POST", "/Appointment", appointment("p2", "booked"))
		e.deliver()
		if got := rx.take(); len(got) != 2 {
			t.Fatalf("delivered %+v, want p1's appointment to both and nothing of p2's", got)
		}
		auditor.Flush()
		r := e.do("admin", "GET", "/AuditEvent?subtype=vread", "")
		var b struct {
			Entry []struct{ Resource json.RawMessage }
		}
		if err := json.Unmarshal([]byte(r.body), &b); err != nil || r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if len(b.Entry) != 1 {
			t.Fatalf("%d AuditEvents of reads, want 1, of the full delivery: %s", len(b.Entry), r.body)
		}
		ev := string(b.Entry[0].Resource)
		for _, want := range []string{`"Appointment/` + mine + `/_history/1"`, `"Patient/p1"`, `"value":"app"`, `"Subscription/` + full + `"`} {
			if !strings.Contains(ev, want) {
				t.Errorf("AuditEvent lacks %s: %s", want, ev)
			}
		}
	})
}

// TestOutboxSurvivesRestart: rows written with their writes are delivered
// by a new process on the reopened store, and a lease held by a process
// that died is taken over once it ends.
func TestOutboxSurvivesRestart(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		place := eng.place(t)
		st := eng.open(t, place)
		e := newEnv(t, st, map[string]map[string]any{})
		rx := newReceiver(t)
		e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
		e.deliver()
		rx.take()
		var ids []string
		for range 3 {
			ids = append(ids, idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))))
		}
		e.srv.Close()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		st2 := eng.open(t, place)
		t.Cleanup(func() { st2.Close() })
		e2 := newEnv(t, st2, map[string]map[string]any{})
		if n, _ := e2.n.Backlog(t.Context()); n != 3 {
			t.Fatalf("backlog after reopening: %d, want 3", n)
		}
		e2.deliver()
		got := rx.take()
		if len(got) != 3 {
			t.Fatalf("delivered after restart: %+v", got)
		}
		for i, g := range got {
			if g.Path != "/hook/Appointment/"+ids[i] {
				t.Errorf("delivery %d: %s, want Appointment/%s (in order)", i, g.Path, ids[i])
			}
		}
	})
}

// TestStopDuringDelivery: a process stopped while a receiver is still
// answering leaves the notification to the next process at once, as not
// delivered and not failed, rather than holding its claim for a lease.
func TestStopDuringDelivery(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		place := eng.place(t)
		st := eng.open(t, place)
		e := newEnv(t, st, map[string]map[string]any{})
		arrived := make(chan struct{}, 1)
		var mu sync.Mutex
		var got []string
		hang := false
		release := make(chan struct{})
		rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // so that the server sees the sender give up
			mu.Lock()
			got = append(got, r.Method+" "+r.URL.Path)
			wait := hang
			mu.Unlock()
			if wait {
				arrived <- struct{}{}
				select { // answers only once the sender gives up
				case <-r.Context().Done():
				case <-release:
				}
			}
		}))
		t.Cleanup(rx.Close)
		t.Cleanup(func() { close(release) })
		e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
		e.deliver()
		id := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		mu.Lock()
		hang = true
		mu.Unlock()

		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			e.n.DeliverPending(ctx)
			close(done)
		}()
		<-arrived
		stop()
		<-done // the stop's error
		e.srv.Close()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		mu.Lock()
		hang = false
		mu.Unlock()
		st2 := eng.open(t, place)
		e2 := newEnv(t, st2, map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "next" })
		e2.deliver()
		mu.Lock()
		defer mu.Unlock()
		want := []string{"POST /hook", "PUT /hook/Appointment/" + id, "PUT /hook/Appointment/" + id}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("requests:\n got %v\nwant %v (the notification sent again by the next process, without waiting a lease)", got, want)
		}
		if n := e.n.Failures(); n != 0 {
			t.Errorf("failures counted by the stopped process: %d, want 0", n)
		}
	})
}

// TestOwnerReadFailsForAMoment: a notification whose owner the store
// fails to read for a moment is retried, and delivered once the store
// answers, rather than dropped as if the Subscription had no owner.
func TestOwnerReadFailsForAMoment(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		fails := &ownerReadFails{}
		var st store.Store
		switch s := eng.open(t, eng.place(t)).(type) {
		case *sqlite.Store:
			st = flakySQLite{s, fails}
		case *mongo.Store:
			st = flakyMongo{s, fails}
		default:
			t.Fatalf("engine %T", s)
		}
		e := newEnv(t, st, map[string]map[string]any{})
		rx := newReceiver(t)
		e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
		e.deliver()
		rx.take()
		id := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))

		fails.n.Store(1)
		e.deliver()
		e.clock.Advance(time.Minute)
		e.deliver()
		var paths []string
		for _, g := range rx.take() {
			paths = append(paths, g.Method+" "+g.Path)
		}
		if want := []string{"PUT /hook/Appointment/" + id}; fmt.Sprint(paths) != fmt.Sprint(want) {
			t.Errorf("delivered %v, want %v", paths, want)
		}
		if n := e.n.Withheld(); n != 0 {
			t.Errorf("withheld %d, want 0", n)
		}
	})
}

// ownerReadFails makes the next n reads of Subscriptions' owners fail, as
// a store failing for a moment would.
type ownerReadFails struct{ n atomic.Int32 }

func (f *ownerReadFails) err(typ string) error {
	if typ == "NotifyOwner" && f.n.Add(-1) >= 0 {
		return errors.New("the store did not answer")
	}
	return nil
}

type flakySQLite struct {
	*sqlite.Store
	fails *ownerReadFails
}

func (s flakySQLite) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if err := s.fails.err(typ); err != nil {
		return nil, err
	}
	return s.Store.Read(ctx, typ, id)
}

type flakyMongo struct {
	*mongo.Store
	fails *ownerReadFails
}

func (s flakyMongo) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if err := s.fails.err(typ); err != nil {
		return nil, err
	}
	return s.Store.Read(ctx, typ, id)
}

// TestTwoProcessesDeliverOnce: two servers on one MongoDB database share
// the outbox; delivering at the same time, each notification is made once.
func TestTwoProcessesDeliverOnce(t *testing.T) {
	eng := engines[1]
	uri := eng.place(t)
	a := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "a" })
	b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b" })
	rx := newReceiver(t)
	a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
	var ids []string
	for range 20 {
		ids = append(ids, idOf(t, a.do("admin", "POST", "/Appointment", appointment("p1", "booked"))))
	}
	for range 3 { // a few rounds: a process stops at a row the other leased
		var wg sync.WaitGroup
		for _, e := range []*env{a, b} {
			wg.Go(func() {
				if err := e.n.DeliverPending(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		a.clock.Advance(2 * time.Minute) // past any lease of the other
		b.clock.Advance(2 * time.Minute)
	}
	got := rx.take()
	var paths []string
	for _, g := range got {
		paths = append(paths, g.Path)
	}
	want := []string{"/hook"}
	for _, id := range ids {
		want = append(want, "/hook/Appointment/"+id)
	}
	if fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("deliveries:\n got %v\nwant %v (each once, in order)", paths, want)
	}
	if n := a.n.Delivered() + b.n.Delivered(); n != 21 {
		t.Errorf("delivered %d, want 21", n)
	}
}

// TestTwoProcessesClocksApart: two servers on one MongoDB database whose
// clocks are two hours apart. While one delivers a notification, the
// other, whose clock is ahead, neither purges its claim nor takes it for
// that of a dead process; it takes the claim over only once it has seen
// it held for a lease by its own clock.
func TestTwoProcessesClocksApart(t *testing.T) {
	eng := engines[1]
	uri := eng.place(t)
	a := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "a" })
	b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b" })
	b.clock.Advance(2 * time.Hour)
	var mu sync.Mutex
	var events []string
	arrived, release := make(chan struct{}), make(chan struct{})
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/hook" {
			return // the handshake
		}
		mu.Lock()
		events = append(events, req.URL.Path)
		first := len(events) == 1
		mu.Unlock()
		if first { // a is delivering it, slowly
			close(arrived)
			<-release
		}
	}))
	t.Cleanup(rx.Close)
	delivered := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
	a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
	a.deliver()
	id := idOf(t, a.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.deliver()
	}()
	<-arrived
	if _, err := b.n.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.deliver()
	if got := delivered(); len(got) != 1 {
		t.Errorf("deliveries while a delivers: %v, want a's alone", got)
	}
	b.clock.Advance(2 * time.Minute) // a lease since b saw the claim: a is taken for dead
	b.deliver()
	if got, want := delivered(), []string{"/hook/Appointment/" + id, "/hook/Appointment/" + id}; !slices.Equal(got, want) {
		t.Errorf("deliveries once b saw the claim held for a lease: %v, want %v (b took it over)", got, want)
	}
	close(release)
	<-done
}

// failingClocksApart starts two servers on one MongoDB database, b's
// clock two hours ahead of a's, and a Subscription, sub, made active
// through a, whose endpoint rx now fails; a notification of it is
// pending.
func failingClocksApart(t *testing.T) (a, b *env, rx *receiver, sub string) {
	eng := engines[1]
	uri := eng.place(t)
	a = newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "a" })
	b = newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b" })
	b.clock.Advance(2 * time.Hour)
	rx = newReceiver(t)
	sub = idOf(t, a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "")))
	a.deliver()
	rx.take()
	rx.setStatus(http.StatusServiceUnavailable)
	a.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
	return a, b, rx, sub
}

// TestTwoProcessesRetriesClocksApart: two servers on one MongoDB database
// whose clocks are two hours apart retry a failing notification in turn.
// Each retries one the other failed once it has itself seen it unretried
// for the backoff, by its own clock: the one ahead neither retries it at
// once nor takes it for failing since two hours, and the one behind does
// not wait two hours more.
func TestTwoProcessesRetriesClocksApart(t *testing.T) {
	a, b, rx, sub := failingClocksApart(t)
	attempts := 0
	step := func(e *env, advance time.Duration, want int, when string) {
		t.Helper()
		e.clock.Advance(advance)
		e.deliver()
		if attempts += len(rx.take()); attempts != want {
			t.Errorf("%s: %d attempts, want %d", when, attempts, want)
		}
		if s := a.do("admin", "GET", "/Subscription/"+sub, "").body; field(t, s, "status") != "active" {
			t.Fatalf("%s: %s, want active: failing for seconds only", when, s)
		}
	}
	step(a, 0, 1, "a's first attempt")
	step(b, 0, 1, "b, ahead, at once")
	step(b, time.Second, 2, "b, a backoff after it saw a's failure")
	step(a, 0, 2, "a, behind, at once")
	step(a, 2*time.Second, 3, "a, a backoff after it saw b's failure")
}

// TestTwoProcessesOneResourceInOrder: two servers on one MongoDB database
// whose clocks are an hour apart write versions of one resource in turn,
// the second from the process whose clock is behind: its notifications
// are delivered in the order of the versions.
func TestTwoProcessesOneResourceInOrder(t *testing.T) {
	eng := engines[1]
	uri := eng.place(t)
	a := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "a" })
	b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b" })
	b.clock.Advance(-time.Hour)
	rx := newReceiver(t)
	a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
	a.deliver()
	rx.take()
	id := idOf(t, a.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
	updated := strings.Replace(appointment("p1", "booked"), `"resourceType":"Appointment"`, `"resourceType":"Appointment","id":"`+id+`","comment":"moved"`, 1)
	if r := b.do("admin", "PUT", "/Appointment/"+id, updated); r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	a.deliver()
	var versions []string
	for _, g := range rx.take() {
		var v struct{ Meta struct{ VersionID string } }
		json.Unmarshal([]byte(g.Body), &v)
		versions = append(versions, v.Meta.VersionID)
	}
	if want := []string{"1", "2"}; !slices.Equal(versions, want) {
		t.Errorf("versions delivered: %v, want %v", versions, want)
	}
}

// TestHandshakeBeforeEventsOfItsTransaction: a transaction that writes a
// Subscription again as requested and a resource it matches has the
// handshake delivered first, then the notification.
func TestHandshakeBeforeEventsOfItsTransaction(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		sub := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/old", "application/fhir+json")))
		e.deliver()
		rx.take()
		again := strings.Replace(subscription("Appointment?status=booked", rx.URL+"/new", "application/fhir+json"),
			`"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+sub+`"`, 1)
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"resource":` + again + `,"request":{"method":"PUT","url":"Subscription/` + sub + `"}},` +
			`{"resource":` + appointment("p1", "booked") + `,"request":{"method":"POST","url":"Appointment"}}]}`
		if r := e.do("admin", "POST", "/", tx); r.status != 200 {
			t.Fatalf("transaction: %d %s", r.status, r.body)
		}
		e.deliver()
		var got []string
		for _, g := range rx.take() {
			got = append(got, g.Method+" "+strings.SplitN(g.Path, "/Appointment/", 2)[0])
		}
		if want := []string{"POST /new", "PUT /new"}; !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v: the handshake, then the notification", got, want)
		}
	})
}

// TestSubscriptionDeleteRolledBack: a transaction that deletes a rest-hook
// and a topic-based Subscription, then is refused for a later entry,
// deletes neither: a write right after it, with no poll between that
// would load the Subscriptions again, is notified to both.
func TestSubscriptionDeleteRolledBack(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		rest := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/rest", "application/fhir+json")))
		topic := idOf(t, e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "", rx.URL+"/topic", "id-only", 0)))
		e.deliver()
		rx.take()
		active := strings.Replace(subscription("Appointment?status=booked", rx.URL+"/other", ""), `"requested"`, `"active"`, 1)
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"request":{"method":"DELETE","url":"Subscription/` + rest + `"}},` +
			`{"request":{"method":"DELETE","url":"Subscription/` + topic + `"}},` +
			`{"resource":` + active + `,"request":{"method":"POST","url":"Subscription"}}]}`
		if r := e.do("admin", "POST", "/", tx); r.status != 422 {
			t.Fatalf("transaction with a Subscription written as active: %d %s, want 422", r.status, r.body)
		}
		for _, id := range []string{rest, topic} {
			if r := e.do("admin", "GET", "/Subscription/"+id, ""); r.status != 200 || field(t, r.body, "status") != "active" {
				t.Fatalf("Subscription/%s after the transaction: %d %s", id, r.status, r.body)
			}
		}
		booked := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		var got []string
		for _, g := range rx.take() {
			got = append(got, g.Method+" "+g.Path)
		}
		slices.Sort(got)
		if want := []string{"POST /topic", "PUT /rest/Appointment/" + booked}; !slices.Equal(got, want) {
			t.Errorf("notifications of a booking after the transaction: %v, want %v", got, want)
		}
	})
}

// TestSubscriptionCreateRolledBack: a transaction that creates a
// Subscription, then is refused for a later entry, leaves nothing to
// notify: a write right after it, with no poll between, is notified to no
// one, not even to a Subscription created afterwards under the same id.
func TestSubscriptionCreateRolledBack(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		withID := func(id, body string) string {
			return strings.Replace(body, `"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+id+`"`, 1)
		}
		sub := withID("s1", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
		active := withID("s2", strings.Replace(subscription("Appointment?status=booked", rx.URL+"/other", ""), `"requested"`, `"active"`, 1))
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"resource":` + sub + `,"request":{"method":"PUT","url":"Subscription/s1"}},` +
			`{"resource":` + active + `,"request":{"method":"PUT","url":"Subscription/s2"}}]}`
		if r := e.do("admin", "POST", "/", tx); r.status != 422 {
			t.Fatalf("transaction with a Subscription written as active: %d %s, want 422", r.status, r.body)
		}
		if r := e.do("admin", "GET", "/Subscription/s1", ""); r.status != 404 {
			t.Fatalf("Subscription/s1 after the transaction: %d %s, want 404", r.status, r.body)
		}
		before := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		if r := e.do("admin", "PUT", "/Subscription/s1", sub); r.status != 201 {
			t.Fatalf("create Subscription/s1: %d %s", r.status, r.body)
		}
		e.deliver()
		after := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		var got []string
		for _, g := range rx.take() {
			got = append(got, g.Method+" "+g.Path)
		}
		if want := []string{"POST /hook", "PUT /hook/Appointment/" + after}; !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v: the handshake, then the booking after it (not %s, before it)", got, want, before)
		}
	})
}

// TestHandshakeBeforePendingEvents: a failing Subscription written again
// as requested, with a new endpoint, has the new endpoint sent the
// handshake first, then the notifications still pending, in order.
func TestHandshakeBeforePendingEvents(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		sub := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/old", "application/fhir+json")))
		e.deliver()
		rx.take()
		rx.setStatus(http.StatusInternalServerError)
		first := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		second := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		rx.take()
		rx.setStatus(http.StatusOK)
		again := strings.Replace(subscription("Appointment?status=booked", rx.URL+"/new", "application/fhir+json"),
			`"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+sub+`"`, 1)
		if r := e.do("admin", "PUT", "/Subscription/"+sub, again); r.status != 200 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
		e.clock.Advance(time.Minute) // past the failed row's backoff
		e.deliver()
		var got []string
		for _, g := range rx.take() {
			got = append(got, g.Method+" "+g.Path)
		}
		want := []string{"POST /new", "PUT /new/Appointment/" + first, "PUT /new/Appointment/" + second}
		if !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v: the handshake, then the notifications pending", got, want)
		}
		if s := e.do("admin", "GET", "/Subscription/"+sub, "").body; field(t, s, "status") != "active" {
			t.Errorf("after the handshake: %s, want active", s)
		}
	})
}

// TestSubscriptionRefusedAfterRestart: a Subscription stored while plain
// http endpoints were allowed is, once a restart no longer allows them and
// it has been refused for ErrorAfter, set to error saying why, not
// skipped silently.
func TestSubscriptionRefusedAfterRestart(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		place := eng.place(t)
		st := eng.open(t, place)
		e := newEnv(t, st, map[string]map[string]any{}, func(c *notify.Config) { c.AllowHTTP = true })
		sub := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", "http://rx.example/hook", "")))
		e.srv.Close()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		e2 := newEnv(t, eng.open(t, place), map[string]map[string]any{})
		e2.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e2.deliver()
		e2.clock.Advance(time.Hour) // ErrorAfter, refused all along, with nothing delivered
		e2.deliver()
		got := e2.do("admin", "GET", "/Subscription/"+sub, "").body
		if field(t, got, "status") != "error" || !strings.Contains(field(t, got, "error"), "must use https") {
			t.Errorf("after the restart without plain http: %s, want status error saying the endpoint must use https", got)
		}
	})
}

// TestSubscriptionErrorHostNotFound: a rest-hook endpoint whose host name
// does not resolve is, once it has failed for ErrorAfter, set to error
// naming the host that did not resolve, without the server's DNS resolver
// that Go's error names (an address of the server's own network).
func TestSubscriptionErrorHostNotFound(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		// The resolver's answer, as net.Dialer returns it.
		notFound := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "rx.example", Server: "10.96.0.10:53", IsNotFound: true}}
		}}}
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{}, func(c *notify.Config) { c.Client = notFound })
		sub := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", "https://rx.example/hook", "")))
		e.deliver()
		e.clock.Advance(time.Hour)
		e.deliver()
		got := e.do("admin", "GET", "/Subscription/"+sub, "").body
		why := field(t, got, "error")
		if field(t, got, "status") != "error" || !strings.Contains(why, "lookup rx.example: no such host") || strings.Contains(why, "10.96.0.10") {
			t.Errorf("an endpoint whose host does not resolve: %s, want status error naming rx.example and no resolver", got)
		}
	})
}

// TestTwoProcessesOneRefuses: two servers on one MongoDB database during
// a rolling change of settings, one of which refuses a Subscription the
// other accepts. The one that refuses neither sets it to error nor drops
// its rows: the other delivers them, and the Subscription stays active.
func TestTwoProcessesOneRefuses(t *testing.T) {
	eng := engines[1]
	uri := eng.place(t)
	a := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "a" })
	b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b"; c.Types = []string{"Patient"} })
	rx := newReceiver(t)
	sub := idOf(t, a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json")))
	b.deliver()
	a.deliver()
	appt := idOf(t, a.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
	for range 3 { // several polls of each, the one that refuses first
		b.deliver()
		a.deliver()
		b.clock.Advance(10 * time.Minute)
	}
	var paths []string
	for _, g := range rx.take() {
		paths = append(paths, g.Path)
	}
	if want := []string{"/hook", "/hook/Appointment/" + appt}; fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("deliveries: got %v, want %v", paths, want)
	}
	if got := a.do("admin", "GET", "/Subscription/"+sub, "").body; field(t, got, "status") != "active" {
		t.Errorf("Subscription after the process that refuses it polled: %s, want status active", got)
	}
}

// TestTwoProcessesWriteWhereRefused: two servers on one MongoDB database
// during a rolling change of settings, the second of which refuses a
// Subscription the first accepts (its type no longer listed, or its plain
// http endpoint no longer allowed). A write the second handles is
// matched all the same, and the first delivers its notification.
func TestTwoProcessesWriteWhereRefused(t *testing.T) {
	for _, c := range []struct {
		name     string
		endpoint func(rx *receiver) string
		a, b     func(*notify.Config)
	}{
		{"types", func(rx *receiver) string { return rx.URL + "/hook" },
			func(*notify.Config) {}, func(c *notify.Config) { c.Types = []string{"Patient"} }},
		{"plain http", func(*receiver) string { return "http://rx.example/hook" },
			func(c *notify.Config) { c.AllowHTTP = true }, func(*notify.Config) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eng := engines[1]
			uri := eng.place(t)
			rx := newReceiver(t)
			// rx.example is the receiver, as a name of the network would be.
			toReceiver := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, rx.Listener.Addr().String())
			}}}
			a := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(cfg *notify.Config) { cfg.Holder = "a"; cfg.Client = toReceiver; c.a(cfg) })
			b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(cfg *notify.Config) { cfg.Holder = "b"; c.b(cfg) })
			sub := idOf(t, a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", c.endpoint(rx), "application/fhir+json")))
			a.deliver()
			b.deliver() // b loads the Subscriptions, and finds it refused
			rx.take()
			appt := idOf(t, b.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
			b.deliver()
			a.deliver()
			var paths []string
			for _, g := range rx.take() {
				paths = append(paths, g.Path)
			}
			if want := []string{"/hook/Appointment/" + appt}; !slices.Equal(paths, want) {
				t.Errorf("deliveries of a write handled by the process that refuses the Subscription: %v, want %v", paths, want)
			}
			if got := a.do("admin", "GET", "/Subscription/"+sub, "").body; field(t, got, "status") != "active" {
				t.Errorf("Subscription: %s, want status active", got)
			}
		})
	}
}

// TestWriteWhereRefusedBeforeLoad: a process whose Types leave out a
// type that a live Subscription of another process is about, started
// after it, matches the first write of that type it handles, before it
// has loaded the Subscriptions for anything else.
func TestWriteWhereRefusedBeforeLoad(t *testing.T) {
	eng := engines[1]
	uri := eng.place(t)
	rx := newReceiver(t)
	a := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(cfg *notify.Config) { cfg.Holder = "a" })
	idOf(t, a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json")))
	a.deliver()
	rx.take()
	b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(cfg *notify.Config) { cfg.Holder = "b"; cfg.Types = []string{"Patient"} })
	appt := idOf(t, b.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
	a.deliver()
	var paths []string
	for _, g := range rx.take() {
		paths = append(paths, g.Path)
	}
	if want := []string{"/hook/Appointment/" + appt}; !slices.Equal(paths, want) {
		t.Errorf("deliveries of the first write a process that refuses the Subscription handles: %v, want %v", paths, want)
	}
}

// TestTwoProcessesPerOwnerLimit: two servers on one MongoDB database, an
// owner allowed one live Subscription. Once it has one through the first,
// the second refuses it another, though it loaded the Subscriptions, for a
// write, before the first was created.
func TestTwoProcessesPerOwnerLimit(t *testing.T) {
	eng := engines[1]
	uri := eng.place(t)
	a := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "a"; c.MaxPerOwner = 1 })
	b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b"; c.MaxPerOwner = 1 })
	b.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
	sub := subscription("Appointment?status=booked", "https://rx.test/hook", "")
	idOf(t, a.do("admin", "POST", "/Subscription", sub))
	if r := b.do("admin", "POST", "/Subscription", sub); r.status != 422 || !strings.Contains(r.body, "too-costly") {
		t.Errorf("a second Subscription through the other process: %d %s, want 422 too-costly", r.status, r.body)
	}
	if got := a.do("admin", "GET", "/Subscription?_summary=count", "").body; !strings.Contains(got, `"total":1`) {
		t.Errorf("Subscriptions stored: %s, want a total of 1", got)
	}
}

// TestSubscriptionsPerOwnerLimit: an owner holding as many live
// Subscriptions as one may is refused another, 422 too-costly with an
// OperationOutcome, and nothing is stored; it may still write one of its
// own again, another owner may still subscribe, and switching one off
// makes room.
func TestSubscriptionsPerOwnerLimit(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{"other": {"sub": "other", "scope": "system/*.cruds"}},
			func(c *notify.Config) { c.MaxPerOwner = 2 })
		sub := subscription("Appointment?status=booked", "https://rx.test/hook", "")
		first := idOf(t, e.do("admin", "POST", "/Subscription", sub))
		idOf(t, e.do("admin", "POST", "/Subscription", sub))
		r := e.do("admin", "POST", "/Subscription", sub)
		if r.status != 422 || !strings.Contains(r.body, `"too-costly"`) || !strings.Contains(r.body, "OperationOutcome") || !strings.Contains(r.body, "2 live Subscriptions") {
			t.Errorf("a 3rd live Subscription of one owner: %d %s, want 422 too-costly naming the limit", r.status, r.body)
		}
		var all struct{ Total int }
		json.Unmarshal([]byte(e.do("admin", "GET", "/Subscription?_summary=count", "").body), &all)
		if all.Total != 2 {
			t.Errorf("%d Subscriptions stored, want 2", all.Total)
		}
		again := strings.Replace(subscription("Appointment?status=booked", "https://rx.test/moved", ""),
			`"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+first+`"`, 1)
		if r := e.do("admin", "PUT", "/Subscription/"+first, again); r.status != 200 {
			t.Errorf("writing one of its own again: %d %s, want 200", r.status, r.body)
		}
		if r := e.do("other", "POST", "/Subscription", sub); r.status != 201 {
			t.Errorf("another owner's: %d %s, want 201", r.status, r.body)
		}
		off := strings.Replace(again, `"requested"`, `"off"`, 1)
		if r := e.do("admin", "PUT", "/Subscription/"+first, off); r.status != 200 {
			t.Fatalf("switching one off: %d %s", r.status, r.body)
		}
		if r := e.do("admin", "POST", "/Subscription", sub); r.status != 201 {
			t.Errorf("once one is off: %d %s, want 201", r.status, r.body)
		}
	})
}

// TestOwnerLimitAfterAnotherSwitchesOff: a Subscription another party
// switches off stops counting against its owner's limit, though that
// party does not become its owner.
func TestOwnerLimitAfterAnotherSwitchesOff(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{"other": {"sub": "other", "scope": "system/*.cruds"}},
			func(c *notify.Config) { c.MaxPerOwner = 1 })
		sub := subscription("Appointment?status=booked", "https://rx.test/hook", "")
		first := idOf(t, e.do("other", "POST", "/Subscription", sub))
		if r := e.do("other", "POST", "/Subscription", sub); r.status != 422 {
			t.Fatalf("a 2nd live Subscription of one owner: %d %s, want 422", r.status, r.body)
		}
		off := strings.Replace(strings.Replace(sub, `"requested"`, `"off"`, 1),
			`"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+first+`"`, 1)
		if r := e.do("admin", "PUT", "/Subscription/"+first, off); r.status != 200 {
			t.Fatalf("another party switching it off: %d %s", r.status, r.body)
		}
		if r := e.do("other", "POST", "/Subscription", sub); r.status != 201 {
			t.Errorf("the owner's next once its only one is off: %d %s, want 201", r.status, r.body)
		}
	})
}

// searchCounter counts, by type, the versions the searches made of the
// store it wraps return, in its units of work too.
type searchCounter struct {
	store.Store
	store.Finder
	mu    sync.Mutex
	found map[string]int
}

func (s *searchCounter) count(typ string, n int) {
	s.mu.Lock()
	s.found[typ] += n
	s.mu.Unlock()
}

// take returns the counts since the last take.
func (s *searchCounter) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := s.found
	s.found = map[string]int{}
	return found
}

func (s *searchCounter) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	vs, err := s.Store.Search(ctx, q)
	s.count(q.Type, len(vs))
	return vs, err
}

func (s *searchCounter) Transact(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.Store.Transact(ctx, func(tx store.Tx) error { return fn(&countedTx{tx, s}) })
}

type countedTx struct {
	store.Tx
	s *searchCounter
}

func (t *countedTx) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	vs, err := t.Tx.Search(ctx, q)
	t.s.count(q.Type, len(vs))
	return vs, err
}

// TestOwnerLimitReadsTheOwnersOwn: a write making a Subscription live,
// while many owners hold as many live ones as one may, reads the owner
// records of no other owner to count the writer's, and loads the
// Subscriptions once, to match the write against them.
func TestOwnerLimitReadsTheOwnersOwn(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		counted := &searchCounter{Store: st, Finder: st.(store.Finder), found: map[string]int{}}
		owners, who := map[string]map[string]any{}, []string{}
		for i := range 10 {
			who = append(who, fmt.Sprint("o", i))
			owners[who[i]] = map[string]any{"sub": who[i], "scope": "system/*.cruds"}
		}
		e := newEnv(t, counted, owners, func(c *notify.Config) { c.MaxPerOwner = 2 })
		sub := subscription("Appointment?status=booked", "https://rx.test/hook", "")
		for _, who := range who {
			for range 2 {
				idOf(t, e.do(who, "POST", "/Subscription", sub))
			}
		}
		counted.take()
		idOf(t, e.do("admin", "POST", "/Subscription", sub))
		found := counted.take()
		if found["NotifyOwner"] > 3 || found["Subscription"] > 21 {
			t.Errorf("a Subscription made live beside 20 of other owners read %d owner records and %d Subscriptions, want at most 3 (the limit and one) and 21 (one load)",
				found["NotifyOwner"], found["Subscription"])
		}
		if r := e.do("o0", "POST", "/Subscription", sub); r.status != 422 || !strings.Contains(r.body, "too-costly") {
			t.Errorf("a 3rd live Subscription of an owner: %d %s, want 422 too-costly", r.status, r.body)
		}
	})
}

// TestSubscriptionEnd: a Subscription is notified of writes until its
// end, then switched off by the server (R4: the time for the server to
// turn the subscription off), and one requested with an end already
// passed is refused, 422 naming Subscription.end.
func TestSubscriptionEnd(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		withEnd := func(end time.Time) string {
			return strings.Replace(subscription("Appointment?status=booked", rx.URL+"/hook", ""),
				`"status":"requested"`, `"status":"requested","end":"`+end.UTC().Format(time.RFC3339)+`"`, 1)
		}
		sub := idOf(t, e.do("admin", "POST", "/Subscription", withEnd(e.clock.Now().Add(time.Hour))))
		e.deliver()
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e.deliver()
		if got := rx.take(); len(got) != 2 {
			t.Fatalf("before its end: %d requests, want the handshake and a notification", len(got))
		}
		e.clock.Advance(time.Hour)
		e.deliver()
		if got := e.do("admin", "GET", "/Subscription/"+sub, "").body; field(t, got, "status") != "off" {
			t.Errorf("at its end: %s, want status off", got)
		}
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e.deliver()
		if got := rx.take(); len(got) != 0 {
			t.Errorf("after its end: %+v, want nothing", got)
		}
		if r := e.do("admin", "POST", "/Subscription", withEnd(e.clock.Now().Add(-time.Minute))); r.status != 422 || !strings.Contains(r.body, `"Subscription.end"`) {
			t.Errorf("requested with its end passed: %d %s, want 422 naming Subscription.end", r.status, r.body)
		}
	})
}

// TestRedirectNotFollowed: an endpoint that redirects does not lead the
// server elsewhere; the redirect is a failed delivery.
func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{})
	elsewhere := newReceiver(t)
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/stolen", http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", redirect.URL+"/hook", ""))
	e.deliver()
	if got := elsewhere.take(); len(got) != 0 {
		t.Errorf("the redirect was followed: %+v", got)
	}
	if e.n.Failures() != 1 {
		t.Errorf("failures %d, want 1 (the handshake answered 307)", e.n.Failures())
	}
}

// TestTypesLimit: with Types set, Subscriptions about other types are
// refused, and those about the listed types are delivered.
func TestTypesLimit(t *testing.T) {
	e := newEnv(t, engines[0].open(t, engines[0].place(t)), map[string]map[string]any{}, func(c *notify.Config) { c.Types = []string{"Appointment"} })
	rx := newReceiver(t)
	if r := e.do("admin", "POST", "/Subscription", subscription("Patient?gender=female", rx.URL+"/hook", "")); r.status != 422 || !strings.Contains(r.body, "Appointment") {
		t.Errorf("Subscription on Patient: %d %s", r.status, r.body)
	}
	if r := e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "")); r.status != 201 {
		t.Fatalf("Subscription on Appointment: %d %s", r.status, r.body)
	}
	e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
	e.deliver()
	if got := rx.take(); len(got) != 2 {
		t.Errorf("handshake and event: %+v", got)
	}
}

// TestOwnerAuthorisationLapses: a Subscription delivers while the token of
// its owner (from an external issuer) is current; once it has expired,
// nothing more is delivered and the Subscription is set to error, saying
// why; written again with a current token, it delivers again.
func TestOwnerAuthorisationLapses(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e, exp := newEnvExpiringApp(t, eng)
		rx := newReceiver(t)
		body := subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json")
		r := e.do("app", "POST", "/Subscription", body)
		if r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		sub := idOf(t, r)
		e.deliver()
		rx.take()
		first := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		if got := rx.take(); len(got) != 1 || got[0].Path != "/hook/Appointment/"+first {
			t.Fatalf("delivered %+v while the token is current, want Appointment/%s", got, first)
		}

		e.clock.Advance(exp.Sub(e.clock.Now()) + 2*time.Minute)
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e.deliver()
		if got := rx.take(); len(got) != 0 {
			t.Fatalf("delivered %+v after the owner's token expired", got)
		}
		r = e.do("admin", "GET", "/Subscription/"+sub, "")
		if st, why := field(t, r.body, "status"), field(t, r.body, "error"); st != "error" || !strings.Contains(why, "token expired at") {
			t.Errorf("subscription after the lapse: status %q, error %q", st, why)
		}
		e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		e.deliver()
		if got := rx.take(); len(got) != 0 {
			t.Fatalf("delivered %+v to a lapsed subscription", got)
		}

		e.tokens["app"] = e.idp.Sign(t, authtest.Claims(issuer, e.base, appClaims(e.clock.Now().Add(time.Hour))))
		renewed := strings.Replace(body, `"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+sub+`"`, 1)
		if r := e.do("app", "PUT", "/Subscription/"+sub, renewed); r.status != 200 {
			t.Fatalf("renew: %d %s", r.status, r.body)
		}
		e.deliver()
		rx.take()
		last := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		if got := rx.take(); len(got) != 1 || got[0].Path != "/hook/Appointment/"+last {
			t.Errorf("delivered %+v once renewed, want Appointment/%s", got, last)
		}
	})
}

// TestTwoProcessesErrorSinceClocksApart: a notification that one process
// first failed is retried, until the subscription is set to error, by
// another whose clock is two hours ahead: Subscription.error says it has
// failed since a time by the clock of the process that set it, as long
// before as it failed, not the first failure by the other clock.
func TestTwoProcessesErrorSinceClocksApart(t *testing.T) {
	a, b, _, sub := failingClocksApart(t)
	a.deliver() // the first failure, by a's clock
	var body string
	for range 90 {
		b.deliver()
		if body = a.do("admin", "GET", "/Subscription/"+sub, "").body; field(t, body, "status") == "error" {
			break
		}
		b.clock.Advance(time.Minute)
	}
	msg := field(t, body, "error")
	if field(t, body, "status") != "error" {
		t.Fatalf("after 90 minutes of failures: %s, want status error", body)
	}
	var since string
	if _, err := fmt.Sscanf(msg, "delivery failing since %s", &since); err != nil {
		t.Fatalf("Subscription.error %q: %v", msg, err)
	}
	at, err := time.Parse(time.RFC3339, since)
	if err != nil {
		t.Fatalf("Subscription.error %q: %v", msg, err)
	}
	// ErrorAfter is an hour, the longest backoff a minute: b set it to
	// error once an hour of failures had been measured.
	setAt := b.clock.Now()
	if failing := setAt.Sub(at); failing < time.Hour || failing > time.Hour+2*time.Minute {
		t.Errorf("Subscription.error %q set at %s by b's clock: failing for %s, want the hour measured", msg, setAt.Format(time.RFC3339), failing)
	}
}

// ownerFault is the error failingOwners answers, as an engine's errors
// read: internals of the server.
const ownerFault = "connection pool for 10.2.3.4:27017 was cleared (*mongo.CommandError)"

// failingOwners is an engine whose reads of the subscriptions' owners
// made outside any request (by the deliveries) fail while fail is set.
type failingOwners struct {
	store.Store
	store.Finder
	fail atomic.Bool
}

func (f *failingOwners) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if typ == "NotifyOwner" && f.fail.Load() && ctx.Value(http.ServerContextKey) == nil {
		return nil, errors.New(ownerFault)
	}
	return f.Store.Read(ctx, typ, id)
}

// TestServerFailureNotQuotedInError: a subscription whose deliveries
// fail on the server's side (the engine failing to read its owner) for
// ErrorAfter is set to error saying the server could not prepare the
// notification, not quoting the engine's error, which the log keeps at
// error level beside the subscription's id.
func TestServerFailureNotQuotedInError(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		f := &failingOwners{Store: st, Finder: st.(store.Finder)}
		logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logs.Close()
		e := newEnv(t, f, map[string]map[string]any{}, func(c *notify.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
		rx := newReceiver(t)
		id := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json")))
		e.deliver()
		rx.take()
		f.fail.Store(true)
		sub := e.failForAnHour(id)
		if field(t, sub, "status") != "error" || !strings.Contains(field(t, sub, "error"), "the server could not prepare the notification") {
			t.Fatalf("after an hour of the server failing: %s, want error saying the server could not prepare the notification", sub)
		}
		for _, internal := range []string{"10.2.3.4", "connection pool", "mongo", "owner of subscription"} {
			if strings.Contains(sub, internal) {
				t.Errorf("the Subscription holds %q: %s", internal, sub)
			}
		}
		text, _ := os.ReadFile(logs.Name())
		var found bool
		for _, line := range strings.Split(string(text), "\n") {
			found = found || strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, ownerFault) && strings.Contains(line, id)
		}
		if !found {
			t.Errorf("no error line with the cause and the subscription; log:\n%s", text)
		}
	})
}
