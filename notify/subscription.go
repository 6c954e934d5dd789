package notify

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/store"
)

// The Subscription statuses (R4).
const (
	statusRequested = "requested"
	statusActive    = "active"
	statusError     = "error"
	statusOff       = "off"
)

// payloadFull is the one payload MIME type served besides none.
const payloadFull = "application/fhir+json"

// subscription is a stored Subscription as the matcher and the deliverer
// use it.
type subscription struct {
	id       string
	version  int64
	status   string
	typ      string         // the resource type of the criteria
	where    []store.Clause // the criteria, matched on each written version
	endpoint string
	payload  string // "" or payloadFull
	headers  http.Header
	// topic, for a topic-based subscription (the R5 Backport IG), and the
	// content and heartbeat period of its notifications.
	topic     *topic
	content   string
	heartbeat time.Duration
	// refused: this server's settings refuse it now (an http endpoint
	// without AllowHTTP, a type outside Types), though another process's
	// may accept it during a rolling change of settings. Writes here are
	// still matched against it, and the rows left to a process that
	// delivers it.
	refused bool
	// end is when the server turns it off (Subscription.end); zero: never.
	end time.Time
}

// ended reports whether s is past its end at now: writes from then on are
// not matched, and the deliverer switches it off (settleEnded).
func (s *subscription) ended(now time.Time) bool {
	return !s.end.IsZero() && !now.Before(s.end)
}

// live reports whether writes are matched for s: from its request until
// it is switched off or fails.
func (s *subscription) live() bool { return liveStatus(s.status) }

// liveStatus reports whether a Subscription of status is live: requested
// or active.
func liveStatus(status string) bool {
	return status == statusRequested || status == statusActive
}

// parseSubscription reads a Subscription into what matching and delivery
// need; its refusals are 422 with the element at fault.
func (n *Notifier) parseSubscription(res *fhir.Subscription) (*subscription, error) {
	return n.parse(res, n.cfg.AllowHTTP, n.subscribable)
}

// parseUnderAnySettings reads a Subscription as a server of other
// settings may accept it: an endpoint on plain http anywhere, a criteria
// of any type. What no setting allows is refused still.
func (n *Notifier) parseUnderAnySettings(res *fhir.Subscription) (*subscription, error) {
	return n.parse(res, true, func(string) bool { return true })
}

// parse is parseSubscription with the settings given: whether endpoints
// may use plain http anywhere, and which types may be subscribed to.
func (n *Notifier) parse(res *fhir.Subscription, allowHTTP bool, subscribable func(typ string) bool) (*subscription, error) {
	s := &subscription{id: res.GetID(), status: res.Status.Get()}
	if end := res.End.Get(); end != "" {
		t, err := time.Parse(time.RFC3339Nano, end)
		if err != nil {
			return nil, invalid("Subscription.end", "end %q is not an instant", end)
		}
		s.end = t
	}
	ch := res.Channel
	if ch == nil {
		return nil, invalid("Subscription.channel", "a channel is required")
	}
	if t := ch.Type.Get(); t != "rest-hook" {
		return nil, operation.Errorf(422, "not-supported", "Subscription.channel.type", "channel type %q is not supported; this server delivers rest-hook only", t)
	}
	s.endpoint = ch.Endpoint.Get()
	if s.endpoint == "" {
		return nil, invalid("Subscription.channel.endpoint", "a rest-hook channel needs an endpoint")
	}
	if err := CheckEndpoint(s.endpoint, allowHTTP); err != nil {
		return nil, invalid("Subscription.channel.endpoint", "%v", err)
	}
	switch p := ch.Payload.Get(); p {
	case "", payloadFull:
		s.payload = p
	default:
		return nil, operation.Errorf(422, "not-supported", "Subscription.channel.payload", "payload %q is not supported: omit it for notifications without content, or use %s", p, payloadFull)
	}
	for i, h := range ch.Header {
		name, value, err := parseHeader(h.Get())
		if err != nil {
			return nil, invalid(fmt.Sprintf("Subscription.channel.header[%d]", i), "%v", err)
		}
		if s.headers == nil {
			s.headers = http.Header{}
		}
		s.headers.Add(name, value)
	}
	if strings.HasPrefix(res.Criteria.Get(), "http") {
		if err := n.parseTopic(res, s); err != nil {
			return nil, err
		}
	} else {
		typ, where, err := n.parseCriteria(res.Criteria.Get())
		if err != nil {
			return nil, err
		}
		s.typ, s.where = typ, where
	}
	if s.typ == "AuditEvent" {
		// The audit trail is written by the server beside each request,
		// not through the write path whose hook matches subscriptions:
		// such a subscription would never be notified.
		return nil, operation.Errorf(422, "not-supported", "Subscription.criteria", "AuditEvents are recorded by the server's audit trail, whose records are not notified; search them instead")
	}
	if !subscribable(s.typ) {
		return nil, operation.Errorf(422, "not-supported", "Subscription.criteria", "this server does not notify of %s; it notifies of %v", s.typ, n.cfg.Types)
	}
	return s, nil
}

// parseHeader reads a channel header, "Name: value": the name an HTTP
// field name (an RFC 9110 token), the value a field value (no control
// character but tab, so on one line), and neither a field the server sets
// nor one about the connection. Each is checked here rather than left to
// fail every delivery. The value is never quoted back: it may be a secret.
func parseHeader(h string) (name, value string, err error) {
	name, value, ok := strings.Cut(h, ":")
	if !ok {
		return "", "", errors.New(`a header is written "Name: value"`)
	}
	const ows = " \t" // RFC 9110 §5.6.3
	name, value = strings.Trim(name, ows), strings.Trim(value, ows)
	if !httpguts.ValidHeaderFieldName(name) {
		return "", "", fmt.Errorf("header name %q is not an HTTP field name (letters, digits and !#$%%&'*+-.^_`|~, no spaces)", name)
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return "", "", fmt.Errorf("the value of header %s has a line break or another control character", name)
	}
	switch http.CanonicalHeaderKey(name) {
	case "Content-Type":
		return "", "", fmt.Errorf("header %s is set by the server, from channel.payload", name)
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
		return "", "", fmt.Errorf("header %s is set by the server for each request", name)
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade":
		return "", "", fmt.Errorf("header %s is about the connection, which the server manages (RFC 9110 §7.6.1)", name)
	}
	return name, value, nil
}

// parseCriteria parses a criteria such as
// "Appointment?patient=Patient/1&status=booked" with the search parser of
// GET, and keeps what can be decided on one written version alone.
func (n *Notifier) parseCriteria(criteria string) (string, []store.Clause, error) {
	const at = "Subscription.criteria"
	if criteria == "" {
		return "", nil, invalid(at, "criteria are required, such as Appointment?status=booked")
	}
	typ, raw, _ := strings.Cut(criteria, "?")
	if !n.reg.Served(typ) {
		return "", nil, invalid(at, "criteria %q: %q is not a resource type this server searches", criteria, typ)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", nil, invalid(at, "criteria %q: %v", criteria, err)
	}
	for name := range q {
		switch base, _, _ := strings.Cut(name, ":"); base {
		case "_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total",
			"_contained", "_containedType", "_format", "_pretty", "_cursor":
			return "", nil, invalid(at, "criteria %q: %s shapes the results of a search and does not select resources; criteria take search parameters only", criteria, name)
		case "_has":
			return "", nil, notLocal(criteria, name)
		}
	}
	// The parser refuses the parameters it does not support (_text,
	// _content, _list, _filter, _query…), as a strict search does.
	plan, err := n.reg.Parse(typ, q, search.Options{Strict: true, Base: n.cfg.BaseURL})
	if err != nil {
		code := "invalid"
		var serr *search.Error
		if errors.As(err, &serr) && serr.Code == "not-supported" {
			code = serr.Code
		}
		return "", nil, operation.Errorf(422, code, at, "criteria %q: %v", criteria, err)
	}
	for _, c := range plan.Query.Where {
		if !local(c) {
			return "", nil, notLocal(criteria, c.Param)
		}
	}
	return typ, plan.Query.Where, nil
}

// notLocal refuses criteria whose parameter param follows references.
func notLocal(criteria, param string) error {
	return operation.Errorf(422, "not-supported", "Subscription.criteria",
		"criteria %q: chains and _has are not supported in criteria (%s follows references); criteria are decided on the written resource alone", criteria, param)
}

// local reports whether c can be decided from one resource's own search
// values.
func local(c store.Clause) bool {
	if c.Chain != nil || c.Has != nil {
		return false
	}
	for _, a := range c.Any {
		if !local(a) {
			return false
		}
	}
	return true
}

// matches reports whether the version of a resource with index ix
// satisfies s's criteria.
func (s *subscription) matches(id string, v *store.Version, ix *store.Index) bool {
	for i := range s.where {
		if m, ok := store.Match(&s.where[i], id, v.LastUpdated, ix); !ok || !m {
			return false
		}
	}
	return true
}

func invalid(expression, format string, args ...any) *operation.Error {
	return operation.Errorf(422, "invalid", expression, format, args...)
}

// decodeSubscription decodes a stored Subscription.
func decodeSubscription(v *store.Version) (*fhir.Subscription, error) {
	res, err := fhirjson.UnmarshalAs(v.JSON, "Subscription")
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", v.ID, err)
	}
	return res.(*fhir.Subscription), nil
}
