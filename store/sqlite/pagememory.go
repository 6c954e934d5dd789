package sqlite

import (
	"encoding/binary"
	"fmt"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// pageSize is the size of the engine's database pages (SQLite's default,
// which Open does not change).
const pageSize = 4096

// UsePageMemory sets aside mib MiB outside the Go heap for the page caches
// of every SQLite connection the process opens (SQLITE_CONFIG_PAGECACHE), and
// must be called before the first connection is opened: it configures
// SQLite for the whole process, which only main may decide.
//
// Without it each cached page is a separate allocation of the allocator
// that modernc.org/libc gives SQLite, which maps memory in 64 KiB regions
// and hands empty ones back to the system. A reader whose next statement
// finds the database changed (after any write: the audit trail writes
// every 100 ms) empties its whole cache, and freeing and then allocating
// again a cache's pages one by one was a third of the CPU time of a
// caseload of 200 patients, most of it in system calls. Pages taken from
// the slab go back to it at no cost. When the slab is used up, pages are
// allocated one by one as before.
func UsePageMemory(mib int) error {
	if mib <= 0 {
		return nil
	}
	tls := libc.NewTLS()
	defer tls.Close()
	args := libc.NewVaListN(3)
	if args == 0 {
		return fmt.Errorf("sqlite: page memory: out of memory")
	}
	defer libc.Xfree(tls, args)

	// Each slot holds a page and the headers SQLite keeps beside it.
	hdr := libc.Xmalloc(tls, 8)
	if hdr == 0 {
		return fmt.Errorf("sqlite: page memory: out of memory")
	}
	defer libc.Xfree(tls, hdr)
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PCACHE_HDRSZ, libc.VaList(args, hdr)); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite: page memory: header size: code %d", rc)
	}
	slot := (pageSize + int(int32(binary.NativeEndian.Uint32(libc.GoBytes(hdr, 4)))) + 7) &^ 7
	slots := mib << 20 / slot

	// The slab lives as long as the process: SQLite keeps using it.
	slab := libc.Xmalloc(tls, libc.Tsize_t(slot*slots))
	if slab == 0 {
		return fmt.Errorf("sqlite: page memory: cannot allocate %d MiB", mib)
	}
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PAGECACHE, libc.VaList(args, slab, int32(slot), int32(slots))); rc != sqlite3.SQLITE_OK {
		libc.Xfree(tls, slab)
		if rc == sqlite3.SQLITE_MISUSE {
			return fmt.Errorf("sqlite: page memory: a connection is already open")
		}
		return fmt.Errorf("sqlite: page memory: code %d", rc)
	}
	return nil
}
