package hl7v2

// SeenKey is the key of a message among those already applied: its
// sending application, sending facility and control id, since control ids
// are unique only per sender. Its receipt's id derives from it
// (ReceiptID).
func SeenKey(m *Message) string {
	msh := m.Segments[0]
	return msh.Get(3, 1) + "|" + msh.Get(4, 1) + "|" + msh.Get(10, 1)
}
