package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"carefhir/fhir"
	"carefhir/server/access"
	"carefhir/store"
)

// rescan is how soon after a wake the outbox is scanned again.
const rescan = 20 * time.Millisecond

// purging names the purge among the workers of Run, by a name no
// Subscription id can take (ids have no spaces).
const purging = " purge"

// Run delivers the outbox until ctx is done, scanning it when a write of
// this process adds to it and every Poll; deliveries of one subscription
// are made one at a time, in order, and several subscriptions are served
// at once.
func (n *Notifier) Run(ctx context.Context) {
	tick := time.NewTicker(n.cfg.Poll)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := map[string]bool{}
	var mu sync.Mutex
	// start runs work for subscription sub unless some already runs: a
	// slow endpoint keeps one worker waiting, never the loop.
	start := func(sub string, work func()) {
		mu.Lock()
		if busy[sub] {
			mu.Unlock()
			return
		}
		busy[sub] = true
		mu.Unlock()
		wg.Go(func() {
			work()
			mu.Lock()
			delete(busy, sub)
			mu.Unlock()
			select { // rows may have arrived meanwhile
			case n.wake <- struct{}{}:
			default:
			}
		})
	}
	// A write wakes the deliverer from its hook, before the write commits:
	// a scan shortly after catches the rows a scan at once may miss.
	again := time.NewTimer(time.Hour)
	again.Stop()
	var purged time.Time
	var behind atomic.Bool // the last purge pass left more to remove
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
			again.Reset(rescan)
		case <-again.C:
		case now := <-tick.C:
			n.invalidate() // subscriptions written by other processes
			if subs, err := n.polled(ctx); err == nil {
				for sub, beat := range n.dueHeartbeats(ctx, subs) {
					start(sub, func() { beat(ctx) })
				}
				n.settleEnded(ctx, subs)
			}
			n.settleRefused(ctx)
			if now.Sub(purged) >= purgeEvery || behind.Load() {
				purged = now
				start(purging, func() {
					more, err := n.Purge(ctx)
					if err != nil && ctx.Err() == nil {
						n.cfg.Logger.Error("notify: purge", "err", err)
					}
					behind.Store(more)
				})
			}
		}
		groups, err := n.scan(ctx)
		if err != nil {
			if ctx.Err() == nil {
				n.cfg.Logger.Error("notify: scan outbox", "err", err)
			}
			continue
		}
		for sub, rows := range groups {
			start(sub, func() { n.deliverRows(ctx, rows) })
		}
	}
}

// DeliverPending delivers what is due now, one scan, and returns when it
// is done: for tests and for a command that drains the outbox.
func (n *Notifier) DeliverPending(ctx context.Context) error {
	n.invalidate()
	groups, err := n.scan(ctx)
	if err != nil {
		return err
	}
	for _, rows := range groups {
		n.deliverRows(ctx, rows)
	}
	subs, err := n.polled(ctx)
	if err != nil {
		return err
	}
	for _, beat := range n.dueHeartbeats(ctx, subs) {
		beat(ctx)
	}
	n.settleEnded(ctx, subs)
	n.settleRefused(ctx)
	return nil
}

// scan returns the pending rows by subscription, oldest first. When the
// oldest rows fill a batch, they may all be of subscriptions held back by a
// failing row (or just of a busy one): each live subscription with none of
// them is then scanned on its own, so that no subscription's backlog
// delays another's deliveries.
func (n *Notifier) scan(ctx context.Context) (map[string][]*store.Version, error) {
	r, err := n.records()
	if err != nil {
		return nil, err
	}
	groups := map[string][]*store.Version{}
	full, err := scanInto(ctx, r, pendingQuery(n.cfg.Batch), groups)
	if err != nil || !full {
		return groups, err
	}
	subs, err := n.current(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		if _, ok := groups[sub.id]; ok {
			continue
		}
		if _, err := scanInto(ctx, r, pendingOf(sub.id, n.cfg.Batch), groups); err != nil {
			return nil, err
		}
	}
	return groups, nil
}

// scanInto adds the rows q finds to groups, by subscription, and reports
// whether q found as many as it may.
func scanInto(ctx context.Context, r store.Reader, q store.Query, groups map[string][]*store.Version) (bool, error) {
	vs, err := r.Search(ctx, q)
	if err != nil {
		return false, err
	}
	for _, v := range vs {
		var rw row
		if err := json.Unmarshal(v.JSON, &rw); err != nil {
			return false, fmt.Errorf("outbox row %s: %w", v.ID, err)
		}
		groups[rw.Subscription] = append(groups[rw.Subscription], v)
	}
	return q.Count > 0 && len(vs) >= q.Count, nil
}

// deliverRows delivers one subscription's rows in order, stopping at the
// first that is not due, is claimed by another process or fails.
func (n *Notifier) deliverRows(ctx context.Context, rows []*store.Version) {
	recs, err := n.records()
	if err != nil || len(rows) == 0 {
		return
	}
	var first row
	if err := json.Unmarshal(rows[0].JSON, &first); err == nil && n.refuses(ctx, recs, first.Subscription) {
		return // left to a process that accepts it (settleRefused)
	}
	for _, v := range rows {
		if ctx.Err() != nil {
			return
		}
		var rw row
		if err := json.Unmarshal(v.JSON, &rw); err != nil {
			n.cfg.Logger.Error("notify: outbox row unreadable", "id", v.ID, "err", err)
			return
		}
		now := n.cfg.Now()
		if !n.due(v, &rw, now) {
			return
		}
		claim, ok := n.claim(ctx, recs, v, now)
		if !ok {
			return // another process delivers it, or the engine failed: later
		}
		if !n.stillPending(ctx, recs, v) {
			n.release(ctx, recs, claim, now)
			return // delivered meanwhile: the scan that read v is stale
		}
		outcome, err := n.deliver(ctx, &rw)
		if !n.settle(ctx, recs, v, &rw, claim, outcome, err) {
			return
		}
	}
}

// settleTimeout bounds the writes that record an attempt's end once the
// process is stopping.
const settleTimeout = 5 * time.Second

// settle records what became of the attempt to deliver version v of row
// rw under claim (deliver's outcome and error), and reports whether the
// next row may follow. Its writes are made even once ctx is done, as the
// process stops: a delivery the receiver took is recorded rather than
// made again, and the claim is released rather than left to hold the row
// back from the next process for a lease. An attempt cut short by the stop
// is no failure of the receiver: the row is left as it was, for the next
// process to deliver at once.
func (n *Notifier) settle(ctx context.Context, recs store.Tx, v *store.Version, rw *row, claim *store.Version, o outcome, err error) bool {
	stopping := ctx.Err() != nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	now := n.cfg.Now()
	switch {
	case err == nil:
		if o == delivered {
			n.delivered.Add(1)
		} else {
			n.withheld.Add(1)
		}
		if err := recs.Put(ctx, doneWrite(v, now)); err != nil {
			n.cfg.Logger.Error("notify: outbox row done", "id", v.ID, "err", err)
			return false
		}
		n.release(ctx, recs, claim, now)
		return !stopping
	case stopping:
		// Written again unchanged, the row takes a new version, whose
		// claims are free: the claim of this one stays taken once
		// released, so that a row it claimed is never delivered twice.
		w, err := rowWrite(v.ID, v.VersionID, rw, now)
		if err == nil {
			err = recs.Put(ctx, w)
		}
		if err != nil {
			// The claim is left held: the next process takes it over
			// after a lease, as that of a process that died.
			n.cfg.Logger.Error("notify: leave row to the next process", "id", v.ID, "err", err)
			return false
		}
		n.release(ctx, recs, claim, now)
		return false
	default:
		n.failures.Add(1)
		n.fail(ctx, recs, v, rw, err, now)
		n.release(ctx, recs, claim, now)
		return false
	}
}

// claim makes this process the one that delivers version v of a row. A
// claim is a record created with an id naming the row and its version:
// creating a record is atomic on every engine and across processes (an
// insert of a taken id fails), and needs no version read first. A claim this process has seen held for the Lease, by its own
// clock, is taken for that of a process that died, and the next claim id
// in turn is tried. The time a claim was made is not compared with this
// process's clock: the clocks of processes sharing a database may be
// minutes apart, which would take a live claim for a dead one.
func (n *Notifier) claim(ctx context.Context, recs store.Tx, v *store.Version, now time.Time) (*store.Version, bool) {
	body := []byte(`{"holder":` + strconv.Quote(n.cfg.Holder) + `}`)
	at := now.UTC().Truncate(time.Millisecond)
	for k := range maxClaims {
		id := v.ID + "-" + strconv.FormatInt(v.VersionID, 10) + "-" + strconv.Itoa(k) // read back by claimsCurrent
		err := recs.Put(ctx, &store.Write{Type: claimType, ID: id, LastUpdated: at, JSON: body})
		if err == nil {
			return &store.Version{Type: claimType, ID: id, VersionID: 1}, true
		}
		var conflict *store.ConflictError
		if !errors.As(err, &conflict) {
			n.cfg.Logger.Error("notify: claim row", "id", v.ID, "err", err)
			return nil, false
		}
		held, err := recs.Read(ctx, claimType, id)
		if err != nil || held.Deleted || !n.heldForLease(id, now) {
			return nil, false // released (the row moved on) or still held
		}
	}
	return nil, false
}

// heldForLease reports whether this process has seen the claim id held
// for the Lease, by its own clock (lease.Watch). A process that starts
// while a dead one's claim is held waits a lease before taking it over,
// as the others do.
func (n *Notifier) heldForLease(id string, now time.Time) bool {
	return n.seenHeld.Expired(id, struct{}{}, now, n.cfg.Lease)
}

// forgetSeenClaims forgets the claims first seen held more than two leases
// ago, and the failed rows first seen more than two longest backoffs ago:
// the row of each moved on meanwhile, or it is looked at anew, which only
// delays taking it over or retrying it.
func (n *Notifier) forgetSeenClaims(now time.Time) {
	n.seenHeld.Forget(func(_ string, first time.Time) bool { return now.Sub(first) > 2*n.cfg.Lease })
	n.seenFailed.Forget(func(_ string, first time.Time) bool { return now.Sub(first) > 2*n.cfg.MaxBackoff })
}

// due reports whether version v of a row, rw, may be attempted now: at
// once if no attempt failed; else, when this process recorded the failure,
// once its own clock reaches the next attempt; when another did, once this
// process has seen v unretried for the backoff, by its own clock
// (lease.Watch). The next attempt another process wrote is by its clock,
// which may be hours apart from this one's: compared, a process ahead
// would retry at once and one behind would wait hours more.
func (n *Notifier) due(v *store.Version, rw *row, now time.Time) bool {
	switch {
	case rw.Attempts == 0:
		return true
	case rw.FailedBy == n.cfg.Holder || rw.FailedBy == "": // "": recorded before FailedBy was
		return !now.Before(rw.NextAttempt)
	}
	return n.seenFailed.Expired(v.ID, v.VersionID, now, n.backoff(rw.Attempts))
}

// failedSince returns how long row rw has failed since its last failed
// attempt, as this process can tell: by its own clock if it recorded that
// failure, else the backoff it saw the row unretried for (due).
func (n *Notifier) failedSince(rw *row, now time.Time) time.Duration {
	switch {
	case rw.Attempts == 0:
		return 0
	case rw.FailedBy == n.cfg.Holder:
		return now.Sub(rw.LastFailure)
	case rw.FailedBy == "": // recorded before FailingFor was
		return now.Sub(rw.FirstFailure)
	}
	return n.backoff(rw.Attempts)
}

// stillPending reports whether version v of a row, which this process has
// just claimed, is still the row's current version: a claim alone does not
// tell, once the row and its claims are purged (the claim id is free
// again), which a scan that read v long before may meet.
func (n *Notifier) stillPending(ctx context.Context, recs store.Tx, v *store.Version) bool {
	cur, err := recs.Read(ctx, outboxType, v.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		n.cfg.Logger.Error("notify: read claimed row", "id", v.ID, "err", err)
	}
	return err == nil && !cur.Deleted && cur.VersionID == v.VersionID
}

// maxClaims bounds the claims of one row version: as many processes dying
// while delivering it.
const maxClaims = 16

// release ends a claim once its row is written: kept as a tombstone, so
// its id is never claimed again.
func (n *Notifier) release(ctx context.Context, recs store.Tx, claim *store.Version, now time.Time) {
	w := &store.Write{Type: claimType, ID: claim.ID, Expected: claim.VersionID, LastUpdated: now.UTC().Truncate(time.Millisecond), Deleted: true}
	if err := recs.Put(ctx, w); err != nil {
		n.cfg.Logger.Warn("notify: release claim", "id", claim.ID, "err", err)
	}
}

// outcome is what became of a row delivered without error.
type outcome int

const (
	delivered outcome = iota
	dropped           // not delivered, and never will be
)

// fail records a failed attempt: the next one after a backoff, or the
// subscription set to error once it has failed for ErrorAfter.
func (n *Notifier) fail(ctx context.Context, recs store.Tx, leased *store.Version, rw *row, cause error, now time.Time) {
	n.cfg.Logger.Warn("notify: delivery failed", "subscription", rw.Subscription, "attempt", rw.Attempts+1, "err", cause)
	if rw.FirstFailure.IsZero() {
		rw.FirstFailure = now
	}
	rw.FailingFor += n.failedSince(rw, now)
	rw.Attempts++
	rw.LastError = cause.Error()
	rw.LastFailure, rw.FailedBy = now, n.cfg.Holder
	if rw.FailingFor >= n.cfg.ErrorAfter {
		// Since when, by this process's clock, as long as the attempts
		// were measured to have failed: the first failure may have been
		// dated by another process's clock, hours from this one's, and
		// quoted beside this write's time it would say the subscription
		// failed for longer than it did.
		last := rw.LastError
		var endpoint *endpointError
		if !errors.As(cause, &endpoint) {
			// The server's own failure (the engine failing a read): its
			// text holds internals, which the log keeps; the
			// Subscription's reader learns only that it was the server's.
			n.cfg.Logger.Error("notify: deliveries failing on the server", "subscription", rw.Subscription, "attempts", rw.Attempts, "err", cause)
			last = "the server could not prepare the notification"
		}
		why := fmt.Sprintf("delivery failing since %s after %d attempts: %s",
			now.Add(-rw.FailingFor).UTC().Format(time.RFC3339), rw.Attempts, last)
		if err := n.setError(ctx, rw.Subscription, why); err != nil {
			n.cfg.Logger.Error("notify: set subscription error", "subscription", rw.Subscription, "err", err)
		} else {
			n.dropAll(ctx, recs, rw.Subscription, now)
			return
		}
	}
	rw.NextAttempt = now.Add(n.backoff(rw.Attempts))
	w, err := rowWrite(leased.ID, leased.VersionID, rw, now)
	if err == nil {
		err = recs.Put(ctx, w)
	}
	if err != nil {
		n.cfg.Logger.Error("notify: record failed attempt", "id", leased.ID, "err", err)
	}
}

// backoff is the wait after the given number of failed attempts:
// MinBackoff doubled for each attempt after the first, at most MaxBackoff.
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.cfg.MinBackoff
	for i := 1; i < attempts && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.cfg.MaxBackoff)
}

// dropAll removes the pending rows of a subscription that will not be
// delivered any more.
func (n *Notifier) dropAll(ctx context.Context, recs store.Tx, sub string, now time.Time) {
	vs, err := recs.Search(ctx, pendingOf(sub, 0))
	if err != nil {
		n.cfg.Logger.Error("notify: drop rows", "subscription", sub, "err", err)
		return
	}
	for _, v := range vs {
		if err := recs.Put(ctx, doneWrite(v, now)); err != nil {
			n.cfg.Logger.Error("notify: drop row", "id", v.ID, "err", err)
		}
	}
}

// serverContext is a context in which the store acts for the server.
func serverContext(ctx context.Context) context.Context {
	ctx, _ = access.Begin(ctx)
	return access.WithPrincipal(ctx, access.SystemPrincipal("subscriptions"))
}

// deliver makes one delivery of a row: the handshake, or the event.
func (n *Notifier) deliver(ctx context.Context, rw *row) (outcome, error) {
	ref := n.store.Load()
	recs := ref.s.(recorder)
	sv, err := recs.Records().Read(ctx, "Subscription", rw.Subscription)
	if errors.Is(err, store.ErrNotFound) || (err == nil && sv.Deleted) {
		return dropped, nil
	}
	if err != nil {
		return 0, err
	}
	res, err := decodeSubscription(sv)
	if err != nil {
		return dropped, nil
	}
	sub, err := n.parseSubscription(res)
	if err != nil || !sub.live() {
		return dropped, nil
	}
	if rw.Kind == kindHandshake {
		if rw.SubscriptionVersion != sv.VersionID {
			return dropped, nil // a later write requested it again
		}
		send := func() error { return n.send(ctx, sub, http.MethodPost, sub.endpoint, nil) }
		if sub.topic != nil {
			send = func() error { return n.handshakeTopic(ctx, recs.Records(), sub) }
		}
		if err := send(); err != nil {
			return 0, err
		}
		res.Status = fhir.NewCode(statusActive)
		res.Error = nil
		if _, err := ref.s.Update(serverContext(ctx), res, sv.VersionID); err != nil {
			var conflict *store.ConflictError
			if errors.As(err, &conflict) {
				return dropped, nil
			}
			return 0, fmt.Errorf("activate subscription %s: %w", sub.id, err)
		}
		return delivered, nil
	}
	o, p, ok, err := n.authorisedOwner(ctx, recs.Records(), sub.id)
	if err != nil {
		return 0, err
	}
	if !ok || rw.SubscriptionVersion < o.Since {
		return dropped, nil // no owner, lapsed, or matched for a Subscription deleted since
	}
	octx, rec := access.Begin(ctx)
	octx = access.WithPrincipal(octx, p)
	version := rw.Version
	if rw.Deleted {
		version-- // the version deleted, which the owner must have been able to read
	}
	v, err := recs.VRead(octx, rw.Type, rw.ID, version)
	if err != nil {
		var denied *access.Denied
		if errors.Is(err, store.ErrNotFound) || errors.As(err, &denied) {
			return dropped, nil
		}
		return 0, err
	}
	if sub.topic != nil {
		if err := n.deliverTopic(ctx, recs.Records(), sub, rw, v); err != nil {
			return 0, err
		}
		if sub.content != contentEmpty {
			n.audit(p, rw, rec)
		}
		return delivered, nil
	}
	method, target, body := http.MethodPost, sub.endpoint, []byte(nil)
	if sub.payload != "" {
		if target, err = resourceURL(sub.endpoint, rw.Type, rw.ID); err != nil {
			return 0, err
		}
		method, body = http.MethodPut, v.JSON
		if rw.Deleted {
			method, body = http.MethodDelete, nil
		}
	}
	if err := n.send(ctx, sub, method, target, body); err != nil {
		return 0, err
	}
	if sub.payload != "" {
		n.audit(p, rw, rec)
	}
	return delivered, nil
}

// authorisedOwner returns the owner recorded for subscription sub, and
// its principal as it may act now: when the server re-checks owners
// (Config.Reauthorize), narrowed to what its authorisation still allows.
// ok is false when there is no owner, or its authorisation has lapsed,
// which sets the subscription to error: nothing is to be sent to it. An
// error is the store failing to read the owner: whether anything is to be
// sent is not known yet, and is asked again at the next attempt.
func (n *Notifier) authorisedOwner(ctx context.Context, recs store.Reader, sub string) (o owner, p *access.Principal, ok bool, err error) {
	o, err = readOwner(ctx, recs, sub)
	if errors.Is(err, store.ErrNotFound) {
		return o, nil, false, nil
	}
	if err != nil {
		return o, nil, false, err
	}
	if p, err = o.principal(); err != nil {
		return o, nil, false, nil
	}
	if n.cfg.Reauthorize != nil {
		still, err := n.cfg.Reauthorize(p, n.cfg.Now())
		if err != nil {
			n.lapse(ctx, sub, p, err)
			return o, nil, false, nil
		}
		p = still
	}
	return o, p, true, nil
}

// audit records that the notification of rw, which named or carried the
// version its owner p read (in rec), was delivered: as a vread by p, the
// information recipient, naming the Subscription in place of a request id
// (a delivery has none, and the Subscription is what a reader of the trail
// looks for next).
func (n *Notifier) audit(p *access.Principal, rw *row, rec *access.Record) {
	if n.cfg.Auditor == nil {
		return
	}
	n.cfg.Auditor.Add(&access.Event{Interaction: access.InteractionVRead, Type: rw.Type, ID: rw.ID,
		Principal: p, RequestID: "Subscription/" + rw.Subscription, Status: http.StatusOK, Recorded: n.cfg.Now(), Record: rec})
}

// resourceURL is [base]/[type]/[id] for an endpoint as base (R4
// subscription.html, rest-hook): type and id are appended to its path,
// and its query is kept. They are appended as written, not joined with
// JoinPath, which would resolve an id "." or ".." away.
func resourceURL(base, typ, id string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", base, err)
	}
	escaped := strings.TrimSuffix(u.EscapedPath(), "/")
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + typ + "/" + id
	u.RawPath = escaped + "/" + typ + "/" + id
	return u.String(), nil
}

// endpointError is a delivery's failure at the endpoint (refused by the
// SSRF guard, unreachable, or answering other than 2xx): the
// subscription's owner's to act on, and quoted in Subscription.error.
type endpointError struct{ err error }

// Error is the failure as Subscription.error quotes it: a name that did
// not resolve is said without the resolver asked (Go's "lookup x on
// 10.96.0.10:53"), an address of the server's own network.
func (e *endpointError) Error() string {
	s := e.err.Error()
	var dns *net.DNSError
	if errors.As(e.err, &dns) && dns.Server != "" {
		named := *dns
		named.Server = ""
		s = strings.Replace(s, dns.Error(), named.Error(), 1)
	}
	return s
}

func (e *endpointError) Unwrap() error { return e.err }

// send makes one request to an endpoint; anything but a 2xx answer is a
// failure, an *endpointError.
func (n *Notifier) send(ctx context.Context, sub *subscription, method, target string, body []byte) error {
	if err := n.request(ctx, sub, method, target, body); err != nil {
		return &endpointError{err}
	}
	return nil
}

// request is send's request.
func (n *Notifier) request(ctx context.Context, sub *subscription, method, target string, body []byte) error {
	if err := CheckEndpoint(target, n.cfg.AllowHTTP); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", payloadFull)
	}
	for name, values := range sub.headers {
		for _, v := range values {
			req.Header.Add(name, v) // a name repeated in the channel is sent each time
		}
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s answered %s", method, target, resp.Status)
	}
	return nil
}

// lapse stops the deliveries of subscription sub, whose owner's
// authorisation lapsed (why): the subscription is set to error, saying so,
// and its rows are dropped as they come up, until a client writes it
// again with a token that authorises it.
func (n *Notifier) lapse(ctx context.Context, sub string, owner *access.Principal, why error) {
	n.cfg.Logger.Warn("notify: owner's authorisation lapsed", "subscription", sub, "err", why)
	msg := fmt.Sprintf("notifications stopped for its owner %s: %v; write the Subscription again, as requested, with a current token to resume", owner.Who(), why)
	if err := n.setError(ctx, sub, msg); err != nil {
		n.cfg.Logger.Error("notify: set subscription error", "subscription", sub, "err", err)
	}
}

// setError sets subscription sub to error, with why in
// Subscription.error.
func (n *Notifier) setError(ctx context.Context, sub, why string) error {
	return n.setStatus(ctx, sub, statusError, why)
}

// setStatus sets the status of subscription sub, with why in
// Subscription.error ("": none).
func (n *Notifier) setStatus(ctx context.Context, sub, status, why string) error {
	ref := n.store.Load()
	recs := ref.s.(recorder).Records()
	sv, err := recs.Read(ctx, "Subscription", sub)
	if err != nil || sv.Deleted {
		return nil
	}
	res, err := decodeSubscription(sv)
	if err != nil {
		return err
	}
	res.Status = fhir.NewCode(status)
	res.Error = nil
	if why != "" {
		res.Error = fhir.NewString(why)
	}
	_, err = ref.s.Update(serverContext(ctx), res, sv.VersionID)
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		return nil // written meanwhile: requested again, or switched off
	}
	return err
}
