package server_test

import (
	"strings"
	"testing"
)

func TestXProvenance(t *testing.T) {
	who := principals{"noprov": {Subject: "noprov", Scopes: mustScopes(t, "system/Patient.cruds")}}
	prov := `{"resourceType":"Provenance","agent":[{"who":{"reference":"Practitioner/dr"}}],"activity":{"text":"registration"}}`
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			created := c.by("admin", "POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Prov"}]}`, "X-Provenance", prov).want(t, 201).json(t)
			id := str(created, "id")
			c.by("admin", "PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","name":[{"family":"Prov2"}]}`, "X-Provenance", prov).want(t, 200)
			found := c.by("admin", "GET", "/Provenance?target=Patient/"+id+"&_sort=_lastUpdated", "").want(t, 200).json(t)
			entries, _ := get(found, "entry").([]any)
			if len(entries) != 2 {
				t.Fatalf("Provenance of Patient/%s: %d, want 2: %v", id, len(entries), found)
			}
			var targets []string
			for _, en := range entries {
				targets = append(targets, str(en, "resource", "target", 0, "reference"))
				if str(en, "resource", "recorded") == "" || str(en, "resource", "agent", 0, "who", "reference") != "Practitioner/dr" {
					t.Errorf("stored Provenance: %v", get(en, "resource"))
				}
			}
			if got := strings.Join(targets, " "); !strings.Contains(got, "Patient/"+id+"/_history/1") || !strings.Contains(got, "Patient/"+id+"/_history/2") {
				t.Errorf("Provenance targets %q, want both versions", got)
			}

			// A bad header, or one the token may not write, stores nothing.
			before := len(ids(t, c.by("admin", "GET", "/Patient", "")))
			c.by("admin", "POST", "/Patient", `{"resourceType":"Patient"}`, "X-Provenance", `{"resourceType":"Patient"}`).want(t, 400).outcome(t, "invalid", "X-Provenance")
			c.by("admin", "POST", "/Patient", `{"resourceType":"Patient"}`, "X-Provenance", `{not json`).want(t, 400)
			c.by("noprov", "POST", "/Patient", `{"resourceType":"Patient"}`, "X-Provenance", prov).want(t, 403)
			c.by("admin", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[]}`, "X-Provenance", prov).want(t, 400)
			if after := len(ids(t, c.by("admin", "GET", "/Patient", ""))); after != before {
				t.Errorf("refused writes stored Patients: %d before, %d after", before, after)
			}
		})
	}
}
