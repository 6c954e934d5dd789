// Package backup reads and writes carefhir's backup archives: a
// gzip-compressed tar holding manifest.json, which describes the backup,
// and then the database file it names, whose size and SHA-256 checksum the
// manifest records.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Format names the archive layout in every manifest.
const Format = "carefhir-backup/1"

// manifestName is the archive member holding the Manifest.
const manifestName = "manifest.json"

// Manifest describes a backup.
type Manifest struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	// Software is the version of the carefhir that made the backup.
	Software      string `json:"software"`
	Engine        string `json:"engine"`
	SchemaVersion int    `json:"schemaVersion"`
	// Resources counts the current, non-deleted resources by type, and
	// Versions every version stored.
	Resources map[string]int64 `json:"resources"`
	Versions  int64            `json:"versions"`
	// File is the name of the database file in the archive, Bytes its size
	// and SHA256 the hex SHA-256 checksum of its content.
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Write writes to w an archive of m and the file at path, filling in m's
// Format, File, Bytes and SHA256 from the file.
func Write(w io.Writer, m *Manifest, path, name string) error {
	sum, size, err := checksum(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	m.Format, m.File, m.Bytes, m.SHA256 = Format, name, size, sum
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(body)), ModTime: m.Created, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(body); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: m.Created, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// The file must not change between the checksum and the copy: it is a
	// snapshot no one writes.
	if n, err := io.Copy(tw, f); err != nil || n != size {
		return fmt.Errorf("backup: copy %s: %d of %d bytes: %v", path, n, size, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func checksum(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ErrChecksum reports an archive whose database does not match its
// manifest: it was damaged or changed after it was written.
var ErrChecksum = errors.New("backup: the database in the archive does not match its manifest's checksum")

// Extract reads an archive from r, writes its database file to the new
// file dst and returns its manifest. It fails, removing dst, unless the
// file's size and checksum are those of the manifest.
func Extract(r io.Reader, dst string) (m *Manifest, err error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("backup: not a carefhir backup archive: %w", err)
	}
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != manifestName {
		return nil, fmt.Errorf("backup: not a carefhir backup archive: no %s first", manifestName)
	}
	m = &Manifest{}
	if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(m); err != nil {
		return nil, fmt.Errorf("backup: read %s: %w", manifestName, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("backup: archive format %q, this program reads %q", m.Format, Format)
	}
	hdr, err = tr.Next()
	if err != nil || hdr.Name != m.File {
		return nil, fmt.Errorf("backup: the archive lacks the database file %q its manifest names", m.File)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("backup: %w", cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), tr)
	if err != nil {
		return nil, fmt.Errorf("backup: extract %s: %w", m.File, err)
	}
	if n != m.Bytes || hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return nil, fmt.Errorf("%w (%d bytes read, %d in the manifest)", ErrChecksum, n, m.Bytes)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}
