package access

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/store"
)

// HeaderMask stands for the value of every Subscription channel header in
// what the API answers: the values are the credentials the receiver of a
// rest-hook checks, which no reader of the Subscription is to learn. A
// write that gives a header this value keeps the value stored for it, so
// a client that reads a Subscription, changes it and writes it back does
// not replace its keys with the mask.
const HeaderMask = "****"

// Invalid is a write refused for what it holds: 422, naming the element.
type Invalid struct {
	Expression string
	Message    string
}

func (e *Invalid) Error() string { return e.Expression + ": " + e.Message }

// Masked reports whether versions of typ may be given to readers other
// than as stored (see shown): whether an update of one that differs from
// the version read may still hold the content stored (see SameAsStored).
func Masked(typ string) bool { return typ == "Subscription" }

// mayHoldHeaders reports whether the JSON of a version of typ may hold a
// channel header: a cheap test before decoding it.
func mayHoldHeaders(typ string, body []byte) bool {
	return Masked(typ) && bytes.Contains(body, []byte(`"header"`))
}

// shown returns v as a reader is given it: a Subscription's channel
// header values replaced by HeaderMask. v itself, which the engine may
// hold on to, is not changed.
func shown(v *store.Version) (*store.Version, error) {
	if v == nil || v.Deleted || !mayHoldHeaders(v.Type, v.JSON) {
		return v, nil
	}
	body, err := maskHeaders(v.JSON)
	if err != nil {
		return nil, fmt.Errorf("access: mask the headers of %s/%s: %w", v.Type, v.ID, err)
	}
	out := *v
	out.JSON = body
	return &out, nil
}

// shownAll returns vs as a reader is given them (see shown), in a slice
// of its own when any is changed.
func shownAll(vs []*store.Version) ([]*store.Version, error) {
	var out []*store.Version // nil until a version is changed
	for i, v := range vs {
		s, err := shown(v)
		if err != nil {
			return nil, err
		}
		if s != v && out == nil {
			out = slices.Clone(vs)
		}
		if out != nil {
			out[i] = s
		}
	}
	if out == nil {
		return vs, nil
	}
	return out, nil
}

// maskHeaders returns the Subscription body with each channel header's
// value replaced by HeaderMask, its name kept, so that a reader still sees
// which headers are sent.
func maskHeaders(body []byte) ([]byte, error) {
	res, sub, err := decodeSubscription(body)
	if err != nil || sub.Channel == nil {
		return body, err
	}
	for _, h := range sub.Channel.Header {
		if h == nil || h.Value == nil {
			continue
		}
		name, _, ok := strings.Cut(*h.Value, ":")
		masked := HeaderMask
		if ok {
			masked = name + ": " + HeaderMask
		}
		h.Value = &masked
	}
	return fhirjson.Marshal(res)
}

// keepHeaders returns the JSON of w, a Subscription, as it is to be
// stored: a channel header whose value is HeaderMask takes the value of
// the header in the same place among those of its name in the version w
// replaces (the second X-Key that of the second X-Key). A masked header
// with no such header stored is refused: there is no value to keep. So is
// one in a write that changes the endpoint: the value was given for the
// receiver there, and a client that may write the Subscription but was
// never shown the value must not have it sent to a receiver of its own.
func keepHeaders(ctx context.Context, r store.Reader, w *store.Write) ([]byte, error) {
	if !bytes.Contains(w.JSON, []byte(HeaderMask)) {
		return w.JSON, nil
	}
	res, sub, err := decodeSubscription(w.JSON)
	if err != nil || sub.Channel == nil {
		return w.JSON, err
	}
	var stored *storedChannel
	seen := map[string]int{} // the headers of each name before this one
	changed := false
	for i, h := range sub.Channel.Header {
		name, value, ok := cutHeader(h)
		if !ok {
			continue
		}
		place := seen[name]
		seen[name]++
		if value != HeaderMask {
			continue
		}
		if stored == nil {
			if stored, err = readChannel(ctx, r, w); err != nil {
				return nil, err
			}
		}
		at := fmt.Sprintf("Subscription.channel.header[%d]", i)
		if place >= len(stored.headers[name]) {
			return nil, &Invalid{Expression: at,
				Message: fmt.Sprintf("the value of header %s is %s, which keeps the value stored for it, but %s/%s holds no such header to keep: give its value",
					name, HeaderMask, w.Type, w.ID)}
		}
		if sub.Channel.Endpoint.Get() != stored.endpoint {
			return nil, &Invalid{Expression: at,
				Message: fmt.Sprintf("the value of header %s is %s, which keeps the value stored for it, but a value is kept only for the endpoint it was given for: "+
					"with a new channel.endpoint, give its value again", name, HeaderMask)}
		}
		h.Value = &stored.headers[name][place]
		changed = true
	}
	if !changed {
		return w.JSON, nil
	}
	return fhirjson.Marshal(res)
}

// SameAsStored reports whether body, the canonical JSON of an update of
// cur stamped with cur's id, versionId and lastUpdated, is the content
// stored as cur, which is still the current version: whether the update
// changes nothing. cur is the version as this store gave it, its header
// values masked, so a client giving the values in full, or HeaderMask for
// them (see keepHeaders), writes the stored content again. The version
// stored is read as a read before the write is decided, and nothing of it
// is returned. Whether a write is unchanged tells a client that may
// update the Subscription whether the values it gave are those stored: an
// oracle of whole values only, which a key too long to guess defeats.
func (s *Store) SameAsStored(ctx context.Context, cur *store.Version, body []byte) (bool, error) {
	return s.sameAsStored(ctx, s.next, cur, body)
}

func (s *Store) sameAsStored(ctx context.Context, r store.Reader, cur *store.Version, body []byte) (bool, error) {
	stored, err := s.readStored(ctx, r, cur.Type, cur.ID)
	if err != nil {
		return false, err
	}
	if stored.Deleted || stored.VersionID != cur.VersionID {
		return false, nil
	}
	kept, err := keepHeaders(ctx, r, &store.Write{Type: cur.Type, ID: cur.ID, Expected: cur.VersionID, JSON: body})
	var invalid *Invalid
	if errors.As(err, &invalid) {
		return false, nil // the write is refused for it
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(kept, stored.JSON), nil
}

// storedChannel is what keepHeaders needs of the version a write replaces.
type storedChannel struct {
	endpoint string
	headers  map[string][]string // whole headers, by canonical name
}

// readChannel returns the channel of the version w replaces; no headers
// when w creates the resource or replaces a deletion.
func readChannel(ctx context.Context, r store.Reader, w *store.Write) (*storedChannel, error) {
	ch := &storedChannel{headers: map[string][]string{}}
	if w.Expected == 0 {
		return ch, nil
	}
	v, err := r.VRead(ctx, w.Type, w.ID, w.Expected)
	if err != nil {
		return nil, fmt.Errorf("access: the channel of %s/%s: %w", w.Type, w.ID, err)
	}
	if v.Deleted {
		return ch, nil
	}
	_, sub, err := decodeSubscription(v.JSON)
	if err != nil || sub.Channel == nil {
		return ch, err
	}
	ch.endpoint = sub.Channel.Endpoint.Get()
	for _, h := range sub.Channel.Header {
		if name, _, ok := cutHeader(h); ok {
			ch.headers[name] = append(ch.headers[name], h.Get())
		}
	}
	return ch, nil
}

// cutHeader returns the canonical name and the trimmed value of a channel
// header, "Name: value".
func cutHeader(h *fhir.String) (name, value string, ok bool) {
	if h == nil || h.Value == nil {
		return "", "", false
	}
	name, value, ok = strings.Cut(*h.Value, ":")
	return http.CanonicalHeaderKey(strings.Trim(name, " \t")), strings.Trim(value, " \t"), ok
}

func decodeSubscription(body []byte) (fhir.Resource, *fhir.Subscription, error) {
	res, err := fhirjson.UnmarshalStored(body)
	if err != nil {
		return nil, nil, err
	}
	sub, ok := res.(*fhir.Subscription)
	if !ok {
		return nil, nil, fmt.Errorf("a %s, not a Subscription", res.ResourceType())
	}
	return res, sub, nil
}
