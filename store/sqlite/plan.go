package sqlite

import (
	"fmt"
	"strconv"
	"strings"

	"carefhir/store"
)

// planSQL builds the SQL of a plan: conditions with their arguments.
type planSQL struct {
	b       strings.Builder
	args    []any
	aliases int
	param   paramLookup
	// probe writes conditions as correlated probes of the *_rid indexes
	// (EXISTS … WHERE rid = r.rid) instead of as sets of rids: for a
	// condition that does not drive, and inside a probe.
	probe bool
	// estimate, when set, counts the rows of a query (see driver); the
	// conditions of the search itself are then chosen from by their
	// counts, nested ones by their form.
	estimate estimator
	// scanAt, when positive, is the count from which a walk of the type in
	// the order of the page, probing every condition, beats driving: the
	// page then fills after a few probes per match. walked reports that
	// the counts chose one.
	scanAt int
	walked bool
	// byRid, set by a search that reads every match in no order
	// (Query.Unordered), asks where to order by rid when a condition
	// drives: the rids of one index key come in that order, so a page is
	// a range of the key rather than a sort of every match. ridOrdered
	// reports that it did. after, the rid a page starts after (0: the
	// first page), is then put into the driving condition's range too.
	byRid, ridOrdered bool
	after             int64
	// bound is the rid after which the set being written starts; 0: none.
	bound int64
	// rowRead lists the aliases of resources whose row (deleted, seq) a
	// condition reads, beyond the rid, type and id of the resources_id
	// index.
	rowRead map[string]bool
}

// readsRow records that a condition reads columns of the row of alias r.
func (p *planSQL) readsRow(r string) {
	if p.rowRead == nil {
		p.rowRead = map[string]bool{}
	}
	p.rowRead[r] = true
}

// estimator returns the single integer a query selects.
type estimator func(query string, args []any) (int, error)

// paramLookup returns a search parameter of a type as stored; a parameter
// without rows is the zero param.
type paramLookup func(typ, name string) (param, error)

func (p *planSQL) arg(v ...any) { p.args = append(p.args, v...) }

// alias returns a new table alias suffix, so that nested queries do not
// shadow each other.
func (p *planSQL) alias() string {
	p.aliases++
	return strconv.Itoa(p.aliases)
}

// A term is one condition of a where: a clause, or several clauses on one
// date parameter that a single row must satisfy together (see terms).
type term []*store.Clause

// terms returns the terms of clauses. Two bounds of a range given as
// repeated parameters (birthdate=ge1970-03-01&birthdate=lt1970-04-01) are
// two clauses, each matching half of everyone; one row satisfying both is
// one range scan. That is the same answer while no resource has had two
// values of the parameter (param.dateMulti), so only then are they merged.
func (p *planSQL) terms(typ string, clauses []store.Clause) ([]term, error) {
	terms := make([]term, 0, len(clauses))
	merged := map[string]int{} // parameter → index of its date term
	for i := range clauses {
		c := &clauses[i]
		if isValueClause(c) && len(c.Dates) == 1 && isOnlyDates(c) {
			pr, err := p.param(typ, c.Param)
			if err != nil {
				return nil, err
			}
			if !pr.dateMulti {
				if j, ok := merged[c.Param]; ok {
					terms[j] = append(terms[j], c)
					continue
				}
				merged[c.Param] = len(terms)
			}
		}
		terms = append(terms, term{c})
	}
	return terms, nil
}

// isValueClause reports whether c matches values of a search table.
func isValueClause(c *store.Clause) bool {
	return !c.Not && c.Any == nil && c.Chain == nil && c.Has == nil && c.Presence == store.PresenceAny &&
		c.Param != "_id" && c.Param != "_lastUpdated"
}

func isOnlyDates(c *store.Clause) bool {
	return len(c.Tokens)+len(c.Strings)+len(c.Numbers)+len(c.Quantities)+len(c.References)+len(c.URIs)+len(c.Composites) == 0
}

// where writes the conditions of clauses on the resource r (alias of
// resources) of type typ, which r is already restricted to: r must be
// current and not deleted, and each clause hold.
//
// At most one term drives: its rids are looked up by a range of an index
// key. Every other one is a probe of a rid index per candidate: left as a
// set of rids too, SQLite would materialise each set in full (all
// appointments since a date, say) before intersecting them. See driver for
// which one drives.
func (p *planSQL) where(typ, r string, clauses []store.Clause) error {
	terms, err := p.terms(typ, clauses)
	if err != nil {
		return err
	}
	outer := p.probe
	defer func() { p.probe = outer }()
	driver, scan := -1, false
	if !outer {
		if driver, scan, err = p.driver(typ, terms); err != nil {
			return err
		}
	}
	// Counts choose among the search's own conditions; nested queries
	// (chains, _has) are chosen from by form.
	p.estimate, p.scanAt = nil, 0
	p.ridOrdered = p.byRid && driver >= 0
	p.byRid = false
	if !current(terms) {
		fmt.Fprintf(&p.b, " AND %s.deleted = 0", r)
		p.readsRow(r)
	}
	for i, t := range terms {
		p.b.WriteString(" AND ")
		p.probe = outer || scan || driver >= 0 && i != driver
		if p.ridOrdered && i == driver && len(t) == 1 && isValueClause(t[0]) {
			p.bound = p.after
		}
		err := p.term(typ, r, t)
		p.bound = 0
		if err != nil {
			return err
		}
	}
	return nil
}

// driver chooses the term that drives, or none and scan: a walk of the
// type probing every term.
//
// With an estimator, each term that can drive is counted, up to a cap,
// and the smallest drives; a search whose every term matches at least
// scanAt rows walks instead (CarePlan?status=active: the first 21 plans
// in id order are found after some 35 probes, where driving would read
// and sort tens of thousands). A search by _id walks the few ids it
// names. Without an estimator (nested queries), an equality drives before
// a range, a range before a chain, a chain before a _has.
func (p *planSQL) driver(typ string, terms []term) (driver int, scan bool, err error) {
	var candidates []int
	for i, t := range terms {
		if len(t) == 1 && t[0].Param == "_id" && !t[0].Not && t[0].Any == nil && t[0].Presence == store.PresenceAny {
			return -1, true, nil
		}
		if rank(t) >= 0 {
			candidates = append(candidates, i)
		}
	}
	if len(candidates) == 0 {
		return -1, false, nil
	}
	estimate := p.estimate
	if estimate == nil {
		best := candidates[0]
		for _, i := range candidates {
			if rank(terms[i]) < rank(terms[best]) {
				best = i
			}
		}
		return best, false, nil
	}
	if len(candidates) == 1 && p.scanAt <= 0 {
		return candidates[0], false, nil
	}
	most := max(p.scanAt, minEstimate)
	best, least, err := p.rarest(typ, terms, candidates, estimate, most)
	if err != nil {
		return -1, false, err
	}
	if p.scanAt > 0 && least >= p.scanAt {
		p.walked = true
		return -1, true, nil
	}
	if least < most {
		return best, false, nil
	}
	// Every term is common and the search does not walk (it is sorted, or
	// a walk gave up): the counts at the cap say nothing of which is
	// rarer, and driving from the commoner of two can cost ten times
	// more. Count further.
	best, _, err = p.rarest(typ, terms, candidates, estimate, deepEstimate*most)
	return best, false, err
}

// deepEstimate is how much further driver counts terms that all reached
// the cap.
const deepEstimate = 10

// rarest returns the candidate term with the fewest rows, counted up to
// most, and its count.
func (p *planSQL) rarest(typ string, terms []term, candidates []int, estimate estimator, most int) (best, least int, err error) {
	best = -1
	for _, i := range candidates {
		n, err := p.count(typ, terms[i], estimate, most)
		if err != nil {
			return -1, 0, err
		}
		if best < 0 || n < least {
			best, least = i, n
		}
	}
	return best, least, nil
}

// minEstimate is the cap of a count that only ranks terms.
const minEstimate = 1000

// count returns how many rows the set of t has, up to most.
//
// A chain or _has is counted by the resources it reaches through: as many
// as their rarest condition selects. Each of them is about as many as
// the resources of the search that refer or are referred to (a care plan
// per patient, say), and counting through the references would cost what
// the search does.
func (p *planSQL) count(typ string, t term, estimate estimator, most int) (int, error) {
	if c := t[0]; len(t) == 1 && (c.Chain != nil || c.Has != nil) {
		types, where := []string{}, []store.Clause(nil)
		if c.Chain != nil {
			types, where = c.Chain.Types, c.Chain.Where
		} else {
			types, where = []string{c.Has.Type}, c.Has.Where
		}
		n := 0
		for _, typ := range types {
			terms, err := p.terms(typ, where)
			if err != nil {
				return 0, err
			}
			least := most
			for _, t := range terms {
				if rank(t) < 0 {
					continue
				}
				m, err := p.count(typ, t, estimate, most)
				if err != nil {
					return 0, err
				}
				least = min(least, m)
			}
			n += least
		}
		return min(n, most), nil
	}
	q := planSQL{param: p.param, aliases: p.aliases}
	q.b.WriteString("SELECT count(*) FROM (")
	if err := q.set(typ, t); err != nil {
		return 0, err
	}
	q.b.WriteString(limit(most) + ")")
	n, err := estimate(q.b.String(), q.args)
	if err != nil {
		return 0, fmt.Errorf("estimate %s: %w", t[0].Param, err)
	}
	return n, nil
}

// current reports whether a resource that the terms select is necessarily
// current and not deleted: when one of them must match a row of the
// resource in a search table, which holds the values of those only. The
// check of resources.deleted is then left out, which saves reading the
// row of every candidate a search walks.
func current(terms []term) bool {
	for _, t := range terms {
		if r := rank(t); r >= 0 && r <= 3 {
			return true
		}
	}
	return false
}

// rank orders the forms of terms that can drive (see driver); -1 for one
// that cannot.
func rank(t term) int {
	c := t[0]
	switch {
	case len(t) > 1:
		return 1
	case c.Not || c.Presence != store.PresenceAny:
		return -1
	case isValueClause(c) && (len(c.Tokens) > 0 || len(c.References) > 0):
		return 0
	case isValueClause(c):
		return 1
	case c.Any != nil:
		if len(c.Any) == 0 {
			return -1 // matches nothing: a condition, not a set to drive from
		}
		for i := range c.Any {
			if r := rank(term{&c.Any[i]}); r < 0 || r == 4 || c.Any[i].Any != nil {
				return -1
			}
		}
		return 2
	case c.Chain != nil:
		return 3
	case c.Has != nil:
		return 4
	}
	return -1
}

// term writes the condition of one term.
func (p *planSQL) term(typ, r string, t term) error {
	if len(t) == 1 {
		return p.clause(typ, r, t[0])
	}
	p.b.WriteString("(")
	defer p.b.WriteString(")")
	if p.probe {
		return p.matches(typ, r, t)
	}
	fmt.Fprintf(&p.b, "%s.rid IN (", r)
	if err := p.set(typ, t); err != nil {
		return err
	}
	p.b.WriteString(")")
	return nil
}

// set writes the query of the resources that the term t, which can drive,
// selects: their ids for a _has, their rids for every other form.
func (p *planSQL) set(typ string, t term) error {
	c := t[0]
	switch {
	case len(t) == 1 && c.Any != nil:
		for i := range c.Any {
			if i > 0 {
				p.b.WriteString(" UNION ALL ")
			}
			if err := p.set(typ, term{&c.Any[i]}); err != nil {
				return err
			}
		}
		return nil
	case len(t) == 1 && c.Chain != nil:
		return p.chainSet(typ, c)
	case len(t) == 1 && c.Has != nil:
		return p.hasSet(typ, c.Has)
	}
	probe := p.probe
	p.probe = false
	defer func() { p.probe = probe }()
	return p.values(typ, "", t)
}

// clause writes the condition of one clause.
func (p *planSQL) clause(typ, r string, c *store.Clause) error {
	if c.Not {
		p.b.WriteString("NOT ")
	}
	p.b.WriteString("(")
	defer p.b.WriteString(")")
	switch {
	case c.Any != nil && (p.probe || rank(term{c}) < 0):
		if len(c.Any) == 0 {
			p.b.WriteString("0")
		}
		for i := range c.Any {
			if i > 0 {
				p.b.WriteString(" OR ")
			}
			if err := p.clause(typ, r, &c.Any[i]); err != nil {
				return err
			}
		}
		return nil
	case c.Presence != store.PresenceAny:
		// The parameter has a value when the resource has a row of it in a
		// table of its kinds: a probe of the table's *_rid index per
		// candidate, cheaper than reading every row of the parameter.
		pr, err := p.param(typ, c.Param)
		if err != nil {
			return err
		}
		if c.Presence == store.Missing {
			p.b.WriteString("NOT ")
		}
		p.b.WriteString("(")
		n := 0
		for _, t := range searchTables {
			if pr.kinds&t.kind == 0 {
				continue
			}
			if n > 0 {
				p.b.WriteString(" OR ")
			}
			n++
			fmt.Fprintf(&p.b, "EXISTS (SELECT 1 FROM %s WHERE rid = %s.rid AND pid = ?)", t.name, r)
			p.arg(pr.pid)
		}
		if n == 0 {
			p.b.WriteString("0")
		}
		p.b.WriteString(")")
		return nil
	case c.Chain != nil && p.probe:
		return p.chainProbe(typ, r, c)
	case c.Has != nil && p.probe:
		return p.hasProbe(typ, r, c.Has)
	case c.Param == "_id":
		ids := make([]any, 0, len(c.Tokens))
		for _, m := range c.Tokens {
			if m.AnyCode {
				p.b.WriteString("1")
				return nil
			}
			ids = append(ids, m.Code)
		}
		fmt.Fprintf(&p.b, "%s.id IN (%s)", r, placeholders(len(ids)))
		p.arg(ids...)
		return nil
	case c.Param == "_lastUpdated":
		// The range on versions_type narrows the ids (any version); the
		// second condition keeps those whose current version is in range.
		inner, args := dateCond("last_updated", "last_updated", c.Dates)
		lu := lastUpdated(r)
		p.readsRow(r)
		outer, oargs := dateCond(lu, lu, c.Dates)
		fmt.Fprintf(&p.b, "%s.id IN (SELECT id FROM versions WHERE type = ? AND (%s)) AND (%s)", r, inner, outer)
		p.arg(typ)
		p.arg(args...)
		p.arg(oargs...)
		return nil
	case p.probe:
		return p.matches(typ, r, term{c})
	}
	column := "rid"
	if c.Has != nil {
		column = "id"
	}
	fmt.Fprintf(&p.b, "%s.%s IN (", r, column)
	if err := p.set(typ, term{c}); err != nil {
		return err
	}
	p.b.WriteString(")")
	return nil
}

// matches writes, as a probe, the values of the term t on resource r.
func (p *planSQL) matches(typ, r string, t term) error {
	p.b.WriteString("EXISTS (")
	if err := p.values(typ, r, t); err != nil {
		return err
	}
	p.b.WriteString(")")
	return nil
}

// chainSet writes the rids of the resources whose reference c.Param is one
// of the keys of the resources the chained query selects.
func (p *planSQL) chainSet(typ string, c *store.Clause) error {
	pr, err := p.param(typ, c.Param)
	if err != nil {
		return err
	}
	p.b.WriteString("SELECT rid FROM refs WHERE pid = ? AND key IN (")
	p.arg(pr.pid)
	for i, t := range c.Chain.Types {
		if i > 0 {
			p.b.WriteString(" UNION ALL ")
		}
		a := p.alias()
		fmt.Fprintf(&p.b, "SELECT ? || r%[1]s.id FROM resources r%[1]s WHERE r%[1]s.type = ?", a)
		p.arg(store.RefTyped+t+"/", t)
		if err := p.where(t, "r"+a, c.Chain.Where); err != nil {
			return err
		}
	}
	if len(c.Chain.Types) == 0 {
		p.b.WriteString("SELECT NULL WHERE 0")
	}
	p.b.WriteString(")")
	return nil
}

// chainProbe writes a chained clause as a probe: resource r has a
// reference, through c.Param, to a resource the chained query selects.
func (p *planSQL) chainProbe(typ, r string, c *store.Clause) error {
	pr, err := p.param(typ, c.Param)
	if err != nil {
		return err
	}
	if len(c.Chain.Types) == 0 {
		p.b.WriteString("0")
	}
	for i, t := range c.Chain.Types {
		if i > 0 {
			p.b.WriteString(" OR ")
		}
		a := p.alias()
		prefix := store.RefTyped + t + "/"
		fmt.Fprintf(&p.b, "EXISTS (SELECT 1 FROM refs c%[1]s JOIN resources r%[1]s ON r%[1]s.type = ? AND r%[1]s.id = substr(c%[1]s.key, ?)"+
			" WHERE c%[1]s.rid = %[2]s.rid AND c%[1]s.pid = ? AND c%[1]s.key >= ? AND c%[1]s.key < ?", a, r)
		p.arg(t, len(prefix)+1, pr.pid, prefix, prefix+prefixEnd)
		if err := p.where(t, "r"+a, c.Chain.Where); err != nil {
			return err
		}
		p.b.WriteString(")")
	}
	return nil
}

// hasSet writes the ids of the resources of type typ that a resource h
// selects references through h.Param.
func (p *planSQL) hasSet(typ string, h *store.Has) error {
	pr, err := p.param(h.Type, h.Param)
	if err != nil {
		return err
	}
	a := p.alias()
	fmt.Fprintf(&p.b, "SELECT substr(key, ?) FROM refs WHERE pid = ? AND key >= ? AND key < ? AND rid IN ("+
		"SELECT r%[1]s.rid FROM resources r%[1]s WHERE r%[1]s.type = ?", a)
	prefix := store.RefTyped + typ + "/"
	p.arg(len(prefix)+1, pr.pid, prefix, prefix+prefixEnd, h.Type)
	if err := p.where(h.Type, "r"+a, h.Where); err != nil {
		return err
	}
	p.b.WriteString(")")
	return nil
}

// hasProbe writes a _has clause as a probe: a resource that h selects
// references resource r through h.Param.
func (p *planSQL) hasProbe(typ, r string, h *store.Has) error {
	pr, err := p.param(h.Type, h.Param)
	if err != nil {
		return err
	}
	a := p.alias()
	fmt.Fprintf(&p.b, "EXISTS (SELECT 1 FROM refs h%[1]s JOIN resources r%[1]s ON r%[1]s.rid = h%[1]s.rid"+
		" WHERE h%[1]s.pid = ? AND h%[1]s.key = ? || %[2]s.id AND r%[1]s.type = ?", a, r)
	p.arg(pr.pid, store.RefTyped+typ+"/", h.Type)
	if err := p.where(h.Type, "r"+a, h.Where); err != nil {
		return err
	}
	p.b.WriteString(")")
	return nil
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
