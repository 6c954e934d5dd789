// Package walbuf is a SQLite VFS that writes each transaction's WAL frames
// to the file in one system call instead of two per page.
//
// SQLite appends a transaction to the write-ahead log one frame at a time,
// a 24-byte header and a page, each its own write: a create that changes
// 40 pages of tables and indexes costs 80 writes, more CPU than the
// B-tree work that changed them. walbuf wraps another VFS and, for files
// SQLite opens as a WAL, keeps the writes that follow one another in memory
// and hands them to the wrapped file as one write when
//
//   - the page of a commit frame has been written (the header of a commit
//     frame holds the database size after the commit, non-zero; other
//     frames hold zero),
//   - a write does not follow the ones kept (SQLite rewrites a frame of the
//     same transaction in place),
//   - the file is read, synced, truncated, sized, controlled or closed,
//   - or 1 MiB is kept.
//
// So every byte reaches the wrapped file in the order SQLite wrote it, and
// a transaction's frames are all there before SQLite publishes them in the
// wal-index, which it does after the last frame's write returns: readers,
// in this process or another, find in the file every frame the index
// names. What a crash can lose is what it could before: the frames of a
// transaction that had not returned from its commit. A commit's fsync
// (synchronous=FULL, or a checkpoint) follows the write, as before.
// Files other than WALs are not touched.
package walbuf

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
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
type VFS struct {
	name   string
	handle uintptr   // the sqlite3_vfs's pAppData
	cname  uintptr   // C copies of name and of the sqlite3_vfs
	cvfs   uintptr   //
	base   uintptr   // the sqlite3_vfs it wraps
	tls    *libc.TLS // for registering and unregistering
}

// registry resolves the handles SQLite hands back through C to the Go
// objects behind them: SQLite's list of VFSes is the process's, and so is
// this.
var registry struct {
	next  atomic.Uintptr
	vfses sync.Map // handle → *VFS
	files sync.Map // handle → *walFile
}

// fileHeader starts each sqlite3_file of the VFS; the wrapped VFS's own
// file follows it at headerSize.
type fileHeader struct {
	methods uintptr // sqlite3_file.pMethods
	handle  uintptr // of the walFile; 0 for a file that is not a WAL
}

// headerSize is the size of fileHeader rounded up, so that the wrapped
// file that follows is aligned for any field.
const headerSize = 16

// Register registers a VFS under a fresh name that wraps the VFS named base
// ("" for the default one).
func Register(base string) (*VFS, error) {
	tls := libc.NewTLS()
	var cbase uintptr
	if base != "" {
		var err error
		if cbase, err = libc.CString(base); err != nil {
			tls.Close()
			return nil, fmt.Errorf("walbuf: %w", err)
		}
		defer libc.Xfree(tls, cbase)
	}
	pbase := sqlite3.Xsqlite3_vfs_find(tls, cbase)
	if pbase == 0 {
		tls.Close()
		return nil, fmt.Errorf("walbuf: no VFS %q", base)
	}
	v := &VFS{tls: tls, base: pbase, handle: registry.next.Add(1)}
	v.name = fmt.Sprintf("walbuf%d", v.handle)
	var err error
	if v.cname, err = libc.CString(v.name); err != nil {
		tls.Close()
		return nil, fmt.Errorf("walbuf: %w", err)
	}
	v.cvfs = libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
	if v.cvfs == 0 {
		libc.Xfree(tls, v.cname)
		tls.Close()
		return nil, errors.New("walbuf: out of memory")
	}
	c := at[sqlite3.Tsqlite3_vfs](v.cvfs)
	// The calls that neither name a file nor read the VFS they are given
	// (randomness, time, sleep…) go straight to the wrapped VFS's own;
	// those that name a file are handed the wrapped VFS.
	*c = *at[sqlite3.Tsqlite3_vfs](pbase)
	c.FszOsFile = headerSize + c.FszOsFile
	c.FpNext = 0
	c.FzName = v.cname
	c.FpAppData = v.handle
	c.FxOpen = funcPtr(vfsOpen)
	c.FxDelete = funcPtr(vfsDelete)
	c.FxAccess = funcPtr(vfsAccess)
	c.FxFullPathname = funcPtr(vfsFullPathname)
	registry.vfses.Store(v.handle, v)
	if rc := sqlite3.Xsqlite3_vfs_register(tls, v.cvfs, 0); rc != sqlite3.SQLITE_OK {
		v.free()
		return nil, fmt.Errorf("walbuf: register VFS: SQLite error %d", rc)
	}
	return v, nil
}

// Name returns the name to open a database with (the DSN parameter vfs).
func (v *VFS) Name() string { return v.name }

// Close unregisters v. Close every database opened through it first.
func (v *VFS) Close() error {
	rc := sqlite3.Xsqlite3_vfs_unregister(v.tls, v.cvfs)
	v.free()
	if rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("walbuf: unregister VFS: SQLite error %d", rc)
	}
	return nil
}

func (v *VFS) free() {
	registry.vfses.Delete(v.handle)
	libc.Xfree(v.tls, v.cvfs)
	libc.Xfree(v.tls, v.cname)
	v.tls.Close()
}

// walFile holds the writes to one open WAL not yet handed to the file. A
// sqlite3_file is used by one connection, and so one thread, at a time.
type walFile struct {
	buf  uintptr // C memory: len bytes kept, room for capacity
	len  int64
	cap  int64
	off  int64 // the file offset of the first byte kept
	sync bool  // the page of a commit frame is next: write everything after it
}

// methods are the sqlite3_io_methods of every file open through the VFS:
// each forwards to the wrapped file's own, a WAL's after writing what it
// keeps where that matters.
var methods = sqlite3.Tsqlite3_io_methods{
	FiVersion:               3,
	FxClose:                 funcPtr(fileClose),
	FxRead:                  funcPtr(fileRead),
	FxWrite:                 funcPtr(fileWrite),
	FxTruncate:              funcPtr(fileTruncate),
	FxSync:                  funcPtr(fileSync),
	FxFileSize:              funcPtr(fileSize),
	FxLock:                  funcPtr(fileLock),
	FxUnlock:                funcPtr(fileUnlock),
	FxCheckReservedLock:     funcPtr(fileCheckReservedLock),
	FxFileControl:           funcPtr(fileControl),
	FxSectorSize:            funcPtr(fileSectorSize),
	FxDeviceCharacteristics: funcPtr(fileDeviceCharacteristics),
	FxShmMap:                funcPtr(fileShmMap),
	FxShmLock:               funcPtr(fileShmLock),
	FxShmBarrier:            funcPtr(fileShmBarrier),
	FxShmUnmap:              funcPtr(fileShmUnmap),
	FxFetch:                 funcPtr(fileFetch),
	FxUnfetch:               funcPtr(fileUnfetch),
}

// vfsOf returns the VFS of a sqlite3_vfs of this package.
func vfsOf(pVfs uintptr) *VFS {
	v, _ := registry.vfses.Load(at[sqlite3.Tsqlite3_vfs](pVfs).FpAppData)
	return v.(*VFS)
}

func vfsDelete(tls *libc.TLS, pVfs, zPath uintptr, syncDir int32) int32 {
	v := vfsOf(pVfs)
	return call[func(*libc.TLS, uintptr, uintptr, int32) int32](at[sqlite3.Tsqlite3_vfs](v.base).FxDelete)(tls, v.base, zPath, syncDir)
}

func vfsAccess(tls *libc.TLS, pVfs, zPath uintptr, flags int32, pResOut uintptr) int32 {
	v := vfsOf(pVfs)
	return call[func(*libc.TLS, uintptr, uintptr, int32, uintptr) int32](at[sqlite3.Tsqlite3_vfs](v.base).FxAccess)(tls, v.base, zPath, flags, pResOut)
}

func vfsFullPathname(tls *libc.TLS, pVfs, zPath uintptr, nOut int32, zOut uintptr) int32 {
	v := vfsOf(pVfs)
	return call[func(*libc.TLS, uintptr, uintptr, int32, uintptr) int32](at[sqlite3.Tsqlite3_vfs](v.base).FxFullPathname)(tls, v.base, zPath, nOut, zOut)
}

func vfsOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	v := vfsOf(pVfs)
	base := at[sqlite3.Tsqlite3_vfs](v.base)
	rc := call[func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32](base.FxOpen)(tls, v.base, zName, pFile+headerSize, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK {
		// SQLite closes a file whose open failed only if pMethods is set.
		*at[fileHeader](pFile) = fileHeader{}
		return rc
	}
	var h uintptr
	if flags&sqlite3.SQLITE_OPEN_WAL != 0 {
		h = registry.next.Add(1)
		registry.files.Store(h, &walFile{})
	}
	*at[fileHeader](pFile) = fileHeader{methods: uintptr(unsafe.Pointer(&methods)), handle: h}
	return rc
}

// walOf returns the walFile of pFile, nil when it is not a WAL.
func walOf(pFile uintptr) *walFile {
	h := at[fileHeader](pFile).handle
	if h == 0 {
		return nil
	}
	w, _ := registry.files.Load(h)
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
		rc := call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](inner(pFile).FxWrite)(tls, pFile+headerSize, w.buf+uintptr(done), int32(k), off+done)
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
	copy(unsafe.Slice(at[byte](w.buf+uintptr(w.len)), n), unsafe.Slice(at[byte](data), n))
	w.len += int64(n)
	return sqlite3.SQLITE_OK
}

func fileWrite(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	w := walOf(pFile)
	if w == nil {
		return call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](inner(pFile).FxWrite)(tls, pFile+headerSize, pBuf, iAmt, iOfst)
	}
	if w.len > 0 && iOfst != w.off+w.len {
		if rc := w.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if rc := w.keep(tls, pBuf, iAmt, iOfst); rc != sqlite3.SQLITE_OK {
		return rc
	}
	switch {
	case w.sync:
		w.sync = false
		return w.flush(tls, pFile)
	case iAmt == frameHeaderSize && commitFrame(unsafe.Slice(at[byte](pBuf), iAmt)):
		w.sync = true
	case w.len >= maxKept:
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
		w.sync = false
		return w.flush(tls, pFile)
	}
	return sqlite3.SQLITE_OK
}

func fileClose(tls *libc.TLS, pFile uintptr) int32 {
	rc := flushFirst(tls, pFile)
	if h := at[fileHeader](pFile).handle; h != 0 {
		w := walOf(pFile)
		libc.Xfree(tls, w.buf)
		registry.files.Delete(h)
	}
	if rc2 := call[func(*libc.TLS, uintptr) int32](inner(pFile).FxClose)(tls, pFile+headerSize); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}

func fileRead(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](inner(pFile).FxRead)(tls, pFile+headerSize, pBuf, iAmt, iOfst)
}

func fileTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, int64) int32](inner(pFile).FxTruncate)(tls, pFile+headerSize, size)
}

func fileSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, int32) int32](inner(pFile).FxSync)(tls, pFile+headerSize, flags)
}

func fileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, uintptr) int32](inner(pFile).FxFileSize)(tls, pFile+headerSize, pSize)
}

func fileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, int32, uintptr) int32](inner(pFile).FxFileControl)(tls, pFile+headerSize, op, pArg)
}

func fileLock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	return call[func(*libc.TLS, uintptr, int32) int32](inner(pFile).FxLock)(tls, pFile+headerSize, lock)
}

func fileUnlock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	return call[func(*libc.TLS, uintptr, int32) int32](inner(pFile).FxUnlock)(tls, pFile+headerSize, lock)
}

func fileCheckReservedLock(tls *libc.TLS, pFile, pResOut uintptr) int32 {
	return call[func(*libc.TLS, uintptr, uintptr) int32](inner(pFile).FxCheckReservedLock)(tls, pFile+headerSize, pResOut)
}

func fileSectorSize(tls *libc.TLS, pFile uintptr) int32 {
	return call[func(*libc.TLS, uintptr) int32](inner(pFile).FxSectorSize)(tls, pFile+headerSize)
}

func fileDeviceCharacteristics(tls *libc.TLS, pFile uintptr) int32 {
	return call[func(*libc.TLS, uintptr) int32](inner(pFile).FxDeviceCharacteristics)(tls, pFile+headerSize)
}

func fileShmMap(tls *libc.TLS, pFile uintptr, iPg, pgsz, bExtend int32, pp uintptr) int32 {
	return call[func(*libc.TLS, uintptr, int32, int32, int32, uintptr) int32](inner(pFile).FxShmMap)(tls, pFile+headerSize, iPg, pgsz, bExtend, pp)
}

func fileShmLock(tls *libc.TLS, pFile uintptr, offset, n, flags int32) int32 {
	return call[func(*libc.TLS, uintptr, int32, int32, int32) int32](inner(pFile).FxShmLock)(tls, pFile+headerSize, offset, n, flags)
}

func fileShmBarrier(tls *libc.TLS, pFile uintptr) {
	call[func(*libc.TLS, uintptr)](inner(pFile).FxShmBarrier)(tls, pFile+headerSize)
}

func fileShmUnmap(tls *libc.TLS, pFile uintptr, deleteFlag int32) int32 {
	return call[func(*libc.TLS, uintptr, int32) int32](inner(pFile).FxShmUnmap)(tls, pFile+headerSize, deleteFlag)
}

func fileFetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	if rc := flushFirst(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, int64, int32, uintptr) int32](inner(pFile).FxFetch)(tls, pFile+headerSize, iOfst, iAmt, pp)
}

func fileUnfetch(tls *libc.TLS, pFile uintptr, iOfst int64, p uintptr) int32 {
	return call[func(*libc.TLS, uintptr, int64, uintptr) int32](inner(pFile).FxUnfetch)(tls, pFile+headerSize, iOfst, p)
}

// inner returns the methods of the wrapped file inside a sqlite3_file of
// this package.
func inner(pFile uintptr) *sqlite3.Tsqlite3_io_methods {
	return at[sqlite3.Tsqlite3_io_methods](at[sqlite3.Tsqlite3_file](pFile + headerSize).FpMethods)
}

// at returns the C memory at p as a *T. (C memory does not move and is not
// the Go collector's.)
func at[T any](p uintptr) *T {
	return (*T)(*(*unsafe.Pointer)(unsafe.Pointer(&p)))
}

// funcPtr returns a Go function as the C function pointer
// modernc.org/libc's translated C calls: the pointer to its closure, static
// for a top-level function.
func funcPtr(f any) uintptr {
	return (*[2]uintptr)(unsafe.Pointer(&f))[1]
}

// call returns the function a C function pointer stands for, the reverse of
// funcPtr, as F, which must be its exact signature.
func call[F any](fp uintptr) F {
	return *(*F)(unsafe.Pointer(&fp))
}
