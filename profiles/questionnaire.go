package profiles

import (
	"fmt"
	"math/big"
	"sort"
	"strings"
)

// A QuestionnaireResponse that names its Questionnaire must be consistent
// with it (https://hl7.org/fhir/R4/questionnaireresponse-definitions.html#QuestionnaireResponse.questionnaire):
// its items are items of the Questionnaire at the same place, answers have
// the item's type and, for a choice, are among its options, items that are
// not enabled (Questionnaire.item.enableWhen) have no answers, and when the
// response is completed every required, enabled item is answered.

// qrNode is one item of a QuestionnaireResponse (or its root), with the
// items nested in it directly and under its answers.
type qrNode struct {
	linkID   string
	item     map[string]any
	answers  []any
	children []*qrNode
	parent   *qrNode
	path     string
	// pre and post number the node in a depth-first walk: node m lies
	// below n when n.pre < m.pre <= n.post.
	pre, post int
}

// qrTree is a QuestionnaireResponse's items, with the occurrences of each
// linkId in document order.
type qrTree struct {
	root   *qrNode
	byLink map[string][]*qrNode
	next   int
}

func buildQR(qr map[string]any, path string) *qrTree {
	t := &qrTree{byLink: map[string][]*qrNode{}}
	t.root = t.node(qr, path, nil, 0)
	return t
}

// node builds the node of an item and those below it, to the depth the
// walker checks (deeper items are reported by the walk itself).
func (t *qrTree) node(obj map[string]any, path string, parent *qrNode, depth int) *qrNode {
	n := &qrNode{item: obj, path: path, parent: parent, pre: t.next}
	t.next++
	n.linkID, _ = obj["linkId"].(string)
	n.answers, _ = obj["answer"].([]any)
	if parent != nil {
		t.byLink[n.linkID] = append(t.byLink[n.linkID], n)
	}
	if depth < maxDepth {
		items, _ := obj["item"].([]any)
		for i, x := range items {
			if m, ok := x.(map[string]any); ok {
				n.children = append(n.children, t.node(m, fmt.Sprintf("%s.item[%d]", path, i), n, depth+1))
			}
		}
		for i, a := range n.answers {
			am, _ := a.(map[string]any)
			nested, _ := am["item"].([]any)
			for j, x := range nested {
				if m, ok := x.(map[string]any); ok {
					n.children = append(n.children, t.node(m, fmt.Sprintf("%s.answer[%d].item[%d]", path, i, j), n, depth+1))
				}
			}
		}
	}
	n.post = t.next - 1
	return n
}

// hasAnswer reports whether the node or an item below it holds an answer.
func (n *qrNode) hasAnswer() bool {
	if len(n.answers) > 0 {
		return true
	}
	for _, c := range n.children {
		if c.hasAnswer() {
			return true
		}
	}
	return false
}

// find returns the occurrence of linkID nearest to n: the first below n,
// else the first below its parent, up to the root (the ancestor axis
// first, as Questionnaire.item.enableWhen.question describes).
func (t *qrTree) find(n *qrNode, linkID string) *qrNode {
	occ := t.byLink[linkID]
	for at := n; at != nil; at = at.parent {
		// The first occurrence numbered after at.
		i := sort.Search(len(occ), func(i int) bool { return occ[i].pre > at.pre })
		if i < len(occ) && occ[i].pre <= at.post {
			return occ[i]
		}
	}
	return nil
}

// questionnaireResponse checks a QuestionnaireResponse against the
// Questionnaire it names, when that Questionnaire is contained in it or
// was given to the validator.
func (w *walker) questionnaireResponse(qr map[string]any, path string) {
	ref, _ := qr["questionnaire"].(string)
	if ref == "" {
		return
	}
	var q map[string]any
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		q = w.contained(id)
	} else {
		q = w.v.questionnaires[canonical(ref)]
	}
	if q == nil {
		w.add("warning", "not-found", path+".questionnaire", "the Questionnaire %s is not known here, so the answers were not checked against it", ref)
		return
	}
	status, _ := qr["status"].(string)
	c := qrCheck{w: w, tree: buildQR(qr, path), completed: status == "completed" || status == "amended"}
	qItems, _ := q["item"].([]any)
	c.level(qItems, c.tree.root, true)
}

type qrCheck struct {
	w         *walker
	tree      *qrTree
	completed bool
}

// level checks the items of one QuestionnaireResponse node against the
// Questionnaire items defined at that place.
func (c qrCheck) level(qItems []any, parent *qrNode, enabled bool) {
	defs := map[string]map[string]any{}
	for _, x := range qItems {
		if m, ok := x.(map[string]any); ok {
			if id, ok := m["linkId"].(string); ok {
				defs[id] = m
			}
		}
	}
	present := map[string]bool{}
	for _, n := range parent.children {
		def := defs[n.linkID]
		if def == nil {
			c.w.add("error", "structure", n.path, "the Questionnaire has no item %q at this place", n.linkID)
			continue
		}
		on := enabled && c.enabled(def, parent)
		if !on {
			if n.hasAnswer() {
				c.w.add("error", "invalid", n.path, "item %q has an answer, but it is not enabled", n.linkID)
			}
			continue
		}
		if n.hasAnswer() || len(n.answers) > 0 {
			present[n.linkID] = true
		}
		c.answers(def, n)
		sub, _ := def["item"].([]any)
		c.level(sub, n, true)
	}
	if !c.completed || !enabled {
		return
	}
	for _, x := range qItems {
		def, _ := x.(map[string]any)
		id, _ := def["linkId"].(string)
		if def["required"] == true && !present[id] && c.enabled(def, parent) {
			c.w.add("error", "required", parent.path, "no answer for the required item %q", id)
		}
	}
}

// answers checks a question's answers: there are none for a group or
// display item, at most one unless the item repeats, each of the item's
// type and, for a choice item with answerOption, one of the options.
func (c qrCheck) answers(def map[string]any, n *qrNode) {
	typ, _ := def["type"].(string)
	if len(n.answers) == 0 {
		return
	}
	if typ == "group" || typ == "display" {
		c.w.add("error", "structure", n.path, "item %q is a %s, which has no answers", n.linkID, typ)
		return
	}
	if len(n.answers) > 1 && def["repeats"] != true {
		c.w.add("error", "structure", n.path, "item %q does not repeat, but has %d answers", n.linkID, len(n.answers))
	}
	allowed := answerTypes[typ]
	options, _ := def["answerOption"].([]any)
	for i, a := range n.answers {
		am, _ := a.(map[string]any)
		at := fmt.Sprintf("%s.answer[%d]", n.path, i)
		vt, val := choiceValue(am, "value")
		if vt == "" {
			continue
		}
		if allowed != nil && !contains(allowed, vt) {
			c.w.add("error", "structure", at, "item %q is of type %s, so an answer cannot be a %s", n.linkID, typ, vt)
			continue
		}
		if len(options) == 0 || (typ != "choice" && typ != "open-choice") {
			continue
		}
		matched, ofType := false, false
		for _, o := range options {
			om, _ := o.(map[string]any)
			if ot, ov := choiceValue(om, "value"); ot == vt {
				ofType = true
				matched = matched || sameAnswer(vt, val, ov)
			}
		}
		switch {
		case matched || typ == "open-choice" && vt == "String":
		case !ofType:
			c.w.add("error", "structure", at, "item %q has no option of type %s", n.linkID, vt)
		default:
			c.w.add("error", "code-invalid", at, "the answer is not one of the options of item %q", n.linkID)
		}
	}
}

// answerTypes gives the answer types of each Questionnaire item type
// (https://hl7.org/fhir/R4/valueset-item-type.html).
var answerTypes = map[string][]string{
	"boolean":     {"Boolean"},
	"decimal":     {"Decimal"},
	"integer":     {"Integer"},
	"date":        {"Date"},
	"dateTime":    {"DateTime"},
	"time":        {"Time"},
	"string":      {"String"},
	"text":        {"String"},
	"url":         {"Uri"},
	"choice":      {"Coding", "String", "Integer", "Date", "Time"},
	"open-choice": {"Coding", "String", "Integer", "Date", "Time"},
	"attachment":  {"Attachment"},
	"reference":   {"Reference"},
	"quantity":    {"Quantity"},
}

// choiceValue returns the type suffix and value of the choice element
// prefix[x] in obj, such as "Coding" for valueCoding.
func choiceValue(obj map[string]any, prefix string) (string, any) {
	for k, v := range obj {
		if s, ok := strings.CutPrefix(k, prefix); ok && s != "" && s[0] >= 'A' && s[0] <= 'Z' {
			return s, v
		}
	}
	return "", nil
}

// enabled evaluates an item's enableWhen conditions against the answers
// nearest to where it is answered (enableBehavior all or, by default, any).
func (c qrCheck) enabled(def map[string]any, at *qrNode) bool {
	conds, _ := def["enableWhen"].([]any)
	if len(conds) == 0 {
		return true
	}
	all := def["enableBehavior"] == "all"
	for _, x := range conds {
		cond, _ := x.(map[string]any)
		ok := c.condition(cond, at)
		if all && !ok {
			return false
		}
		if !all && ok {
			return true
		}
	}
	return all
}

func (c qrCheck) condition(cond map[string]any, at *qrNode) bool {
	question, _ := cond["question"].(string)
	op, _ := cond["operator"].(string)
	var answers []any
	if n := c.tree.find(at, question); n != nil {
		answers = n.answers
	}
	wantType, want := choiceValue(cond, "answer")
	if op == "exists" {
		return want == (len(answers) > 0)
	}
	for _, a := range answers {
		am, _ := a.(map[string]any)
		vt, val := choiceValue(am, "value")
		if vt != wantType {
			continue
		}
		switch op {
		case "=":
			if sameAnswer(vt, val, want) {
				return true
			}
		case "!=":
			if !sameAnswer(vt, val, want) {
				return true
			}
		case ">", "<", ">=", "<=":
			if cmp, ok := compareAnswer(val, want); ok && holds(op, cmp) {
				return true
			}
		}
	}
	return false
}

func holds(op string, cmp int) bool {
	switch op {
	case ">":
		return cmp > 0
	case "<":
		return cmp < 0
	case ">=":
		return cmp >= 0
	case "<=":
		return cmp <= 0
	}
	return false
}

// sameAnswer compares two answer values of a type: Codings by system and
// code, Quantities by value and code, others as JSON values.
func sameAnswer(typ string, a, b any) bool {
	am, ok1 := a.(map[string]any)
	bm, ok2 := b.(map[string]any)
	switch {
	case typ == "Coding" && ok1 && ok2:
		return am["system"] == bm["system"] && am["code"] == bm["code"]
	case typ == "Quantity" && ok1 && ok2:
		c, ok := compareAnswer(am["value"], bm["value"])
		return ok && c == 0 && am["code"] == bm["code"]
	}
	if c, ok := compareAnswer(a, b); ok {
		return c == 0
	}
	return equalJSON(a, b)
}

// compareAnswer orders numbers by value and dates, times and strings as
// text.
func compareAnswer(a, b any) (int, bool) {
	if x, ok := toRat(a); ok {
		if y, ok := toRat(b); ok {
			return x.Cmp(y), true
		}
		return 0, false
	}
	if x, ok := a.(float64); ok {
		if y, ok := b.(float64); ok {
			return new(big.Rat).SetFloat64(x).Cmp(new(big.Rat).SetFloat64(y)), true
		}
	}
	x, ok1 := a.(string)
	y, ok2 := b.(string)
	if ok1 && ok2 {
		return strings.Compare(x, y), true
	}
	return 0, false
}

// qItem is an item of a Questionnaire, numbered in a depth-first walk: m
// lies below n when n.pre < m.pre <= n.post.
type qItem struct {
	item      map[string]any
	path      string
	pre, post int
}

// que2 checks que-2 (https://hl7.org/fhir/R4/questionnaire.html#invs):
// the linkIds of a Questionnaire's items are unique.
func (w *walker) que2(items []*qItem, path string) {
	var inv *Constraint
	if s := w.v.structures["Questionnaire"]; s != nil {
		inv = nativeConstraint(s.root, "que-2")
	}
	if inv == nil {
		return
	}
	seen := map[string]bool{}
	var dups []string
	for _, it := range items {
		id, ok := it.item["linkId"].(string)
		if !ok {
			continue
		}
		if seen[id] && !contains(dups, id) {
			dups = append(dups, id)
		}
		seen[id] = true
	}
	if len(dups) > 0 {
		w.brokenInvariant(*inv, path, "repeated: "+truncate(strings.Join(dups, ", ")))
	}
}

// questionnaire checks that each enableWhen of a Questionnaire names a
// question of the Questionnaire, and not one nested in the item itself:
// a disabled item disables its descendants, so they could never enable it.
func (w *walker) questionnaire(q map[string]any, path string) {
	var items []*qItem
	first := map[string]int{} // linkId → pre of its first occurrence
	var visit func(list []any, path string, depth int)
	visit = func(list []any, path string, depth int) {
		for i, x := range list {
			m, ok := x.(map[string]any)
			if !ok {
				continue
			}
			it := &qItem{item: m, path: fmt.Sprintf("%s.item[%d]", path, i), pre: len(items)}
			items = append(items, it)
			if id, ok := m["linkId"].(string); ok {
				if _, seen := first[id]; !seen {
					first[id] = it.pre
				}
			}
			if sub, _ := m["item"].([]any); depth < maxDepth {
				visit(sub, it.path, depth+1)
			}
			it.post = len(items) - 1
		}
	}
	top, _ := q["item"].([]any)
	visit(top, path, 0)
	w.que2(items, path)
	for _, it := range items {
		conds, _ := it.item["enableWhen"].([]any)
		for j, x := range conds {
			cond, _ := x.(map[string]any)
			question, ok := cond["question"].(string)
			if !ok {
				continue
			}
			at, exists := first[question]
			switch {
			case !exists:
				w.add("error", "business-rule", fmt.Sprintf("%s.enableWhen[%d].question", it.path, j), "the Questionnaire has no item %q", question)
			case it.pre < at && at <= it.post:
				w.add("error", "business-rule", it.path, "enableWhen refers to %q, which is nested in this item: an item that is not enabled disables the items within it", question)
			}
		}
	}
}
