package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// KeyringFile is the name of the file, in the data directory, holding the
// private keys the server signs its access tokens with.
const KeyringFile = "auth-signing-keys.json"

// retiredKeyKept is how long a key still verifies after a rotation retired
// it: the longest token lifetime the auth file allows, plus the clock skew
// tolerated, so every token it signed expires first.
const retiredKeyKept = time.Hour + maxSkew

// Keyring is the server's token-signing keys: the current one, which
// signs, and those retired recently, which still verify.
type Keyring struct {
	current jwk.Key // private
	public  jwk.Set // every key kept, public halves
}

// keyringFile is the keyring as stored.
type keyringFile struct {
	Keys []storedKey `json:"keys"`
}

type storedKey struct {
	Created time.Time       `json:"created"`
	Retired *time.Time      `json:"retired,omitempty"`
	JWK     json.RawMessage `json:"jwk"`
}

// OpenKeyring reads the keyring at path, creating it with a new key when
// there is none.
func OpenKeyring(path string, now time.Time) (*Keyring, error) {
	kf, err := readKeyring(path)
	if errors.Is(err, fs.ErrNotExist) {
		kf = &keyringFile{}
		if err := kf.rotate(now); err != nil {
			return nil, err
		}
		if err := kf.write(path); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return kf.keyring(now)
}

// RotateKeys makes a new signing key current in the keyring at path
// (creating it if need be). The key it replaces keeps verifying until
// every token it signed has expired; keys retired longer ago are dropped.
// A running server picks up the new key when it restarts.
func RotateKeys(path string, now time.Time) error {
	kf, err := readKeyring(path)
	if errors.Is(err, fs.ErrNotExist) {
		kf = &keyringFile{}
	} else if err != nil {
		return err
	}
	if err := kf.rotate(now); err != nil {
		return err
	}
	return kf.write(path)
}

// SharedSettings keeps settings in the database that several servers
// share, such as MongoDB's (store/mongo), so that a token one of them
// signs is accepted by all.
type SharedSettings interface {
	// Setting returns the value of the setting name, storing initial
	// first when there is none; of processes starting together, all
	// return the value the first stored.
	Setting(ctx context.Context, name string, initial []byte) ([]byte, error)
	// ReplaceSetting replaces the value old of the setting name by value,
	// failing when the setting holds another by then.
	ReplaceSetting(ctx context.Context, name string, old, value []byte) error
}

// KeyringSetting names the keyring among the SharedSettings.
const KeyringSetting = "signing-keys"

// OpenSharedKeyring reads the keyring kept in settings, storing one first
// when there is none: the keyring of the file at path when there is one
// (the keys the servers signed with while they kept them in files), else
// one with a new key. Every server sharing the settings signs and
// verifies with the same keys.
func OpenSharedKeyring(ctx context.Context, settings SharedSettings, path string, now time.Time) (*Keyring, error) {
	kf, err := readKeyring(path)
	if errors.Is(err, fs.ErrNotExist) {
		kf = &keyringFile{}
		err = kf.rotate(now)
	}
	if err != nil {
		return nil, err
	}
	initial, err := kf.encode()
	if err != nil {
		return nil, err
	}
	stored, err := settings.Setting(ctx, KeyringSetting, initial)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	shared, err := decodeKeyring(stored, "setting "+KeyringSetting)
	if err != nil {
		return nil, err
	}
	return shared.keyring(now)
}

// RotateSharedKeys is RotateKeys for the keyring kept in settings: it
// fails, changing nothing, when another process changed the keyring
// meanwhile.
func RotateSharedKeys(ctx context.Context, settings SharedSettings, now time.Time) error {
	fresh := &keyringFile{}
	if err := fresh.rotate(now); err != nil {
		return err
	}
	initial, err := fresh.encode()
	if err != nil {
		return err
	}
	stored, err := settings.Setting(ctx, KeyringSetting, initial)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if bytes.Equal(stored, initial) {
		// There was none: the one just stored has a new key.
		return nil
	}
	kf, err := decodeKeyring(stored, "setting "+KeyringSetting)
	if err != nil {
		return err
	}
	if err := kf.rotate(now); err != nil {
		return err
	}
	rotated, err := kf.encode()
	if err != nil {
		return err
	}
	if err := settings.ReplaceSetting(ctx, KeyringSetting, stored, rotated); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	return nil
}

func readKeyring(path string) (*keyringFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return decodeKeyring(b, path)
}

// decodeKeyring decodes a keyring as stored, read from where.
func decodeKeyring(b []byte, where string) (*keyringFile, error) {
	var kf keyringFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("signing keys %s: %w", where, err)
	}
	return &kf, nil
}

// encode returns the keyring as stored.
func (kf *keyringFile) encode() ([]byte, error) {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return append(b, '\n'), nil
}

// rotate retires the current key and puts a new P-256 key first, dropping
// keys retired long enough ago that nothing they signed is still valid.
func (kf *keyringFile) rotate(now time.Time) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("signing keys: generate: %w", err)
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if err := key.Set(jwk.KeyUsageKey, "sig"); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	raw, err := json.Marshal(key)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	kept := []storedKey{{Created: now.UTC(), JWK: raw}}
	for _, k := range kf.Keys {
		if k.Retired == nil {
			t := now.UTC()
			k.Retired = &t
		}
		if now.Sub(*k.Retired) < retiredKeyKept {
			kept = append(kept, k)
		}
	}
	kf.Keys = kept
	return nil
}

// write replaces the file at path, readable by its owner only.
func (kf *keyringFile) write(path string) error {
	b, err := kf.encode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signing-keys-*")
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("signing keys: %w", err)
	}
	// Synced before the rename, and the directory after it: a power cut
	// must leave the old keyring or the new one, never an empty file that
	// the next start refuses.
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if err := errors.Join(dir.Sync(), dir.Close()); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	return nil
}

// keyring parses the stored keys still in use at now.
func (kf *keyringFile) keyring(now time.Time) (*Keyring, error) {
	kr := &Keyring{public: jwk.NewSet()}
	for i, k := range kf.Keys {
		if k.Retired != nil && now.Sub(*k.Retired) >= retiredKeyKept {
			continue
		}
		key, err := jwk.ParseKey(k.JWK)
		if err != nil {
			return nil, fmt.Errorf("signing keys: key %d: %w", i, err)
		}
		if k.Retired == nil && kr.current == nil {
			kr.current = key
		}
		pub, err := key.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("signing keys: key %d: %w", i, err)
		}
		if err := kr.public.AddKey(pub); err != nil {
			return nil, fmt.Errorf("signing keys: key %d: %w", i, err)
		}
	}
	if kr.current == nil {
		return nil, errors.New("signing keys: no current key: run carefhir keys rotate")
	}
	return kr, nil
}

// PublicKeys returns the public halves of the keys that verify the
// server's tokens, as published at the JWKS endpoint.
func (kr *Keyring) PublicKeys() jwk.Set { return kr.public }
