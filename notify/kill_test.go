package notify_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"carefhir/store/storetest"
)

// Environment of the child process of TestKill.
const (
	killEngineEnv   = "NOTIFY_KILL_ENGINE"
	killPlaceEnv    = "NOTIFY_KILL_PLACE"
	killEndpointEnv = "NOTIFY_KILL_ENDPOINT"
)

// TestKill: the server is killed with SIGKILL while clients write; every
// write it acknowledged is notified by the next process on the same store,
// and nothing that was not written is.
func TestKill(t *testing.T) {
	if name := os.Getenv(killEngineEnv); name != "" {
		killChild(t, name, os.Getenv(killPlaceEnv), os.Getenv(killEndpointEnv))
		return
	}
	eachEngine(t, func(t *testing.T, eng engine) {
		place := eng.place(t)
		rx := newReceiver(t)
		acked := storetest.Kill(t, "TestKill", killEngineEnv+"="+eng.name, killPlaceEnv+"="+place, killEndpointEnv+"="+rx.URL+"/hook")
		if len(acked) < 10 {
			t.Fatalf("the child acknowledged %d writes", len(acked))
		}
		st := eng.open(t, place)
		t.Cleanup(func() { st.Close() })
		e := newEnv(t, st, map[string]map[string]any{})
		for range 3 {
			e.deliver()
		}
		var delivered []string
		for _, g := range rx.take() {
			if id, ok := strings.CutPrefix(g.Path, "/hook/Appointment/"); ok {
				delivered = append(delivered, id)
				if r := e.do("admin", "GET", "/Appointment/"+id, ""); r.status != 200 {
					t.Errorf("notified of Appointment/%s, which reads %d", id, r.status)
				}
			}
		}
		for _, id := range acked {
			if !slices.Contains(delivered, id) {
				t.Errorf("acknowledged Appointment/%s was not notified (%d acknowledged, %d notified)", id, len(acked), len(delivered))
			}
		}
		if len(delivered) < len(acked) || len(delivered) > len(acked)+1 {
			t.Errorf("%d notified, %d acknowledged: at most the write in flight at the kill may add one", len(delivered), len(acked))
		}
	})
}

// killChild serves the API on the store, subscribes, and writes
// Appointments one after another, printing the id of each acknowledged
// one, until it is killed.
func killChild(t *testing.T, name, place, endpoint string) {
	for _, eng := range engines {
		if eng.name != name {
			continue
		}
		e := newEnv(t, eng.open(t, place), map[string]map[string]any{})
		if r := e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", endpoint, "application/fhir+json")); r.status != 201 {
			t.Fatalf("subscribe: %d %s", r.status, r.body)
		}
		for i := 0; ; i++ {
			r := e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
			if r.status != 201 {
				t.Fatalf("write: %d %s", r.status, r.body)
			}
			fmt.Println(idOf(t, r))
			if i == 20 {
				storetest.Signal() // killed while it goes on writing
			}
		}
	}
	t.Fatalf("no engine %q", name)
}
