package hl7v2

// SeenKey is the key of a message among those already applied: its
// sending application, sending facility and control id, since control ids
// are unique only per sender. Its receipt's id derives from it
// (ReceiptID).
func SeenKey(m *Message) string {
	msh := m.Segments[0]
	return hierarchic(msh, 3) + "|" + hierarchic(msh, 4) + "|" + msh.Get(10, 1)
}

// hierarchic returns the HD of field n of seg, an application or a
// facility: its namespace id (HD-1) alone when it has nothing else, as
// most senders name themselves, else HD-1, its universal id (HD-2) and
// the universal id's type (HD-3) joined by ^. A sender known by an OID
// alone (^2.16.840.1.113883.2.1.3.2^ISO) is named by HD-2, and two such
// senders are two.
func hierarchic(seg *Segment, n int) string {
	r := firstRep(seg.Field(n))
	ns, uid, typ := r.Get(1), r.Get(2), r.Get(3)
	if uid == "" && typ == "" {
		return ns
	}
	return ns + "^" + uid + "^" + typ
}
