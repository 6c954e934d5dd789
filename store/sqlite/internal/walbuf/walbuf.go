// Package walbuf is a SQLite VFS that writes each transaction's WAL frames
// to the file in one system call instead of two per page.
//
// SQLite appends a transaction to the write-ahead log one frame at a time,
// a 24-byte header and a page, each its own write: a create that changes
// 40 pages of tables and indexes costs 80 writes, more CPU than the
// B-tree work that changed them. walbuf wraps another VFS and, for files
// SQLite opens as a WAL, keeps in memory the writes that append to the
// last one, and hands them to the wrapped file as one write
//
//   - at every write from the page of a commit frame on (the header of a
//     commit frame holds the database size after the commit, non-zero;
//     other frames hold zero) until the header of a frame that does not
//     commit: a commit frame's page, and the frames SQLite pads a commit
//     with to a sector boundary, are on the file when their write returns;
//   - before a write that does not append (SQLite rewrites in place a
//     page written earlier in the same transaction, and then the checksums
//     of the frames up to the commit frame's, after writing it; it writes
//     the log's header at its start), which then goes straight through;
//   - before the file is read, synced, truncated, sized, controlled or
//     closed;
//   - when 1 MiB is kept.
//
// So every byte reaches the wrapped file in the order SQLite wrote it, and
// everything a commit wrote is on the file when its last write returns,
// before SQLite publishes it in the wal-index: readers, in this process or
// another, find in the file every frame the index names, and a process
// killed after a commit returned leaves it whole. What a crash can lose is
// what it could before: the frames of a transaction whose commit had not
// returned. A commit's fsync (synchronous=FULL, or a checkpoint) follows
// the writes, as before. Calls to files other than WALs are forwarded
// unchanged.
package walbuf

import (
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"carefhir/store/sqlite/internal/vfsshim"
)

// maxKept is the most bytes a WAL file keeps before writing them: a
// transaction of thousands of pages is written in pieces of this size.
const maxKept = 1 << 20

// maxWrite is the most bytes handed to the wrapped file in one write. The
// unix VFS writes the low 17 bits of a length only (seekAndWriteFd: a
// write of 128 KiB would write nothing), and reports a short write as a
// full disk.
const maxWrite = 124 << 10

// frameHeaderSize is the size of a WAL frame's header.
const frameHeaderSize = 24

// VFS is a registered walbuf VFS.
type VFS = vfsshim.VFS

// Register registers a VFS under a fresh name that wraps the VFS named base
// ("" for the default one).
func Register(base string) (*VFS, error) {
	return vfsshim.Register("walbuf", base, vfsshim.Calls{Open: vfsOpen})
}

// files resolves the handle of an open WAL to what it keeps.
var files sync.Map // handle → *walFile

// walFile holds the writes to one open WAL not yet handed to the file. A
// sqlite3_file is used by one connection, and so one thread, at a time.
type walFile struct {
	buf uintptr // C memory: len bytes kept, room for capacity
	len int64
	cap int64
	off int64 // the file offset of the first byte kept
	end int64 // where the last write ended: a write there appends
	// committing is set by the header of a commit frame and cleared by the
	// header of any other: meanwhile every write is handed over at once.
	committing bool
}

// methods are the sqlite3_io_methods of every file open through a walbuf
// VFS: each forwards to the wrapped file's own, a WAL's after writing
// what it keeps where that matters.
var methods = func() sqlite3.Tsqlite3_io_methods {
	m := vfsshim.Methods()
	m.FxClose = vfsshim.FuncPtr(fileClose)
	m.FxRead = vfsshim.FuncPtr(fileRead)
	m.FxWrite = vfsshim.FuncPtr(fileWrite)
	m.FxTruncate = vfsshim.FuncPtr(fileTruncate)
	m.FxSync = vfsshim.FuncPtr(fileSync)
	m.FxFileSize = vfsshim.FuncPtr(fileSize)
	m.FxFileControl = vfsshim.FuncPtr(fileControl)
	m.FxFetch = vfsshim.FuncPtr(fileFetch)
	return m
}()

func vfsOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	rc := vfsshim.OpenBase(tls, pVfs, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	var h uintptr // 0: not a WAL
	if flags&sqlite3.SQLITE_OPEN_WAL != 0 {
		h = vfsshim.NewHandle()
		files.Store(h, &walFile{})
	}
	vfsshim.SetMethods(pFile, &methods, h)
	return rc
}

// walOf returns the walFile of pFile, nil when it is not a WAL.
func walOf(pFile uintptr) *walFile {
	h := vfsshim.HandleOf(pFile)
	if h == 0 {
		return nil
	}
	w, _ := files.Load(h)
	return w.(*walFile)
}

// flush hands what w keeps to the wrapped file, in writes of at most
// maxWrite bytes.
func (w *walFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	n, off := w.len, w.off
	// A failed write leaves nothing kept: SQLite reports the error to the
	// transaction, which rolls back, and writes its frames again.
	w.len = 0
	for done := int64(0); done < n; {
		k := min(n-done, maxWrite)
		rc := vfsshim.Write(tls, pFile, w.buf+uintptr(done), int32(k), off+done)
		if rc != sqlite3.SQLITE_OK {
			return rc
		}
		done += k
	}
	return sqlite3.SQLITE_OK
}

// keep appends data, to be written at off, to what w keeps.
func (w *walFile) keep(tls *libc.TLS, data uintptr, n int32, off int64) int32 {
	if w.len == 0 {
		w.off = off
	}
	if need := w.len + int64(n); need > w.cap {
		c := max(need, 2*w.cap, 64<<10)
		p := libc.Xrealloc(tls, w.buf, libc.Tsize_t(c))
		if p == 0 {
			return sqlite3.SQLITE_NOMEM
		}
		w.buf, w.cap = p, c
	}
	copy(unsafe.Slice(vfsshim.At[byte](w.buf+uintptr(w.len)), n), unsafe.Slice(vfsshim.At[byte](data), n))
	w.len += int64(n)
	return sqlite3.SQLITE_OK
}

func fileWrite(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	w := walOf(pFile)
	if w == nil {
		return vfsshim.Write(tls, pFile, pBuf, iAmt, iOfst)
	}
	if iOfst != w.end {
		// Not an append: a rewrite in place, or the log starting again.
		if rc := w.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
		w.end = iOfst + int64(iAmt)
		return vfsshim.Write(tls, pFile, pBuf, iAmt, iOfst)
	}
	if rc := w.keep(tls, pBuf, iAmt, iOfst); rc != sqlite3.SQLITE_OK {
		return rc
	}
	w.end = iOfst + int64(iAmt)
	if iAmt == frameHeaderSize {
		// A frame's header: its page follows.
		w.committing = commitFrame(unsafe.Slice(vfsshim.At[byte](pBuf), iAmt))
		return sqlite3.SQLITE_OK
	}
	if w.committing || w.len >= maxKept {
		return w.flush(tls, pFile)
	}
	return sqlite3.SQLITE_OK
}

// commitFrame reports whether a frame header is a commit frame's: its
// second word, the database's size in pages after the commit, is zero in
// every other frame.
func commitFrame(header []byte) bool {
	return header[4]|header[5]|header[6]|header[7] != 0
}

// flushFirst writes what a WAL keeps before a call that must see it.
func flushFirst(tls *libc.TLS, pFile uintptr) int32 {
	if w := walOf(pFile); w != nil {
		return w.flush(tls, pFile)
	}
	return sqlite3.SQLITE_OK
}

func fileClose(tls *libc.TLS, pFile uintptr) int32 {
	rc := flushFirst(tls, pFile)
	if w := walOf(pFile); w != nil {
		libc.Xfree(tls, w.buf)
		files.Delete(vfsshim.HandleOf(pFile))
	}
	if rc2 := vfsshim.Close(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}

func fileRead(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return vfsshim.Read(tls, pFile, pBuf, iAmt, iOfst)
}

func fileTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return vfsshim.Truncate(tls, pFile, size)
}

func fileSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return vfsshim.Sync(tls, pFile, flags)
}

func fileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return vfsshim.FileSize(tls, pFile, pSize)
}

func fileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return vfsshim.FileControl(tls, pFile, op, pArg)
}

func fileFetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return vfsshim.Fetch(tls, pFile, iOfst, iAmt, pp)
}
