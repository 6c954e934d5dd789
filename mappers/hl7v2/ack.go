package hl7v2

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"carefhir/mappers"
)

// Acknowledgement codes (HL7 table 0008, original mode).
const (
	// AA: the message was accepted and applied.
	AA = "AA"
	// AE: the message was understood but not applied, because of an
	// error in its content (an ERR segment says where).
	AE = "AE"
	// AR: the message was rejected: it could not be parsed, its type,
	// event or version is not handled, or it could not be processed for
	// reasons unrelated to its content (the store is unavailable): the
	// same message may be sent again later.
	AR = "AR"
)

// A Refusal is the error of a host that did not store a message's writes
// because of what they hold or who sent them (an access decision, a
// validation, a record they conflict with): the same message sent again
// is refused again, so it is acknowledged AE, where any other error of
// the host (the store unavailable, a timeout, a shutdown) is acknowledged
// AR, to be sent again later (HL7 v2.5 2.9.2.3).
type Refusal struct {
	Reason string // sent back, in ERR-8 and MSA-3
	Err    error  // what the host was told; it stays with the host
}

func (r *Refusal) Error() string { return r.Reason + ": " + r.Err.Error() }

func (r *Refusal) Unwrap() error { return r.Err }

// maxErrSegments bounds the ERR segments of an acknowledgement: a message
// of thousands of bad segments, or of a field repeated thousands of times,
// has an issue for each, and an ERR for each would make an acknowledgement
// larger than the message. The issues past it are counted in one more ERR.
const maxErrSegments = 100

// Ack builds the acknowledgement of m with code, one ERR segment per
// Error or Warning issue (v2.5 layout: ERR-2 location, ERR-3 error code,
// ERR-4 severity, ERR-8 text), the first maxErrSegments of them and then
// one ERR saying how many more there are, and MSA-2 the control id of m. m may be
// nil (the bytes received were not a message): MSA-2 is then empty. now
// stamps MSH-7.
func Ack(m *Message, code string, issues []mappers.Issue, now time.Time) []byte {
	return ack(m, code, issues, nil, now)
}

// ack is Ack with the indexes of the issues about absent segments and
// fields.
func ack(m *Message, code string, issues []mappers.Issue, missing []int, now time.Time) []byte {
	d := Standard
	var msh *Segment
	if m != nil {
		msh = m.Segments[0]
	}
	get := func(n, c int) string { return d.escape(msh.Get(n, c)) }
	// An application or facility is answered by its whole HD: a sender
	// known by its universal id (^1.2.3^ISO) has nothing in HD-1.
	hd := func(n int) string {
		return strings.TrimRight(get(n, 1)+"^"+get(n, 2)+"^"+get(n, 3), "^")
	}
	version := "2.5"
	if v := msh.Get(12, 1); v != "" {
		version = d.escape(v)
	}
	control := strings.TrimSpace(msh.Get(10, 1)) // as Imported.ControlID
	var b strings.Builder
	// The acknowledgement goes back to the sender: its sending
	// application and facility are the original's receiving ones.
	b.WriteString(strings.Join([]string{
		"MSH", `^~\&`, hd(5), hd(6), hd(3), hd(4), now.UTC().Format("20060102150405") + "+0000", "",
		"ACK^" + get(9, 2) + "^ACK", ackControlID(control), orDefault(get(11, 1), "P"), version,
	}, "|"))
	b.WriteByte('\r')
	text := ""
	for _, i := range issues {
		if i.Severity == mappers.Error {
			text = i.Message
			break
		}
	}
	b.WriteString("MSA|" + code + "|" + d.escape(control))
	if text != "" {
		// MSA-3, withdrawn in v2.5 but still read by v2.3 systems.
		b.WriteString("|" + d.escape(clip(text, 80)))
	}
	b.WriteByte('\r')
	listed, more, moreErrors, moreCode := 0, 0, false, ""
	for n, i := range issues {
		if i.Severity == mappers.Information {
			continue
		}
		sev := "E"
		if i.Severity == mappers.Warning {
			sev = "W"
		}
		ec := errCode(code, i, slices.Contains(missing, n))
		if listed == maxErrSegments {
			// Counted, not listed: the first left out gives the ERR
			// that counts them its code, an error among them its
			// severity.
			if more == 0 {
				moreCode = ec
			}
			more++
			moreErrors = moreErrors || sev == "E"
			continue
		}
		listed++
		b.WriteString("ERR||" + errLocation(i.Path) + "|" + ec + "|" + sev + "||||" + d.escape(i.Message))
		b.WriteByte('\r')
	}
	if more > 0 {
		sev := "W"
		if moreErrors {
			sev = "E"
		}
		b.WriteString("ERR|||" + moreCode + "|" + sev + "||||" + strconv.Itoa(more) + " more errors and warnings, not listed: this acknowledgement lists the first " + strconv.Itoa(maxErrSegments))
		b.WriteByte('\r')
	}
	return []byte(b.String())
}

// ackControlID derives the acknowledgement's own control id from the
// original's, so a repeated acknowledgement is the same bytes.
func ackControlID(control string) string {
	return Standard.escape(clip("A"+control, 20))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// errCode picks the HL7 table 0357 error code of an issue.
func errCode(ackCode string, i mappers.Issue, missing bool) string {
	switch {
	case i.Path == "store", i.Path == "message":
		return "207^Application internal error^HL70357"
	case ackCode == AR && i.Path == "MSH-9.2":
		return "201^Unsupported event code^HL70357"
	case ackCode == AR && i.Path == "MSH-9":
		return "200^Unsupported message type^HL70357"
	case missing:
		return "101^Required field missing^HL70357"
	case ackCode == AR:
		return "100^Segment sequence error^HL70357"
	}
	return "102^Data type error^HL70357"
}

// errLocation turns an issue path such as PID-3[2].1, or MRG(2)-1 for
// the second MRG, into an ERL: segment^sequence^field^repetition^component.
func errLocation(path string) string {
	seg, rest, ok := strings.Cut(path, "-")
	seq := "1"
	if name, n, isSeq := strings.Cut(seg, "("); isSeq && strings.HasSuffix(n, ")") && digits(n[:len(n)-1]) {
		seg, seq = name, n[:len(n)-1]
	}
	if !ok || len(seg) != 3 {
		return ""
	}
	field, rep, comp := rest, "", ""
	if i := strings.IndexAny(field, "[."); i >= 0 {
		field, rest = field[:i], field[i:]
		if strings.HasPrefix(rest, "[") {
			if j := strings.IndexByte(rest, ']'); j > 0 {
				rep, rest = rest[1:j], rest[j+1:]
			}
		}
		comp = strings.TrimPrefix(rest, ".")
	}
	if !digits(field) {
		return seg
	}
	loc := seg + "^" + seq + "^" + field
	if rep != "" || comp != "" {
		loc += "^" + orDefault(rep, "1")
	}
	if digits(comp) {
		loc += "^" + comp
	}
	return loc
}

// Acknowledge builds the acknowledgement of what Import made of a
// message, once the host has applied it: AR when it was rejected or the
// host could not store its writes for now (applyErr, whose text stays
// with the host: it is not sent back), AE when it has an error or the
// host refused its writes (applyErr a Refusal, whose Reason is sent
// back), AA otherwise.
func (im *Imported) Acknowledge(applyErr error, now time.Time) []byte {
	issues := im.Issues
	code := AA
	switch {
	case im.Rejected:
		code = AR
	case applyErr != nil:
		var refusal *Refusal
		if errors.As(applyErr, &refusal) {
			code = AE
			issues = append(issues[:len(issues):len(issues)], mappers.Errorf("store", "%s", refusal.Reason))
		} else {
			code = AR
			issues = append(issues[:len(issues):len(issues)], mappers.Errorf("store", "the message could not be stored now; send it again later"))
		}
	case im.Failed():
		code = AE
	}
	m := im.Message
	if m == nil {
		// A message refused for a later segment is still answered to its
		// sender with its control id (HL7 v2.5 2.9: MSA-2 echoes MSH-10).
		m = im.header
	}
	return ack(m, code, issues, im.missing, now)
}

// AcknowledgeTooLarge acknowledges a message longer than limit bytes, of
// which head is the start: AE, as the same message sent again is refused
// again, with an ERR 207 saying so. It is addressed from head's MSH, as
// the acknowledgement of a message refused for a later segment is, and to
// no one when that cannot be read.
func AcknowledgeTooLarge(head []byte, limit int, now time.Time) []byte {
	if end := bytes.IndexAny(head, "\r\n"); end >= 0 {
		head = head[:end]
	}
	issue := mappers.Errorf("message", "the message is longer than the %d bytes accepted; it is not to be sent again unchanged", limit)
	return ack(parseHeader(head), AE, []mappers.Issue{issue}, nil, now)
}
