package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// AddClient registers a backend-services client in the auth file at path,
// creating the file if there is none. A YAML file keeps its comments and
// layout; a JSON file is rewritten as indented JSON. The client's JWKS must
// be a readable file of public keys, or an https URL; a file is recorded
// relative to the auth file. The file is left unchanged on any error.
func AddClient(path string, c Client) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("auth file: %w", err)
	}
	cfg, err := Parse(old)
	if err != nil {
		return fmt.Errorf("auth file %s: %w", path, err)
	}
	for _, other := range cfg.Clients {
		if other.ID == c.ID {
			return fmt.Errorf("auth file %s: client %s is already registered", path, c.ID)
		}
	}
	if !isURL(c.JWKS) {
		if _, err := readPublicKeys(c.JWKS); err != nil {
			return err
		}
		c.JWKS = relativeTo(filepath.Dir(path), c.JWKS)
	}
	cfg.Clients = append(cfg.Clients, c)
	if err := cfg.check(); err != nil {
		return err
	}
	var updated []byte
	if trimmed := bytes.TrimSpace(old); len(trimmed) > 0 && trimmed[0] == '{' {
		updated, err = json.MarshalIndent(cfg, "", "  ")
		updated = append(updated, '\n')
	} else {
		updated, err = appendYAMLClient(old, c)
	}
	if err != nil {
		return fmt.Errorf("auth file %s: %w", path, err)
	}
	// What is written must read back as the configuration intended.
	if _, err := Parse(updated); err != nil {
		return fmt.Errorf("auth file %s: the edited file does not read back: %w", path, err)
	}
	return os.WriteFile(path, updated, 0o600)
}

// relativeTo writes p relative to dir when it can, else absolute.
func relativeTo(dir, p string) string {
	absDir, err1 := filepath.Abs(dir)
	absP, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return p
	}
	if rel, err := filepath.Rel(absDir, absP); err == nil {
		return rel
	}
	return absP
}

// appendYAMLClient adds c to the clients of a YAML document, keeping what
// is already written, comments included.
func appendYAMLClient(doc []byte, c Client) ([]byte, error) {
	item, err := yaml.MarshalWithOptions([]Client{c}, yaml.IndentSequence(true), yaml.Flow(false))
	if err != nil {
		return nil, err
	}
	file, err := parser.ParseBytes(doc, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	p, err := yaml.PathString("$.clients")
	if err != nil {
		return nil, err
	}
	if _, err := p.FilterFile(file); err != nil || len(bytes.TrimSpace(doc)) == 0 {
		// No clients yet: a new key at the end.
		out := strings.TrimRight(string(doc), "\n")
		if out != "" {
			out += "\n"
		}
		return []byte(out + "clients:\n" + string(item)), nil
	}
	if err := p.MergeFromReader(file, bytes.NewReader(item)); err != nil {
		return nil, err
	}
	return []byte(strings.TrimRight(file.String(), "\n") + "\n"), nil
}
