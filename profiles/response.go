package profiles

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// CheckResponse checks a QuestionnaireResponse against the Questionnaire it
// answers, both as JSON: its items are items of the Questionnaire at the
// same place, answers have the item's type, are among its options and are
// single unless it repeats, items not enabled (enableWhen) have no answers,
// a completed or amended response answers every required enabled item, and
// a readOnly item with an initial value keeps it. It is the check Validate
// makes of a response naming a Questionnaire the validator was given, for
// Questionnaires found elsewhere (such as in a store).
func CheckResponse(response, questionnaire []byte) ([]Issue, error) {
	qr, err := decodeObject(response)
	if err != nil {
		return nil, fmt.Errorf("profiles: QuestionnaireResponse: %w", err)
	}
	q, err := decodeObject(questionnaire)
	if err != nil {
		return nil, fmt.Errorf("profiles: Questionnaire: %w", err)
	}
	w := &walker{}
	status, _ := qr["status"].(string)
	c := qrCheck{w: w, tree: buildQR(qr, "QuestionnaireResponse"), completed: status == "completed" || status == "amended"}
	qItems, _ := q["item"].([]any)
	c.level(qItems, c.tree.root, true)
	readOnly(w, qItems, c.tree.root)
	return dedup(w.issues), nil
}

func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var obj map[string]any
	if err := d.Decode(&obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// readOnly reports the answers of readOnly items that differ from the
// item's initial values: a person cannot have changed them.
func readOnly(w *walker, qItems []any, parent *qrNode) {
	defs := map[string]map[string]any{}
	for _, x := range qItems {
		if m, ok := x.(map[string]any); ok {
			if id, ok := m["linkId"].(string); ok {
				defs[id] = m
			}
		}
	}
	for _, n := range parent.children {
		def := defs[n.linkID]
		if def == nil {
			continue
		}
		if def["readOnly"] == true {
			initial, _ := def["initial"].([]any)
			if len(initial) > 0 && n.hasAnswer() && !sameValues(initial, n.answers) {
				w.add("error", "business-rule", n.path, "item %q is read-only: its answer must be its initial value", n.linkID)
			}
		}
		sub, _ := def["item"].([]any)
		readOnly(w, sub, n)
	}
}

// sameValues reports whether the answers hold the initial values, in order.
func sameValues(initial, answers []any) bool {
	if len(initial) != len(answers) {
		return false
	}
	for i := range initial {
		it, iv := choiceValue(asObject(initial[i]), "value")
		at, av := choiceValue(asObject(answers[i]), "value")
		if it != at || !reflect.DeepEqual(iv, av) {
			return false
		}
	}
	return true
}

func asObject(x any) map[string]any {
	m, _ := x.(map[string]any)
	return m
}
