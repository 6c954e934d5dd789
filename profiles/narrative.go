package profiles

import (
	"io"
	"slices"
	"strings"

	"carefhir/fhir/lexical"
)

// Narrative XHTML may use only these elements and attributes
// (https://hl7.org/fhir/R4/narrative.html#xhtml): no script, forms, frames,
// objects or event handlers.
var (
	narrativeElements = set("a", "abbr", "acronym", "b", "big", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "q", "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var")
	narrativeAttrs    = set("abbr", "accesskey", "align", "alt", "axis", "bgcolor", "border", "cellhalign", "cellpadding", "cellspacing", "cellvalign", "char", "charoff", "charset", "cite", "class", "colspan", "compact", "coords", "dir", "frame", "headers", "height", "href", "hreflang", "hspace", "id", "lang", "longdesc", "name", "nowrap", "rel", "rev", "rowspan", "rules", "scope", "shape", "span", "src", "start", "style", "summary", "tabindex", "title", "type", "valign", "value", "vspace", "width", "xmlns", "lang")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// narrativeOnce checks Narrative.div at path as narrative does, once in
// the walks of one validation: the XHTML of a resource's narrative is read
// once for its base definition and its profiles alike.
func (w *walker) narrativeOnce(path, s string) {
	if w.memo == nil {
		w.narrative(path, s)
		return
	}
	if r, ok := w.memo.narratives[path]; ok && r.div == s {
		w.issues = append(w.issues, r.issues...)
		return
	}
	n := len(w.issues)
	w.narrative(path, s)
	w.memo.narratives[path] = narrativeRun{div: s, issues: slices.Clone(w.issues[n:])}
}

// narrative checks Narrative.div: well-formed XHTML whose root is a div in
// the XHTML namespace, using only the allowed elements and attributes, and
// no javascript: URLs, and holding some content (txt-2).
func (w *walker) narrative(path, s string) {
	d := lexical.NewDivDecoder(s)
	depth := 0
	// txt-2 runs htmlChecks(), which looks for unsafe markup alone; its
	// human text is the rule: "The narrative SHALL have some non-whitespace
	// content". Text that is not whitespace is content, and so is an image.
	hasContent := false
	for {
		t, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			w.add("error", "value", path, "the narrative is not well-formed XHTML: %v", err)
			return
		}
		switch t.Kind {
		case lexical.DivStart:
			if depth == 0 && (t.Name.Local != "div" || t.Name.Space != xhtmlNS) {
				w.add("error", "value", path, "the narrative must be a div in the XHTML namespace")
				return
			}
			depth++
			if t.Name.Local == "img" {
				hasContent = true
			}
			if t.Name.Space != xhtmlNS || !narrativeElements[t.Name.Local] {
				w.add("error", "value", path, "the narrative must not contain the element <%s>", t.Name.Local)
				continue
			}
			for _, a := range t.Attr {
				name := strings.ToLower(a.Name.Local)
				switch {
				case a.Name.Space == "xmlns" || a.Name.Space == "http://www.w3.org/XML/1998/namespace":
				case strings.HasPrefix(name, "on") || !narrativeAttrs[name]:
					w.add("error", "value", path, "the narrative must not use the attribute %s on <%s>", a.Name.Local, t.Name.Local)
				case (name == "href" || name == "src" || name == "longdesc" || name == "cite") && unsafeURL(a.Value):
					w.add("error", "value", path, "the narrative must not use the URL %q", truncate(a.Value))
				}
			}
		case lexical.DivEnd:
			depth--
		case lexical.DivText:
			if strings.TrimSpace(t.Text) == "" {
				continue
			}
			if depth == 0 {
				w.add("error", "value", path, "the narrative must be a single div element")
				return
			}
			hasContent = true
		case lexical.DivDirective:
			w.add("error", "value", path, "the narrative must not contain a DOCTYPE or other directive")
			return
		case lexical.DivProcInst:
			w.add("error", "value", path, "the narrative must not contain processing instructions or an XML declaration")
			return
		}
	}
	if !hasContent {
		w.add("error", "invariant", path, "txt-2: The narrative SHALL have some non-whitespace content")
	}
}

// unsafeURL reports a URL whose scheme runs script.
func unsafeURL(u string) bool {
	var b strings.Builder
	for _, r := range u {
		if r > ' ' {
			b.WriteRune(r)
		}
	}
	s := strings.ToLower(b.String())
	return strings.HasPrefix(s, "javascript:") || strings.HasPrefix(s, "vbscript:") || strings.HasPrefix(s, "data:text/html")
}
