package access

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"carefhir/store"
)

// cursorSeal encrypts and authenticates the engine's cursors of pages the
// access layer filtered, of histories and searches. An engine's cursor is
// the position of the last version of its page (its type, id, version and
// time, or a search's sort values; with MongoDB, the total too), which may
// be a version the principal may not read: sealed, it tells the client
// nothing, and a cursor the client forged or altered does not open. The
// key lives in the process, so such cursors are good until the server
// stops, on the server that made them.
type cursorSeal struct {
	aead cipher.AEAD
}

func newCursorSeal() *cursorSeal {
	// crypto/rand.Read never fails (it panics on a broken system), and
	// AES-256-GCM accepts a 32-byte key.
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("access: cursor key: %v", err))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("access: cursor key: %v", err))
	}
	return &cursorSeal{aead: aead}
}

// close seals cursor for a history or search of level.
func (s *cursorSeal) close(cursor, level string) string {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	sealed := s.aead.Seal(nonce, nonce, []byte(cursor), []byte(level))
	return base64.RawURLEncoding.EncodeToString(sealed)
}

// open returns the engine's cursor sealed in sealed for a history or
// search of level, or store.ErrBadCursor.
func (s *cursorSeal) open(sealed, level string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", store.ErrBadCursor
	}
	n := s.aead.NonceSize()
	cursor, err := s.aead.Open(nil, b[:n], b[n:], []byte(level))
	if err != nil {
		return "", store.ErrBadCursor
	}
	return string(cursor), nil
}
