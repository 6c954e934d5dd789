package sqlite

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"carefhir/store"
)

// TestMain gives the engine's tests the page memory that carefhir's main
// gives the server.
func TestMain(m *testing.M) {
	if err := UsePageMemory(32); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// pageMemoryUsed returns how many slots of the page memory hold pages.
func pageMemoryUsed(t *testing.T) int64 {
	t.Helper()
	tls := libc.NewTLS()
	defer tls.Close()
	out := libc.Xmalloc(tls, 16)
	defer libc.Xfree(tls, out)
	if rc := sqlite3.Xsqlite3_status64(tls, sqlite3.SQLITE_STATUS_PAGECACHE_USED, out, out+8, 0); rc != sqlite3.SQLITE_OK {
		t.Fatalf("sqlite3_status64: code %d", rc)
	}
	return int64(binary.NativeEndian.Uint64(libc.GoBytes(out, 8)))
}

func TestPageMemory(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 200 {
		w := &store.Write{Type: "Patient", ID: fmt.Sprintf("p%d", i), LastUpdated: time.Now(),
			JSON: []byte(`{"resourceType":"Patient","id":"p` + fmt.Sprint(i) + `","gender":"` + strings.Repeat("x", 500) + `"}`)}
		if err := s.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		v, err := s.Read(t.Context(), "Patient", fmt.Sprintf("p%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(v.JSON), strings.Repeat("x", 500)) {
			t.Fatalf("Patient/p%d read back as %s", i, v.JSON)
		}
	}
	if n := pageMemoryUsed(t); n == 0 {
		t.Error("no page is cached in the page memory")
	}
	err = UsePageMemory(1)
	if err == nil || !strings.Contains(err.Error(), "already open") {
		t.Errorf("UsePageMemory with a connection open: %v, want an error saying a connection is already open", err)
	}
}
