package hl7v2

import (
	"net/url"
	"strings"
	"time"

	"carefhir/fhir"
	"carefhir/mappers"
)

// ReceiptType is the resource type of a message's receipt: the
// Provenance that records, among the message's own writes, that the
// message was applied, and where its writes came from.
const ReceiptType = "Provenance"

// controlIDSystem prefixes the system of the identifier of a message in
// its receipt: the system names the sender, the value is the control id.
const controlIDSystem = "urn:hl7v2:control-id:"

// senderSystem returns the system of the control ids of the sending
// application and facility named: each is percent-encoded, since a uri
// holds no spaces and senders name themselves "EMIS Web".
func senderSystem(application, facility string) string {
	return controlIDSystem + url.PathEscape(application) + "|" + url.PathEscape(facility)
}

// ReceiptID returns the id of the receipt of the message whose Seen key
// (SeenKey) is key: derived from the key, so that the same sender and
// control id always name the same receipt.
func ReceiptID(key string) string {
	return strings.TrimPrefix(mappers.StableID("hl7v2-receipt", key), "urn:uuid:")
}

// AddReceipt adds to the message's Bundle the write of its receipt, a
// Provenance with the id ReceiptID gives, recorded at now: its targets are
// the patients the message writes, its agent the sending application and
// facility, and its source entity the message, by control id. Written in
// the same transaction as the message's writes, the receipt exists
// exactly when they were stored, so a store that keeps it remembers which
// messages were applied across restarts ($import reads it first). It does nothing
// to a message without a Bundle.
func (im *Imported) AddReceipt(now time.Time) {
	if im.Message == nil || im.Bundle == nil || len(im.Bundle.Entry) == 0 {
		return
	}
	msh := im.Message.Segments[0]
	key := SeenKey(im.Message)
	id := ReceiptID(key)
	app, facility := hierarchic(msh, 3), hierarchic(msh, 4)
	sender := strings.TrimSpace(app + " " + facility)
	if sender == "" {
		sender = "unnamed HL7 v2 sender"
	}
	p := &fhir.Provenance{
		Recorded: fhir.NewInstant(now.UTC().Format("2006-01-02T15:04:05.000Z")),
		Agent:    []*fhir.ProvenanceAgent{{Who: &fhir.Reference{Display: fhir.NewString(sender)}}},
		Entity: []*fhir.ProvenanceEntity{{Role: fhir.NewCode("source"), What: &fhir.Reference{
			Identifier: &fhir.Identifier{System: fhir.NewUri(senderSystem(app, facility)), Value: fhir.NewString(msh.Get(10, 1))},
			Display:    fhir.NewString("HL7 v2 " + msh.Get(9, 1) + "^" + im.Event + " " + im.ControlID),
		}}},
	}
	p.SetID(id)
	for _, e := range im.Bundle.Entry {
		if e.Resource != nil && e.Resource.ResourceType() == "Patient" {
			p.Target = append(p.Target, mappers.Ref(e.FullUrl.Get()))
		}
	}
	if len(p.Target) == 0 {
		p.Target = []*fhir.Reference{mappers.Ref(im.Bundle.Entry[0].FullUrl.Get())}
	}
	im.Bundle.Entry = append(im.Bundle.Entry, &fhir.BundleEntry{
		FullUrl:  fhir.NewUri(mappers.StableID(ReceiptType, id)),
		Resource: p,
		Request:  &fhir.BundleEntryRequest{Method: fhir.NewCode("PUT"), Url: fhir.NewUri(ReceiptType + "/" + id)},
	})
}
