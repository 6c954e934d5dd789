package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"carefhir/server/access"
	"carefhir/store"
)

// The engine-level record types of subscriptions. They are not FHIR
// resources: the API does not serve them, writes of them run no hooks and
// are not audited, and nothing but this package reads them.
const (
	// outboxType holds one row per notification to deliver, written in
	// the unit of work of the write that caused it.
	outboxType = "NotifyOutbox"
	// ownerType holds, per Subscription id, the principal whose access
	// decides what its notifications may carry.
	ownerType = "NotifyOwner"
	// claimType holds the claims of processes on the rows they deliver.
	claimType = "NotifyClaim"
	// gateType holds one record per owner of Subscriptions, which each
	// write making one of its Subscriptions live rewrites (passGate).
	gateType = "NotifyOwnerGate"
)

// The kinds of outbox rows.
const (
	kindHandshake = "handshake"
	kindEvent     = "event"
)

// row is one outbox row.
type row struct {
	Subscription string `json:"subscription"`
	Kind         string `json:"kind"`
	// Focus is what the event is about, Type/id, at Version; Deleted
	// when the event is its delete.
	Type    string `json:"type,omitempty"`
	ID      string `json:"id,omitempty"`
	Version int64  `json:"version,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	// Method is the HTTP method of the interaction that wrote Version
	// (store.Version.Method): "" when not recorded.
	Method string `json:"method,omitempty"`
	// Creates marks a Version that created the resource, the first or
	// one written after a delete (operation.Change.Created); not
	// recorded in rows written before it was.
	Creates bool `json:"creates,omitempty"`
	// Topic is the SubscriptionTopic of an event of a topic-based
	// subscription.
	Topic string `json:"topic,omitempty"`
	// SubscriptionVersion is the version of the Subscription a handshake
	// is for, or an event was matched by (0 in rows written before it was
	// recorded).
	SubscriptionVersion int64     `json:"subscriptionVersion,omitempty"`
	Created             time.Time `json:"created"`
	Attempts            int       `json:"attempts,omitempty"`
	// NextAttempt, FirstFailure and LastFailure are by the clock of
	// FailedBy, the process that recorded the last failed attempt; no
	// other process compares them with its own clock (Notifier.due).
	NextAttempt  time.Time `json:"nextAttempt,omitzero"`
	FirstFailure time.Time `json:"firstFailure,omitzero"`
	LastFailure  time.Time `json:"lastFailure,omitzero"`
	FailedBy     string    `json:"failedBy,omitempty"`
	// FailingFor is how long the row has failed, from its first failed
	// attempt to its last, each process adding what it measured on its
	// own clock (Notifier.fail).
	FailingFor time.Duration `json:"failingFor,omitempty"`
	LastError  string        `json:"lastError,omitempty"`
}

// pendingIndex is the index of a row still to deliver: found by a search
// for state=pending, grouped by subscription.
func pendingIndex(sub string) store.Index {
	return store.Index{Tokens: []store.Token{
		{Param: "state", Code: "pending"},
		{Param: "subscription", Code: sub},
	}}
}

// rowWrite returns the write of r as id's next version after expected.
func rowWrite(id string, expected int64, r *row, now time.Time) (*store.Write, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("outbox row %s: %w", id, err)
	}
	return &store.Write{Type: outboxType, ID: id, Expected: expected, LastUpdated: now.UTC().Truncate(time.Millisecond),
		JSON: body, Index: pendingIndex(r.Subscription)}, nil
}

// doneWrite removes a delivered or dropped row.
func doneWrite(v *store.Version, now time.Time) *store.Write {
	return &store.Write{Type: outboxType, ID: v.ID, Expected: v.VersionID, LastUpdated: now.UTC().Truncate(time.Millisecond), Deleted: true}
}

// pendingQuery selects the rows still to deliver, oldest first (row ids
// grow with time), at most limit of them.
func pendingQuery(limit int) store.Query {
	return store.Query{Type: outboxType, Count: limit, Where: []store.Clause{
		{Param: "state", Tokens: []store.TokenMatch{{AnySystem: true, Code: "pending"}}},
	}}
}

// pendingOf selects the rows of subscription sub still to deliver, oldest
// first, at most limit of them (0: all).
func pendingOf(sub string, limit int) store.Query {
	q := pendingQuery(limit)
	q.Where = append(q.Where, store.Clause{Param: "subscription", Tokens: []store.TokenMatch{{AnySystem: true, Code: sub}}})
	return q
}

// owner is the principal recorded with a subscription: the claims of the
// token that last wrote it.
type owner struct {
	Subject      string `json:"sub,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	FHIRUser     string `json:"fhirUser,omitempty"`
	Patient      string `json:"patient,omitempty"`
	Organization string `json:"organization,omitempty"`
	Issuer       string `json:"iss,omitempty"`
	Scope        string `json:"scope,omitempty"`
	Open         bool   `json:"open,omitempty"`
	// Expires is when the token expires; zero in records written before
	// it was recorded.
	Expires time.Time `json:"exp,omitzero"`
	// Since is the version of the Subscription that created it, the
	// first or one written after a delete: events matched by an earlier
	// version were the deleted Subscription's. Zero in records written
	// before it was recorded.
	Since int64 `json:"since,omitempty"`
	// Party names the owner's party (partyKey), and Live says whether the
	// Subscription is live (requested or active): both are indexed, so
	// that an owner's live Subscriptions are counted without reading
	// anyone else's (ownerHasRoom). Party is empty in records written
	// before they were recorded, until a purge pass indexes them
	// (indexOwner).
	Party string `json:"party,omitempty"`
	Live  bool   `json:"live,omitempty"`
}

// partyKey names the party of o, the same subject of the same client:
// its gate's id, and a token of the index of its owner records.
func partyKey(o owner) string {
	key := sha256.Sum256([]byte(strconv.Quote(o.Issuer) + strconv.Quote(o.ClientID) + strconv.Quote(o.Subject) + strconv.FormatBool(o.Open)))
	return hex.EncodeToString(key[:16])
}

// putOwner writes o as subscription id's owner, after version expected,
// with live, and indexed by its party and liveness.
func putOwner(ctx context.Context, tx store.Tx, id string, expected int64, o owner, live bool, now time.Time) error {
	o.Party, o.Live = partyKey(o), live
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	ix := store.Index{Tokens: []store.Token{{Param: "party", Code: o.Party}, {Param: "live", Code: strconv.FormatBool(live)}}}
	return tx.Put(ctx, &store.Write{Type: ownerType, ID: id, Expected: expected, LastUpdated: now.UTC().Truncate(time.Millisecond), JSON: body, Index: ix})
}

// liveOwnersQuery selects the owner records of party's live
// Subscriptions, at most limit of them.
func liveOwnersQuery(party string, limit int) store.Query {
	return store.Query{Type: ownerType, Count: limit, Where: []store.Clause{
		{Param: "party", Tokens: []store.TokenMatch{{AnySystem: true, Code: party}}},
		{Param: "live", Tokens: []store.TokenMatch{{AnySystem: true, Code: "true"}}},
	}}
}

// markLive records in the owner record of subscription id, if it has
// one, whether the Subscription is live, as a write of it by the server
// (set active, or to error) or a delete leaves it.
func markLive(ctx context.Context, tx store.Tx, id string, live bool, now time.Time) error {
	o, version, err := ownerRecord(ctx, tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return setLive(ctx, tx, id, o, version, live, now)
}

// setLive writes o, the owner record of subscription id at version, with
// live, unless it is indexed so already.
func setLive(ctx context.Context, tx store.Tx, id string, o owner, version int64, live bool, now time.Time) error {
	if o.Party != "" && o.Live == live {
		return nil
	}
	return putOwner(ctx, tx, id, version, o, live, now)
}

func ownerOf(p *access.Principal) owner {
	return owner{Subject: p.Subject, ClientID: p.ClientID, FHIRUser: p.FHIRUser, Patient: p.Patient,
		Organization: p.Organization, Issuer: p.Issuer, Scope: p.ScopeString(), Open: p.Open, Expires: p.Expires}
}

// sameParty reports whether o and other are one party: the same subject
// of the same client, by the same issuer, or both the open principal.
func (o owner) sameParty(other owner) bool {
	return o.Open == other.Open && o.Issuer == other.Issuer && o.ClientID == other.ClientID && o.Subject == other.Subject
}

// principal returns the owner as the access layer decides for it.
func (o owner) principal() (*access.Principal, error) {
	scopes, _, err := access.ParseScopes(o.Scope)
	if err != nil {
		return nil, fmt.Errorf("owner scopes: %w", err)
	}
	return &access.Principal{Subject: o.Subject, ClientID: o.ClientID, FHIRUser: o.FHIRUser, Patient: o.Patient,
		Organization: o.Organization, Issuer: o.Issuer, Scopes: scopes, Open: o.Open, Expires: o.Expires}, nil
}

// recordOwner records o, who writes subscription id, as its owner when it
// creates the subscription, or is the party that owns it (a new token of
// the same issuer, client and subject: its current claims and expiry). A
// write by another party (an administrator's system token setting an
// app's subscription back to requested, say) leaves the owner as it was:
// taking its place would widen what the subscription delivers to what
// that party may read. version is that of the Subscription written, live
// whether it is live as written.
func recordOwner(ctx context.Context, tx store.Tx, id string, o owner, created bool, version int64, live bool, now time.Time) error {
	var expected int64
	switch cur, err := tx.Read(ctx, ownerType, id); {
	case err == nil:
		expected = cur.VersionID
		var was owner
		if !created && !cur.Deleted && json.Unmarshal(cur.JSON, &was) == nil {
			if !was.sameParty(o) {
				return setLive(ctx, tx, id, was, cur.VersionID, live, now)
			}
			o.Since = was.Since
		}
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("owner of subscription %s: %w", id, err)
	}
	if created {
		o.Since = version
	}
	return putOwner(ctx, tx, id, expected, o, live, now)
}

// readOwner returns the owner recorded for subscription id.
func readOwner(ctx context.Context, r store.Reader, id string) (owner, error) {
	o, _, err := ownerRecord(ctx, r, id)
	return o, err
}

// ownerRecord returns the owner recorded for subscription id, and the
// version of its record; store.ErrNotFound when there is none.
func ownerRecord(ctx context.Context, r store.Reader, id string) (owner, int64, error) {
	v, err := r.Read(ctx, ownerType, id)
	if err != nil {
		return owner{}, 0, fmt.Errorf("owner of subscription %s: %w", id, err)
	}
	if v.Deleted {
		return owner{}, 0, fmt.Errorf("owner of subscription %s: %w", id, store.ErrNotFound)
	}
	var o owner
	if err := json.Unmarshal(v.JSON, &o); err != nil {
		return owner{}, 0, fmt.Errorf("owner of subscription %s: %w", id, err)
	}
	return o, v.VersionID, nil
}
