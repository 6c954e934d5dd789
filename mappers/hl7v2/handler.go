package hl7v2

import (
	"context"
	"sync"
	"time"
)

// Seen remembers the acknowledgements sent, so that a message sent again
// (a sender that did not get the acknowledgement retries with the same
// control id) is acknowledged again without being applied twice. The host
// supplies it; it should survive restarts for as long as senders retry.
type Seen interface {
	// Lookup returns the acknowledgement sent for key, and whether one
	// was; a Seen that knows only that the message was applied returns
	// a nil acknowledgement, and the message is acknowledged anew.
	Lookup(ctx context.Context, key string) (ack []byte, ok bool, err error)
	// Remember records the acknowledgement sent for key.
	Remember(ctx context.Context, key string, ack []byte) error
}

// Apply stores the writes of an imported message (its Bundle, a
// transaction). The host supplies it.
type Apply func(ctx context.Context, im *Imported) error

// Handler returns the function an MLLP listener calls with each message:
// it imports the message, applies it when it has no errors, and returns
// the acknowledgement. A message whose sender (MSH-3, MSH-4) and control
// id (MSH-10) were seen before gets the acknowledgement it got then,
// without being applied again; only acknowledgements of messages applied
// (AA) are remembered, so a message refused or not stored can be sent
// again once fixed. now stamps the acknowledgements.
func Handler(ctx context.Context, apply Apply, seen Seen, now func() time.Time) func(msg []byte) []byte {
	return func(msg []byte) []byte {
		im := Import(msg)
		if im.Message == nil {
			return im.Acknowledge(nil, now())
		}
		key := SeenKey(im.Message)
		if ack, ok, err := seen.Lookup(ctx, key); err == nil && ok {
			if ack == nil {
				// Seen without the acknowledgement sent (ReceiptSeen).
				ack = im.Acknowledge(nil, now())
			}
			return ack
		} else if err != nil {
			return im.Acknowledge(err, now())
		}
		if im.Rejected || im.Failed() {
			return im.Acknowledge(nil, now())
		}
		err := apply(ctx, im)
		ack := im.Acknowledge(err, now())
		if err == nil {
			// Failing to remember only means a retry is applied again,
			// which conditional updates make harmless.
			_ = seen.Remember(ctx, key, ack)
		}
		return ack
	}
}

// SeenKey is the key of a message in Seen: its sending application,
// sending facility and control id, since control ids are unique only per
// sender.
func SeenKey(m *Message) string {
	msh := m.Segments[0]
	return msh.Get(3, 1) + "|" + msh.Get(4, 1) + "|" + msh.Get(10, 1)
}

// MemorySeen is a Seen held in memory, for tests and for a listener that
// need not remember across restarts. It keeps the last Max keys (all when
// Max is 0).
type MemorySeen struct {
	Max   int
	mu    sync.Mutex
	acks  map[string][]byte
	order []string
}

// Lookup implements Seen.
func (s *MemorySeen) Lookup(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ack, ok := s.acks[key]
	return ack, ok, nil
}

// Remember implements Seen.
func (s *MemorySeen) Remember(_ context.Context, key string, ack []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks == nil {
		s.acks = map[string][]byte{}
	}
	if _, ok := s.acks[key]; !ok {
		s.order = append(s.order, key)
	}
	s.acks[key] = ack
	if s.Max > 0 && len(s.order) > s.Max {
		delete(s.acks, s.order[0])
		s.order = s.order[1:]
	}
	return nil
}
