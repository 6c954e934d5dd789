package auth_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"carefhir/server/auth"
	"carefhir/server/auth/authtest"
)

func TestLoadYAMLAndJSON(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "auth.yaml")
	writeFile(t, yamlFile, `
audience: http://127.0.0.1:8080/fhir
issuers:
  - issuer: https://auth.example.nhs.uk
    jwks: keys/cis2.jwks.json
clients:
  - id: gp-system-b82617
    jwks: keys/gp-system.jwks.json
    scopes: [system/Patient.rs, system/Appointment.cruds]
policy: scopes
cors: [https://app.example.nhs.uk]
rate_limit: {per_second: 20, burst: 40}
token_lifetime: 10m
`)
	jsonFile := filepath.Join(dir, "auth.json")
	writeFile(t, jsonFile, `{"audience": "http://127.0.0.1:8080/fhir",
 "issuers": [{"issuer": "https://auth.example.nhs.uk", "jwks": "keys/cis2.jwks.json"}],
 "clients": [{"id": "gp-system-b82617", "jwks": "keys/gp-system.jwks.json", "scopes": ["system/Patient.rs", "system/Appointment.cruds"]}],
 "policy": "scopes", "cors": ["https://app.example.nhs.uk"], "rate_limit": {"per_second": 20, "burst": 40}, "token_lifetime": "10m"}`)
	for _, file := range []string{yamlFile, jsonFile} {
		cfg, err := auth.Load(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if cfg.Audience != "http://127.0.0.1:8080/fhir" || len(cfg.Clients) != 1 || cfg.Clients[0].Scopes[1] != "system/Appointment.cruds" ||
			cfg.RateLimit.PerSecond != 20 || cfg.TokenLifetime != 10*time.Minute || cfg.CORS[0] != "https://app.example.nhs.uk" {
			t.Errorf("%s: %+v", file, cfg)
		}
		if got := cfg.Path(cfg.Issuers[0].JWKS); got != filepath.Join(dir, "keys", "cis2.jwks.json") {
			t.Errorf("%s: jwks path %s, want it beside the auth file", file, got)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"unknown field", "audiance: http://x/fhir", "unknown field"},
		{"policy", "policy: everyone", "policy"},
		{"issuer URL", "issuers: [{issuer: not-a-url, jwks: k.json}]", "issuers[0].issuer"},
		{"plain http keys", "issuers: [{issuer: https://a.test, jwks: 'http://a.test/jwks'}]", "https only"},
		{"user scope for a client", "clients: [{id: gp, jwks: k.json, scopes: [user/Patient.rs]}]", "system/ scopes only"},
		{"malformed scope", "clients: [{id: gp, jwks: k.json, scopes: [system/Patient.xyz]}]", "clients[0].scopes"},
		{"duplicate client", "clients: [{id: gp, jwks: k.json, scopes: [system/*.rs]}, {id: gp, jwks: k.json, scopes: [system/*.rs]}]", "twice"},
		{"origin with a path", "cors: [https://app.test/page]", "cors[0]"},
		{"token lifetime", "token_lifetime: 3h", "token_lifetime"},
		{"token lifetime too short", "token_lifetime: 1ns", "token_lifetime: 1ns fails gte=1m: want at least 1m"},
		{"token lifetime negative", "token_lifetime: -5m", "token_lifetime: -5m0s fails gte=1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auth.Parse([]byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestAddClientKeepsTheFile(t *testing.T) {
	dir := t.TempDir()
	key := authtest.NewKey(t, jwa.RS384())
	jwks := authtest.WriteJWKS(t, dir, "gp.jwks.json", key)
	for _, tt := range []struct{ name, content string }{
		{"yaml with clients", "# trusted by the PCN\naudience: https://c.test/fhir # the API\nclients:\n  - id: first\n    jwks: gp.jwks.json\n    scopes: [system/*.rs]\npolicy: scopes\n"},
		{"yaml without clients", "# trusted by the PCN\naudience: https://c.test/fhir # the API\n"},
		{"json", `{"audience": "https://c.test/fhir"}`},
		{"no file", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if tt.content != "" {
				writeFile(t, path, tt.content)
			}
			c := auth.Client{ID: "gp-system-b82617", JWKS: jwks, Scopes: []string{"system/Patient.rs", "system/Appointment.cruds"}}
			if err := auth.AddClient(path, c); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if strings.HasPrefix(tt.content, "#") && !strings.Contains(string(b), "# trusted by the PCN") {
				t.Errorf("comment lost:\n%s", b)
			}
			cfg, err := auth.Load(path)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			last := cfg.Clients[len(cfg.Clients)-1]
			if last.ID != c.ID || last.JWKS != "gp.jwks.json" || strings.Join(last.Scopes, " ") != "system/Patient.rs system/Appointment.cruds" {
				t.Errorf("client %+v in\n%s", last, b)
			}
			if strings.Contains(tt.content, "first") && cfg.Clients[0].ID != "first" {
				t.Errorf("existing client lost:\n%s", b)
			}
			if err := auth.AddClient(path, c); err == nil || !strings.Contains(err.Error(), "already registered") {
				t.Errorf("adding it twice: %v", err)
			}
		})
	}
	private := filepath.Join(dir, "private.jwks.json")
	pb, _ := key.Private.(interface{ MarshalJSON() ([]byte, error) }).MarshalJSON()
	writeFile(t, private, `{"keys":[`+string(pb)+`]}`)
	err := auth.AddClient(filepath.Join(dir, "p.yaml"), auth.Client{ID: "x", JWKS: private, Scopes: []string{"system/*.rs"}})
	if err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("a private key file: %v", err)
	}
}

func TestRotateKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), auth.KeyringFile)
	start := time.Now()
	first, err := auth.OpenKeyring(path, start)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("keyring file: %v, %v; want mode 0600", info, err)
	}
	if err := auth.RotateKeys(path, start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rotated, err := auth.OpenKeyring(path, start.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := first.PublicKeys().Key(0)
	oldKid, _ := oldKey.KeyID()
	if rotated.PublicKeys().Len() != 2 {
		t.Fatalf("after a rotation: %d keys, want the new one and the old one", rotated.PublicKeys().Len())
	}
	if _, ok := rotated.PublicKeys().LookupKeyID(oldKid); !ok {
		t.Error("the retired key no longer verifies")
	}
	// Two hours on, nothing the old key signed is valid: it is gone.
	later, err := auth.OpenKeyring(path, start.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if later.PublicKeys().Len() != 1 {
		t.Errorf("two hours after the rotation: %d keys, want 1", later.PublicKeys().Len())
	}
}

// settings are SharedSettings in memory.
type settings map[string][]byte

func (s settings) Setting(_ context.Context, name string, initial []byte) ([]byte, error) {
	if _, ok := s[name]; !ok {
		s[name] = initial
	}
	return s[name], nil
}

func (s settings) ReplaceSetting(_ context.Context, name string, old, value []byte) error {
	if !bytes.Equal(s[name], old) {
		return errors.New("changed")
	}
	s[name] = value
	return nil
}

// The keyring shared in a database is first stored from the file the
// servers used before, so that the tokens it signed are still accepted,
// and read by each server thereafter.
func TestSharedKeyringTakesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), auth.KeyringFile)
	now := time.Now()
	fromFile, err := auth.OpenKeyring(path, now)
	if err != nil {
		t.Fatal(err)
	}
	shared := settings{}
	first, err := auth.OpenSharedKeyring(t.Context(), shared, path, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := auth.OpenSharedKeyring(t.Context(), shared, "", now)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fromFile.PublicKeys().Key(0)
	kid, _ := want.KeyID()
	for _, kr := range []*auth.Keyring{first, second} {
		if _, ok := kr.PublicKeys().LookupKeyID(kid); !ok || kr.PublicKeys().Len() != 1 {
			t.Errorf("shared keyring of %d keys, want the file's key alone", kr.PublicKeys().Len())
		}
	}
	if err := auth.RotateSharedKeys(t.Context(), shared, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rotated, err := auth.OpenSharedKeyring(t.Context(), shared, path, now.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rotated.PublicKeys().LookupKeyID(kid); !ok || rotated.PublicKeys().Len() != 2 {
		t.Errorf("after a rotation: %d keys, want a new one and the retired one", rotated.PublicKeys().Len())
	}
}
