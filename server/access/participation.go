package access

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"carefhir/care/calendar"
	"carefhir/store"
)

// teamsNamingPractitioner are the clauses selecting the active CareTeams
// that name the principal's practitioner, or a PractitionerRole of
// theirs, as a participant, whether or not their part is current.
func (d *decider) teamsNamingPractitioner() []store.Clause {
	practitioner := d.practitioner()
	active := store.Clause{Param: "status", Tokens: []store.TokenMatch{{Code: "active", AnySystem: true}}}
	member := store.Clause{Param: "_access", Any: []store.Clause{
		{Param: "participant", References: []store.ReferenceMatch{practitioner}},
		{Param: "participant", Chain: &store.Chain{Types: []string{"PractitionerRole"}, Where: []store.Clause{
			{Param: "practitioner", References: []store.ReferenceMatch{practitioner}},
		}}},
	}}
	return []store.Clause{active, member}
}

func (d *decider) practitioner() store.ReferenceMatch {
	return store.ReferenceMatch{Type: "Practitioner", ID: strings.TrimPrefix(d.p.FHIRUser, "Practitioner/")}
}

// allLapsedTeams returns the lapsed CareTeams of every patient (see
// lapsedTeams), read once per request.
func (d *decider) allLapsedTeams(ctx context.Context, r store.Reader) ([]string, error) {
	d.mu.Lock()
	lapsed := d.lapsed
	d.mu.Unlock()
	if lapsed != nil {
		return *lapsed, nil
	}
	ids, err := d.lapsedTeams(ctx, r)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.lapsed = &ids
	d.mu.Unlock()
	return ids, nil
}

// lapsedTeamsOf returns the lapsed CareTeams (see lapsedTeams) of Patient
// id: those of every patient when the request has read them already, as
// a search followed by its includes has, so that each patient decided
// costs no further read of CareTeams; else those of this patient alone.
func (d *decider) lapsedTeamsOf(ctx context.Context, r store.Reader, id string) ([]string, error) {
	d.mu.Lock()
	lapsed := d.lapsed
	d.mu.Unlock()
	if lapsed != nil {
		return *lapsed, nil
	}
	return d.lapsedTeams(ctx, r, store.Clause{Param: "subject", References: []store.ReferenceMatch{{Type: "Patient", ID: id}}})
}

// lapsedTeams returns the ids of the active CareTeams matching where that
// name the practitioner (or a PractitionerRole of theirs) only in parts
// that are not current: ended, as after a handover, or not yet begun. The
// engine indexes no participant's period, so each CareTeam naming them is
// read and decided here; those whose participants are all current are
// decided without telling whose part is whose.
func (d *decider) lapsedTeams(ctx context.Context, r store.Reader, where ...store.Clause) ([]string, error) {
	teams, err := r.Search(ctx, store.Query{Type: "CareTeam", Unordered: true, Where: append(d.teamsNamingPractitioner(), where...)})
	if err != nil {
		return nil, fmt.Errorf("access: the CareTeams of %s: %w", d.p.FHIRUser, err)
	}
	var lapsed []string
	for _, v := range teams {
		now, err := d.takesPartNow(ctx, r, v.JSON)
		if err != nil {
			return nil, fmt.Errorf("access: CareTeam/%s: %w", v.ID, err)
		}
		if !now {
			lapsed = append(lapsed, v.ID)
		}
	}
	return lapsed, nil
}

// takesPartNow reports whether the practitioner takes part now in a
// CareTeam (its JSON) that names them as a participant.
func (d *decider) takesPartNow(ctx context.Context, r store.Reader, team []byte) (bool, error) {
	var ct struct {
		Participant []json.RawMessage `json:"participant"`
	}
	if err := json.Unmarshal(team, &ct); err != nil {
		return false, err
	}
	var current []json.RawMessage
	for _, p := range ct.Participant {
		var part struct {
			Period struct{ Start, End string } `json:"period"`
		}
		if err := json.Unmarshal(p, &part); err != nil {
			return false, err
		}
		if calendar.Holds(part.Period.Start, part.Period.End, d.rules.Now(), d.rules.Zone) {
			current = append(current, p)
		}
	}
	if len(current) == len(ct.Participant) {
		return true, nil // one of them is theirs, as the search matched it
	}
	for _, p := range current {
		theirs, err := d.theirPart(ctx, r, p)
		if theirs || err != nil {
			return theirs, err
		}
	}
	return false, nil
}

// theirPart reports whether a participant of a CareTeam (its JSON) is the
// practitioner or a PractitionerRole of theirs. It is indexed as the
// participant of a CareTeam of its own, so that its member is read as the
// search of CareTeams reads it (a version, an absolute reference to this
// server).
func (d *decider) theirPart(ctx context.Context, r store.Reader, participant json.RawMessage) (bool, error) {
	body, err := json.Marshal(map[string]any{"resourceType": "CareTeam", "participant": []json.RawMessage{participant}})
	if err != nil {
		return false, err
	}
	ix, err := d.rules.Index("CareTeam", body)
	if err != nil {
		return false, fmt.Errorf("index a participant: %w", err)
	}
	roles, err := d.practitionerRoles(ctx, r)
	if err != nil {
		return false, err
	}
	member := store.Clause{Param: "participant", References: append([]store.ReferenceMatch{d.practitioner()}, roles...)}
	theirs, _ := store.Match(&member, "", time.Time{}, &ix)
	return theirs, nil
}

// practitionerRoles returns the PractitionerRoles whose practitioner is
// the principal's, read once per request.
func (d *decider) practitionerRoles(ctx context.Context, r store.Reader) ([]store.ReferenceMatch, error) {
	d.mu.Lock()
	roles := d.roles
	d.mu.Unlock()
	if roles != nil {
		return *roles, nil
	}
	found, err := r.Search(ctx, store.Query{Type: "PractitionerRole", IDsOnly: true, Unordered: true, Where: []store.Clause{
		{Param: "practitioner", References: []store.ReferenceMatch{d.practitioner()}},
	}})
	if err != nil {
		return nil, fmt.Errorf("the PractitionerRoles of %s: %w", d.p.FHIRUser, err)
	}
	refs := make([]store.ReferenceMatch, 0, len(found))
	for _, v := range found {
		refs = append(refs, store.ReferenceMatch{Type: "PractitionerRole", ID: v.ID})
	}
	d.mu.Lock()
	d.roles = &refs
	d.mu.Unlock()
	return refs, nil
}
