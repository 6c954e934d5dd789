package notify_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The channel header values of the tests, which no answer may carry.
const (
	hookAuth = "Bearer s3cret-hook-key"
	hookKey  = "k-s3cret-2"
)

// header returns request headers from name, value pairs.
func header(pairs ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(pairs); i += 2 {
		h.Add(pairs[i], pairs[i+1])
	}
	return h
}

var representation = header("Prefer", "return=representation")

// showsNoSecret fails unless r answered status with a body that names the
// headers but holds none of their values.
func showsNoSecret(t *testing.T, what string, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: %d %s", what, r.status, r.body)
		return
	}
	if strings.Contains(r.body, "s3cret") {
		t.Errorf("%s serves a channel header value: %s", what, r.body)
	}
	if !strings.Contains(r.body, "Authorization: ****") {
		t.Errorf("%s does not show the masked header: %s", what, r.body)
	}
}

// TestHeaderValuesNotServed: the values of a Subscription's channel
// headers are in no answer of the API, in JSON or XML, whatever serves the
// Subscription: the answers to its writes, reads, searches, includes,
// histories, batch entries and the notifications of another subscription
// about it; its own deliveries still carry them.
func TestHeaderValuesNotServed(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{
			"reader": {"sub": "reader", "scope": "user/Subscription.rs user/Provenance.rs"},
		})
		rx := newReceiver(t)
		watcher := e.do("admin", "POST", "/Subscription", subscription("Subscription?status=requested", rx.URL+"/watch", "application/fhir+json"))
		if watcher.status != 201 {
			t.Fatalf("create the watcher: %d %s", watcher.status, watcher.body)
		}
		e.deliver()
		rx.take()

		created := e.doWith("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json",
			"Authorization: "+hookAuth, "X-Key: "+hookKey), representation)
		showsNoSecret(t, "the answer to a create", created, 201)
		id := idOf(t, created)
		e.deliver()
		for _, g := range rx.take() {
			switch g.Path {
			case "/hook":
				if g.Auth != hookAuth || g.Header.Get("X-Key") != hookKey {
					t.Errorf("handshake sent headers %v", g.Header)
				}
			case "/watch/Subscription/" + id:
				if strings.Contains(g.Body, "s3cret") || !strings.Contains(g.Body, "Authorization: ****") {
					t.Errorf("a notification about the Subscription carries %s", g.Body)
				}
			}
		}

		patched := e.doWith("admin", "PATCH", "/Subscription/"+id, `[{"op":"replace","path":"/status","value":"requested"},{"op":"replace","path":"/reason","value":"patched"}]`,
			header("Content-Type", "application/json-patch+json", "Prefer", "return=representation"))
		showsNoSecret(t, "the answer to a patch", patched, 200)
		e.deliver()
		rx.take()
		prov := e.do("admin", "POST", "/Provenance", `{"resourceType":"Provenance","target":[{"reference":"Subscription/`+id+`"}],`+
			`"recorded":"2026-12-01T09:00:00Z","agent":[{"who":{"display":"integration team"}}]}`)
		if prov.status != 201 {
			t.Fatalf("create a Provenance: %d %s", prov.status, prov.body)
		}
		batch := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Subscription/%s"}},`+
			`{"request":{"method":"GET","url":"Subscription?_id=%s"}}]}`, id, id)
		for _, who := range []string{"admin", "reader"} {
			for _, path := range []string{
				"/Subscription/" + id,
				"/Subscription/" + id + "?_format=xml",
				"/Subscription/" + id + "/_history/1",
				"/Subscription/" + id + "/_history/2?_format=xml",
				"/Subscription?_id=" + id,
				"/Subscription?_id=" + id + "&_format=xml",
				"/Subscription/" + id + "/_history",
				"/Subscription/_history",
				"/Provenance?_include=Provenance:target",
				"/Provenance?_include=Provenance:target&_format=xml",
			} {
				showsNoSecret(t, who+" GET "+path, e.do(who, "GET", path, ""), 200)
			}
			showsNoSecret(t, who+" POST _search", e.doWith(who, "POST", "/Subscription/_search", "_id="+id,
				header("Content-Type", "application/x-www-form-urlencoded")), 200)
			showsNoSecret(t, who+" batch", e.do(who, "POST", "", batch), 200)
		}
		showsNoSecret(t, "GET /_history", e.do("admin", "GET", "/_history", ""), 200)
	})
}

// TestHeaderKeptOnReadModifyWrite: a Subscription read, changed and
// written back (by PUT, PATCH or a transaction entry) keeps the header
// values the reader saw masked, as its deliveries show; a new value
// replaces the one stored; a masked value with none stored to keep is
// refused. No version in its history shows a value.
func TestHeaderKeptOnReadModifyWrite(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		created := e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "",
			"X-Key: one", "Authorization: "+hookAuth, "x-key: two"))
		if created.status != 201 {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		id := idOf(t, created)
		// handshake delivers one request and reports the headers it carried.
		handshake := func(what string) http.Header {
			t.Helper()
			e.deliver()
			got := rx.take()
			if len(got) != 1 {
				t.Fatalf("%s: delivered %+v, want one handshake", what, got)
			}
			return got[0].Header
		}
		sent := func(h http.Header) string { return h.Get("Authorization") + " " + fmt.Sprint(h.Values("X-Key")) }
		want := hookAuth + " [one two]"
		if got := sent(handshake("create")); got != want {
			t.Fatalf("created: sent %q, want %q", got, want)
		}

		// readBack returns the current version as read, to be written as
		// requested again.
		readBack := func() string {
			t.Helper()
			r := e.do("admin", "GET", "/Subscription/"+id, "")
			if r.status != 200 || strings.Contains(r.body, "s3cret") {
				t.Fatalf("read: %d %s", r.status, r.body)
			}
			return strings.Replace(r.body, `"status":"active"`, `"status":"requested"`, 1)
		}
		put := e.doWith("admin", "PUT", "/Subscription/"+id, strings.Replace(readBack(), `"reason":"test"`, `"reason":"read and written back"`, 1), representation)
		showsNoSecret(t, "PUT", put, 200)
		if got := sent(handshake("PUT")); got != want {
			t.Errorf("after a PUT of what was read: sent %q, want %q", got, want)
		}

		patch := e.doWith("admin", "PATCH", "/Subscription/"+id, `[{"op":"replace","path":"/status","value":"requested"},{"op":"replace","path":"/reason","value":"patched"}]`,
			header("Content-Type", "application/json-patch+json"))
		if patch.status != 200 {
			t.Fatalf("PATCH: %d %s", patch.status, patch.body)
		}
		if got := sent(handshake("PATCH")); got != want {
			t.Errorf("after a PATCH: sent %q, want %q", got, want)
		}

		tx := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":%s,"request":{"method":"PUT","url":"Subscription/%s"}}]}`,
			strings.Replace(readBack(), `"reason":"patched"`, `"reason":"in a transaction"`, 1), id)
		showsNoSecret(t, "transaction", e.doWith("admin", "POST", "", tx, representation), 200)
		if got := sent(handshake("transaction")); got != want {
			t.Errorf("after a transaction entry: sent %q, want %q", got, want)
		}

		// A new value for the first X-Key, the second kept.
		replaced := strings.Replace(readBack(), `"X-Key: ****"`, `"X-Key: uno"`, 1)
		if r := e.do("admin", "PUT", "/Subscription/"+id, replaced); r.status != 200 || strings.Contains(r.body, "uno") {
			t.Fatalf("PUT a new value: %d %s", r.status, r.body)
		}
		want = hookAuth + " [uno two]"
		if got := sent(handshake("new value")); got != want {
			t.Errorf("after a new value: sent %q, want %q", got, want)
		}

		history := e.do("admin", "GET", "/Subscription/"+id+"/_history", "")
		if history.status != 200 || strings.Count(history.body, `"Authorization: ****"`) < 5 || strings.Contains(history.body, "s3cret") ||
			strings.Contains(history.body, "uno") || strings.Contains(history.body, `"X-Key: one"`) {
			t.Errorf("history: %d %s", history.status, history.body)
		}

		// Nothing stored to keep: refused, and nothing written.
		before := e.do("admin", "GET", "/Subscription/"+id, "").header.Get("ETag")
		extra := strings.Replace(readBack(), `"Authorization: ****"`, `"Authorization: ****","X-Other: ****"`, 1)
		r := e.do("admin", "PUT", "/Subscription/"+id, extra)
		if r.status != 422 || !strings.Contains(r.body, "Subscription.channel.header[2]") {
			t.Errorf("PUT of a masked header not stored: %d %s", r.status, r.body)
		}
		if after := e.do("admin", "GET", "/Subscription/"+id, "").header.Get("ETag"); after != before {
			t.Errorf("refused PUT wrote a version: ETag %s, was %s", after, before)
		}
		r = e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/other", "", "Authorization: ****"))
		if r.status != 422 || !strings.Contains(r.body, "Subscription.channel.header[0]") {
			t.Errorf("create with a masked header: %d %s", r.status, r.body)
		}
		if r := e.do("admin", "GET", "/Subscription?_summary=count", ""); !strings.Contains(r.body, `"total":1`) {
			t.Errorf("after the refused create: %s", r.body)
		}
	})
}

// TestHeaderNotKeptForNewEndpoint: a masked header value is kept only for
// the endpoint it was given for, so that a client that may update a
// Subscription, but was never shown its keys, cannot have them sent to a
// receiver of its own; with the values given again the endpoint changes.
func TestHeaderNotKeptForNewEndpoint(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{
			"editor": {"sub": "editor", "scope": "user/Subscription.ru user/Appointment.rs"},
		})
		rx, other := newReceiver(t), newReceiver(t)
		created := e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "", "Authorization: "+hookAuth))
		if created.status != 201 {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		id := idOf(t, created)
		e.deliver()
		rx.take()
		read := e.do("editor", "GET", "/Subscription/"+id, "")
		moved := strings.Replace(strings.Replace(read.body, rx.URL, other.URL, 1), `"status":"active"`, `"status":"requested"`, 1)
		r := e.do("editor", "PUT", "/Subscription/"+id, moved)
		if r.status != 422 || !strings.Contains(r.body, "Subscription.channel.header[0]") {
			t.Errorf("PUT of a new endpoint keeping the masked value: %d %s", r.status, r.body)
		}
		e.deliver()
		if got := other.take(); len(got) != 0 {
			t.Fatalf("the new endpoint was sent %+v", got)
		}
		r = e.do("editor", "PUT", "/Subscription/"+id, strings.Replace(moved, "Authorization: ****", "Authorization: Bearer its-own", 1))
		if r.status != 200 {
			t.Fatalf("PUT of a new endpoint with a new value: %d %s", r.status, r.body)
		}
		e.deliver()
		if got := other.take(); len(got) != 1 || got[0].Auth != "Bearer its-own" {
			t.Errorf("the new endpoint was sent %+v", got)
		}
	})
}

// TestHeaderUnchangedRePut: a Subscription written again as it is stored,
// its header values given in full (as a tool re-applying its definition
// gives them) or masked, is an update that changes nothing: no version is
// written and no new handshake sent, in a PUT, a transaction entry or a
// PATCH.
func TestHeaderUnchangedRePut(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{})
		rx := newReceiver(t)
		def := subscription("Appointment?status=booked", rx.URL+"/hook", "", "Authorization: "+hookAuth, "X-Key: "+hookKey)
		created := e.do("admin", "POST", "/Subscription", def)
		if created.status != 201 {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		id := idOf(t, created)
		def = `{"id":"` + id + `",` + def[1:]
		// unchanged writes body, in a PUT and in a transaction entry, and
		// fails unless each answers version, the current one.
		unchanged := func(what, body string, version int) {
			t.Helper()
			etag := fmt.Sprintf(`W/"%d"`, version)
			put := e.do("admin", "PUT", "/Subscription/"+id, body)
			if put.status != 200 || put.header.Get("ETag") != etag || strings.Contains(put.body, "s3cret") {
				t.Errorf("PUT %s: %d ETag %s %s", what, put.status, put.header.Get("ETag"), put.body)
			}
			tx := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":%s,"request":{"method":"PUT","url":"Subscription/%s"}}]}`, body, id)
			r := e.do("admin", "POST", "", tx)
			if r.status != 200 || !strings.Contains(r.body, fmt.Sprintf(`"etag":%q`, etag)) || strings.Contains(r.body, "s3cret") {
				t.Errorf("transaction entry PUT %s: %d %s", what, r.status, r.body)
			}
		}
		unchanged("of the definition before its handshake", def, 1)
		e.deliver()
		if got := rx.take(); len(got) != 1 {
			t.Fatalf("delivered %d requests, want the one handshake: %+v", len(got), got)
		}

		read := e.do("admin", "GET", "/Subscription/"+id, "")
		if read.status != 200 || !strings.Contains(read.body, `"status":"active"`) {
			t.Fatalf("read: %d %s", read.status, read.body)
		}
		unchanged("of what was read", read.body, 2)
		full := strings.NewReplacer("Authorization: ****", "Authorization: "+hookAuth, "X-Key: ****", "X-Key: "+hookKey).Replace(read.body)
		unchanged("of what was read with the values in full", full, 2)
		patch := e.doWith("admin", "PATCH", "/Subscription/"+id, `[{"op":"replace","path":"/channel/header/0","value":"Authorization: `+hookAuth+`"}]`,
			header("Content-Type", "application/json-patch+json"))
		if patch.status != 200 || patch.header.Get("ETag") != `W/"2"` {
			t.Errorf("PATCH of a header to its value: %d ETag %s %s", patch.status, patch.header.Get("ETag"), patch.body)
		}
		e.deliver()
		if got := rx.take(); len(got) != 0 {
			t.Errorf("after unchanged writes, delivered %+v", got)
		}
		if h := e.do("admin", "GET", "/Subscription/"+id+"/_history?_summary=count", ""); !strings.Contains(h.body, `"total":2`) {
			t.Errorf("history: %s", h.body)
		}
	})
}
