package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteExtract(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	content := bytes.Repeat([]byte("carefhir "), 1000)
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Created: time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC), Engine: "sqlite", SchemaVersion: 3, Resources: map[string]int64{"Patient": 2}, Versions: 3}
	var archive bytes.Buffer
	if err := Write(&archive, m, src, "carefhir.db"); err != nil {
		t.Fatal(err)
	}
	if m.Format != Format || m.Bytes != int64(len(content)) || len(m.SHA256) != 64 {
		t.Errorf("manifest after Write: %+v", m)
	}
	got, err := Extract(bytes.NewReader(archive.Bytes()), filepath.Join(dir, "out.db"))
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != m.SHA256 || got.SchemaVersion != 3 || got.Resources["Patient"] != 2 || !got.Created.Equal(m.Created) {
		t.Errorf("manifest read back: %+v, want %+v", got, m)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out.db")); !bytes.Equal(b, content) {
		t.Errorf("extracted file differs from the original")
	}
	if _, err := Extract(bytes.NewReader(archive.Bytes()), filepath.Join(dir, "out.db")); err == nil {
		t.Errorf("Extract over an existing file succeeded")
	}
}

// archiveOf builds an archive of a manifest and a file's content as given,
// so that they can disagree.
func archiveOf(t *testing.T, m Manifest, content []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	body, _ := json.Marshal(m)
	for _, f := range []struct {
		name string
		data []byte
	}{{manifestName, body}, {m.File, content}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func TestExtractRefuses(t *testing.T) {
	good := Manifest{Format: Format, File: "carefhir.db", Bytes: 5, SHA256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"} // "hello"
	tests := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"not an archive", []byte("not an archive"), "not a carefhir backup archive"},
		{"content changed", archiveOf(t, good, []byte("jello")), "does not match"},
		{"content cut short", archiveOf(t, good, []byte("hell")), "does not match"},
		{"another format", archiveOf(t, Manifest{Format: "carefhir-backup/9", File: "carefhir.db"}, []byte("hello")), "archive format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out.db")
			_, err := Extract(bytes.NewReader(tt.archive), dst)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Extract: %v, want an error containing %q", err, tt.want)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused Extract left %s", dst)
			}
		})
	}
	if _, err := Extract(bytes.NewReader(archiveOf(t, good, []byte("hello"))), filepath.Join(t.TempDir(), "ok.db")); err != nil {
		t.Errorf("Extract of a matching archive: %v", err)
	}
}
