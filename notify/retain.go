package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"carefhir/store"
)

// purgeSubscriptions bounds the subscriptions whose events one purge pass
// looks at.
const purgeSubscriptions = 100

// purgeEvery is how often Run purges, while a pass leaves nothing behind.
const purgeEvery = time.Minute

// Purge makes one bounded pass over the subscriptions' records, removing
// those nothing needs any more: outbox rows delivered or dropped and
// claims released, once they are older than the Lease; claims never
// released, once the row version they claim is no longer current; the events of a subscription that
// $events no longer serves (those older than KeepEvents beyond its latest
// KeepLastEvents, and those of the Subscriptions that held its id before);
// and everything recorded for a deleted Subscription. Each pass removes
// at most PurgeBatch records of each kind and looks at most at
// purgeSubscriptions subscriptions, taking up the next ones at the next
// pass; more reports that it stopped at a bound with more to remove. Run
// makes a pass every minute, or at its next poll when the last pass had
// more to remove, so that the purge keeps up with a busy outbox.
// Processes sharing a database may purge at once: removing what is gone
// already does nothing.
func (n *Notifier) Purge(ctx context.Context) (more bool, err error) {
	recs, err := n.records()
	if err != nil {
		return false, err
	}
	p, ok := recs.(store.Purger)
	if !ok {
		return false, fmt.Errorf("notify: the engine (%T) cannot purge records", recs)
	}
	now := n.cfg.Now()
	for _, typ := range []string{outboxType, claimType} {
		removed, err := p.PurgeDeleted(ctx, typ, now.Add(-n.cfg.Lease), n.cfg.PurgeBatch)
		if err != nil {
			return false, fmt.Errorf("notify: purge: %w", err)
		}
		more = more || removed >= n.cfg.PurgeBatch
	}
	if err := n.purgeStaleClaims(ctx, recs, p); err != nil {
		return false, err
	}
	if err := n.purgeGates(ctx, recs, p, now); err != nil {
		return false, err
	}
	n.forgetSeenClaims(now)
	eventsLeft, err := n.purgeEvents(ctx, recs, p, now)
	return more || eventsLeft, err
}

// purgeStaleClaims removes the claims of processes that died before
// releasing them, once the row version each claims is no longer current:
// another process delivered it, or recorded a failed attempt. How old a
// claim is does not tell, as the clock of the process that made it may be
// hours from this one's.
func (n *Notifier) purgeStaleClaims(ctx context.Context, recs store.Tx, p store.Purger) error {
	claims, err := recs.Search(ctx, store.Query{Type: claimType, Count: n.cfg.PurgeBatch})
	if err != nil {
		return fmt.Errorf("notify: purge claims: %w", err)
	}
	var stale []string
	for _, c := range claims {
		current, err := claimsCurrent(ctx, recs, c.ID)
		if err != nil {
			return fmt.Errorf("notify: purge claims: %w", err)
		}
		if !current {
			stale = append(stale, c.ID)
		}
	}
	if err := p.Purge(ctx, claimType, stale); err != nil {
		return fmt.Errorf("notify: purge claims: %w", err)
	}
	return nil
}

// purgeGates removes the owners' gates (at most PurgeBatch) that this
// process has seen unchanged for a Lease, by its own clock: each write
// making a Subscription live adds a version to its owner's gate, which
// would otherwise be kept for good. A gate removed is created again by
// the next such write (passGate reads it as never written), and holds
// nothing but its version. One seen changed within the lease may be in a
// unit of work still (which takes less than a lease), whose conditional
// write would fail were its gate removed under it.
func (n *Notifier) purgeGates(ctx context.Context, recs store.Tx, p store.Purger, now time.Time) error {
	gates, err := recs.Search(ctx, store.Query{Type: gateType, Count: n.cfg.PurgeBatch})
	if err != nil {
		return fmt.Errorf("notify: purge owners' gates: %w", err)
	}
	var idle []string
	for _, g := range gates {
		if n.seenGates.Expired(g.ID, g.VersionID, now, n.cfg.Lease) {
			idle = append(idle, g.ID)
		}
	}
	// A gate first seen two leases ago and not since was removed, or
	// changed and is seen anew.
	n.seenGates.Forget(func(_ string, first time.Time) bool { return now.Sub(first) > 2*n.cfg.Lease })
	if err := p.Purge(ctx, gateType, idle); err != nil {
		return fmt.Errorf("notify: purge owners' gates: %w", err)
	}
	return nil
}

// purgeEvents goes through the next subscriptions, by their owner
// records (every subscription with events has one), from where the last
// pass stopped: it trims the events of each, and removes all that is
// recorded for those deleted. It reports whether it stopped with events
// left to remove.
func (n *Notifier) purgeEvents(ctx context.Context, recs store.Tx, p store.Purger, now time.Time) (bool, error) {
	f, ok := recs.(store.Finder)
	if !ok {
		return false, fmt.Errorf("notify: the engine (%T) cannot page through records", recs)
	}
	n.purgeMu.Lock()
	defer n.purgeMu.Unlock()
	q := store.Query{Type: ownerType, Count: purgeSubscriptions, Cursor: n.purgeCursor, IDsOnly: true}
	page, err := f.Find(ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		q.Cursor = ""
		page, err = f.Find(ctx, q)
	}
	if err != nil {
		return false, fmt.Errorf("notify: purge: owners: %w", err)
	}
	budget := n.cfg.PurgeBatch
	for _, o := range page.Matches {
		if budget <= 0 {
			return true, nil // more to remove: the same page again next time
		}
		if err := indexOwner(ctx, recs, o.ID, now); err != nil {
			return false, err
		}
		removed, err := n.purgeSubscription(ctx, recs, p, o.ID, budget, now)
		if err != nil {
			return false, err
		}
		budget -= removed
	}
	n.purgeCursor = page.Next
	return false, nil
}

// purgeSubscription removes up to budget events of subscription sub that
// are no longer served, and when the Subscription is deleted, its events,
// then its counter and owner. It returns how many events it removed.
func (n *Notifier) purgeSubscription(ctx context.Context, recs store.Tx, p store.Purger, sub string, budget int, now time.Time) (int, error) {
	deleted, err := subscriptionDeleted(ctx, recs, sub)
	if err != nil {
		return 0, err
	}
	c, err := readCounter(ctx, recs, sub)
	if err != nil {
		return 0, fmt.Errorf("notify: purge %s: %w", sub, err)
	}
	// Events are numbered Start+1… for the current Subscription; those
	// numbered up to Start were the deleted ones'. Of the current ones,
	// the latest KeepLastEvents are kept, and those younger than KeepEvents.
	// Those numbered after the count read here were recorded since: a
	// Subscription created again under the id meanwhile.
	keepFrom, keepAfter := c.Count-int64(n.cfg.KeepLastEvents)+1, now.Add(-n.cfg.KeepEvents)
	if deleted {
		keepFrom, keepAfter = c.Count+1, now
	}
	vs, err := recs.Search(ctx, store.Query{Type: eventType, Count: budget, Where: []store.Clause{
		{Param: "subscription", Tokens: []store.TokenMatch{{AnySystem: true, Code: sub}}},
	}})
	if err != nil {
		return 0, fmt.Errorf("notify: purge %s: events: %w", sub, err)
	}
	var gone []string
	for _, v := range vs { // oldest first: ids end in the event number
		num, err := strconv.ParseInt(v.ID[strings.LastIndexByte(v.ID, '-')+1:], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("notify: purge %s: event %s: %w", sub, v.ID, err)
		}
		if num > c.Start && (num >= keepFrom || v.LastUpdated.After(keepAfter)) {
			break
		}
		gone = append(gone, v.ID)
	}
	if err := p.Purge(ctx, eventType, gone); err != nil {
		return 0, fmt.Errorf("notify: purge %s: events: %w", sub, err)
	}
	if c.version > 1 && c.version != n.counterPurged[sub] {
		// The counter is written again at every event: one version of it
		// is what counts.
		if err := p.PurgeEarlier(ctx, counterType, sub); err != nil {
			return 0, fmt.Errorf("notify: purge %s: %w", sub, err)
		}
		if n.counterPurged == nil {
			n.counterPurged = map[string]int64{}
		}
		n.counterPurged[sub] = c.version
	}
	if !deleted || len(gone) < len(vs) || len(vs) == budget {
		return len(gone), nil
	}
	// Every event is gone: the counter, then the owner, unless the
	// Subscription was created again meanwhile.
	if deleted, err = subscriptionDeleted(ctx, recs, sub); err != nil || !deleted {
		return len(gone), err
	}
	for _, typ := range []string{counterType, ownerType} {
		if err := p.Purge(ctx, typ, []string{sub}); err != nil {
			return len(gone), fmt.Errorf("notify: purge %s: %w", sub, err)
		}
	}
	delete(n.counterPurged, sub)
	return len(gone), nil
}

// indexOwner indexes the owner record of subscription sub if it was
// written before owner records were (it names no party): by its party
// and whether the Subscription is live, so that its owner's limit counts
// it (ownerHasRoom). A write of the Subscription meanwhile indexes it
// itself, and this write, conditional on the version read, then fails.
func indexOwner(ctx context.Context, recs store.Tx, sub string, now time.Time) error {
	o, version, err := ownerRecord(ctx, recs, sub)
	if err != nil || o.Party != "" {
		// None, indexed, unreadable (refused at delivery), or not read
		// now: the next pass reads it again.
		return nil
	}
	live := false
	switch sv, err := recs.Read(ctx, "Subscription", sub); {
	case err == nil && !sv.Deleted:
		res, err := decodeSubscription(sv)
		live = err == nil && liveStatus(res.Status.Get())
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("notify: index owner of %s: %w", sub, err)
	}
	err = putOwner(ctx, recs, sub, version, o, live, now)
	var conflict *store.ConflictError
	if err != nil && !errors.As(err, &conflict) {
		return fmt.Errorf("notify: index owner of %s: %w", sub, err)
	}
	return nil
}

// subscriptionDeleted reports whether Subscription id is deleted, or was
// never stored.
func subscriptionDeleted(ctx context.Context, r store.Reader, id string) (bool, error) {
	v, err := r.Read(ctx, "Subscription", id)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("notify: purge: subscription %s: %w", id, err)
	}
	return v.Deleted, nil
}

// claimsCurrent reports whether the claim id (row id, version, claim
// number) claims the current version of a row still to deliver.
func claimsCurrent(ctx context.Context, r store.Reader, id string) (bool, error) {
	rest, _, ok := cutLast(id)
	row, version, ok2 := cutLast(rest)
	v, err := strconv.ParseInt(version, 10, 64)
	if !ok || !ok2 || err != nil {
		return false, nil // not a claim this package made
	}
	cur, err := r.Read(ctx, outboxType, row)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("row of claim %s: %w", id, err)
	}
	return !cur.Deleted && cur.VersionID == v, nil
}

// cutLast cuts s around its last '-'.
func cutLast(s string) (before, after string, found bool) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}
