// Package powercut is a SQLite VFS for tests that can lose power at any
// moment.
//
// It wraps the operating system's VFS: every call goes through to it, so a
// database opened through the VFS works as usual, and beside each file it
// keeps the image a power cut would leave, the file's contents as of its
// last fsync (xSync). Cut returns those images at one instant; written to an
// empty directory, they are the files a machine would find on restarting
// after losing power at that instant, every write that had not been fsynced
// dropped. (A real disk may also keep some of those writes, in any order;
// dropping all of them is the case that loses the most.)
//
// A file that was created and never fsynced does not survive a cut;
// deleting a file is taken as durable at once. The shared-memory wal-index
// (the -shm file) is not a file SQLite opens through the VFS and is never
// part of an image: SQLite rebuilds it from the WAL after a restart.
package powercut

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// FS is a registered VFS. Open a database through it with the DSN query
// parameter vfs=Name().
type FS struct {
	name   string
	handle uintptr   // of FS in the registry, the VFS's pAppData
	cname  uintptr   // C copies of name and of the sqlite3_vfs
	cvfs   uintptr   //
	base   uintptr   // the sqlite3_vfs it wraps
	tls    *libc.TLS // for registering and unregistering

	mu    sync.Mutex
	files map[string]*file // by path
	watch func(Event, func() Image)
}

// file is what a power cut would leave of one file, and what it has been
// told since its last fsync.
type file struct {
	durable []byte
	exists  bool     // it has been fsynced since it was created
	pending []change // writes and truncations since the last fsync, oldest first
}

// change is a write of data at off or, when truncate is set, a truncation
// to off bytes.
type change struct {
	off      int64
	data     []byte
	truncate bool
}

func (f *file) apply(c change) {
	if c.truncate {
		if c.off < int64(len(f.durable)) {
			f.durable = f.durable[:c.off]
		} else {
			f.durable = append(f.durable, make([]byte, c.off-int64(len(f.durable)))...)
		}
		return
	}
	if end := c.off + int64(len(c.data)); end > int64(len(f.durable)) {
		f.durable = append(f.durable, make([]byte, end-int64(len(f.durable)))...)
	}
	copy(f.durable[c.off:], c.data)
}

// Op is a kind of change to a file.
type Op int

// The operations an Event reports.
const (
	Write    Op = iota // a write has returned: it is in the page cache only
	Truncate           // a truncation has returned: the same
	Sync               // an fsync has returned: the file's image is now its contents
)

func (o Op) String() string {
	return [...]string{"write", "truncate", "sync"}[o]
}

// Event is one change to a file made through the VFS.
type Event struct {
	Path string
	Op   Op
	Off  int64 // where a write starts, or the size a truncation leaves
	Len  int   // the length of a write
}

// Image is what a power cut leaves: the contents of each file by base name.
type Image map[string][]byte

// WriteDir writes the files of im into dir, which must exist.
func (im Image) WriteDir(dir string) error {
	for name, data := range im {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("powercut: %w", err)
		}
	}
	return nil
}

// Name returns the name fs is registered under.
func (fs *FS) Name() string { return fs.name }

// Cut returns what a power cut at this instant would leave.
func (fs *FS) Cut() Image {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.cutLocked()
}

func (fs *FS) cutLocked() Image {
	im := Image{}
	for path, f := range fs.files {
		if f.exists {
			im[filepath.Base(path)] = append([]byte(nil), f.durable...)
		}
	}
	return im
}

// Watch has f called on every write, truncation and fsync, once it has
// returned, with nothing else changing meanwhile: calling cut there cuts the
// power at that instant (between that change and the next). f must not use
// fs or block on anything that writes through it. nil stops watching.
func (fs *FS) Watch(f func(e Event, cut func() Image)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.watch = f
}

// changed records c, made to path through the VFS, and tells the watcher.
func (fs *FS) changed(path string, c change, e Event) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.fileLocked(path)
	f.pending = append(f.pending, c)
	fs.notifyLocked(e)
}

// synced makes the first n pending changes of path durable: those made
// before its fsync began.
func (fs *FS) synced(path string, n int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.fileLocked(path)
	n = min(n, len(f.pending))
	for _, c := range f.pending[:n] {
		f.apply(c)
	}
	f.pending = append(f.pending[:0:0], f.pending[n:]...)
	f.exists = true
	fs.notifyLocked(Event{Path: path, Op: Sync})
}

// pendingCount returns how many changes of path are waiting for an fsync.
func (fs *FS) pendingCount(path string) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.fileLocked(path).pending)
}

func (fs *FS) notifyLocked(e Event) {
	if fs.watch != nil {
		fs.watch(e, fs.cutLocked)
	}
}

// fileLocked returns the image of path, a file that does not survive a cut
// until it is fsynced if it is new.
func (fs *FS) fileLocked(path string) *file {
	f := fs.files[path]
	if f == nil {
		f = &file{}
		fs.files[path] = f
	}
	return f
}

// opening starts keeping the image of path, which is about to be opened,
// unless it is already kept. A file already on disk is taken as durable as
// it is.
func (fs *FS) opening(path string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.files[path] == nil {
		data, err := os.ReadFile(path)
		fs.files[path] = &file{durable: data, exists: err == nil}
	}
}

// deleted forgets path.
func (fs *FS) deleted(path string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.files, path)
}

// openFile is a file open through the VFS.
type openFile struct {
	fs            *FS
	path          string // "" for a temporary file without a name, which is not kept
	deleteOnClose bool
}

// The VFS's objects as SQLite sees them. SQLite calls the VFS through C
// function pointers with C pointers only, so the Go objects behind them are
// found through handles: the VFS's pAppData, and a word in each open file.
// This registry is the one place the handles resolve, for the process as
// SQLite's own list of VFSes is.
var registry struct {
	next  atomic.Uintptr
	fss   sync.Map // handle → *FS
	files sync.Map // handle → *openFile
}

// fileHeader starts each sqlite3_file of the VFS; the wrapped VFS's own
// file follows it at headerSize.
type fileHeader struct {
	methods uintptr // sqlite3_file.pMethods
	handle  uintptr // of the openFile
}

// headerSize is the size of fileHeader rounded up, so that the wrapped
// file that follows is aligned for any field.
const headerSize = 16

// New registers a VFS that wraps the default one under a fresh name.
func New() (*FS, error) {
	tls := libc.NewTLS()
	base := sqlite3.Xsqlite3_vfs_find(tls, 0)
	if base == 0 {
		tls.Close()
		return nil, errors.New("powercut: no default VFS")
	}
	fs := &FS{tls: tls, base: base, files: map[string]*file{}, handle: registry.next.Add(1)}
	fs.name = fmt.Sprintf("powercut%d", fs.handle)
	var err error
	if fs.cname, err = libc.CString(fs.name); err != nil {
		tls.Close()
		return nil, fmt.Errorf("powercut: %w", err)
	}
	fs.cvfs = libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
	if fs.cvfs == 0 {
		libc.Xfree(tls, fs.cname)
		tls.Close()
		return nil, errors.New("powercut: out of memory")
	}
	v := at[sqlite3.Tsqlite3_vfs](fs.cvfs)
	*v = *at[sqlite3.Tsqlite3_vfs](base) // the calls that do not name a file go straight through
	v.FszOsFile = headerSize + v.FszOsFile
	v.FpNext = 0
	v.FzName = fs.cname
	v.FpAppData = fs.handle
	v.FxOpen = funcPtr(vfsOpen)
	v.FxDelete = funcPtr(vfsDelete)
	registry.fss.Store(fs.handle, fs)
	if rc := sqlite3.Xsqlite3_vfs_register(tls, fs.cvfs, 0); rc != sqlite3.SQLITE_OK {
		fs.free()
		return nil, fmt.Errorf("powercut: register VFS: SQLite error %d", rc)
	}
	return fs, nil
}

// Close unregisters fs. Close every database opened through it first.
func (fs *FS) Close() error {
	rc := sqlite3.Xsqlite3_vfs_unregister(fs.tls, fs.cvfs)
	fs.free()
	if rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("powercut: unregister VFS: SQLite error %d", rc)
	}
	return nil
}

func (fs *FS) free() {
	registry.fss.Delete(fs.handle)
	libc.Xfree(fs.tls, fs.cvfs)
	libc.Xfree(fs.tls, fs.cname)
	fs.tls.Close()
}

// methods are the sqlite3_io_methods of every file open through a VFS of
// this package: each forwards to the wrapped file's own.
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

func vfsOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	fs := fsOf(pVfs)
	path := libc.GoString(zName)
	if path != "" {
		fs.opening(path)
	}
	base := at[sqlite3.Tsqlite3_vfs](fs.base)
	rc := call[func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32](base.FxOpen)(tls, fs.base, zName, pFile+headerSize, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	h := registry.next.Add(1)
	registry.files.Store(h, &openFile{fs: fs, path: path, deleteOnClose: flags&sqlite3.SQLITE_OPEN_DELETEONCLOSE != 0})
	*at[fileHeader](pFile) = fileHeader{methods: uintptr(unsafe.Pointer(&methods)), handle: h}
	return rc
}

func vfsDelete(tls *libc.TLS, pVfs, zPath uintptr, syncDir int32) int32 {
	fs := fsOf(pVfs)
	base := at[sqlite3.Tsqlite3_vfs](fs.base)
	rc := call[func(*libc.TLS, uintptr, uintptr, int32) int32](base.FxDelete)(tls, fs.base, zPath, syncDir)
	if rc == sqlite3.SQLITE_OK || rc == sqlite3.SQLITE_IOERR_DELETE_NOENT {
		fs.deleted(libc.GoString(zPath))
	}
	return rc
}

func fileClose(tls *libc.TLS, pFile uintptr) int32 {
	h := at[fileHeader](pFile).handle
	of := openFileOf(pFile)
	rc := call[func(*libc.TLS, uintptr) int32](inner(pFile).FxClose)(tls, pFile+headerSize)
	if of.deleteOnClose && of.path != "" {
		of.fs.deleted(of.path)
	}
	registry.files.Delete(h)
	return rc
}

func fileRead(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	return call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](inner(pFile).FxRead)(tls, pFile+headerSize, pBuf, iAmt, iOfst)
}

func fileWrite(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	rc := call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](inner(pFile).FxWrite)(tls, pFile+headerSize, pBuf, iAmt, iOfst)
	if of := openFileOf(pFile); rc == sqlite3.SQLITE_OK && of.path != "" {
		data := append([]byte(nil), unsafe.Slice(at[byte](pBuf), iAmt)...)
		of.fs.changed(of.path, change{off: iOfst, data: data}, Event{Path: of.path, Op: Write, Off: iOfst, Len: int(iAmt)})
	}
	return rc
}

func fileTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	rc := call[func(*libc.TLS, uintptr, int64) int32](inner(pFile).FxTruncate)(tls, pFile+headerSize, size)
	if of := openFileOf(pFile); rc == sqlite3.SQLITE_OK && of.path != "" {
		of.fs.changed(of.path, change{off: size, truncate: true}, Event{Path: of.path, Op: Truncate, Off: size})
	}
	return rc
}

// fileSync makes durable the changes made before the fsync began; those
// made while it runs, by other connections, may or may not be on the disk
// after it, and are left pending.
func fileSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	of := openFileOf(pFile)
	var n int
	if of.path != "" {
		n = of.fs.pendingCount(of.path)
	}
	rc := call[func(*libc.TLS, uintptr, int32) int32](inner(pFile).FxSync)(tls, pFile+headerSize, flags)
	if rc == sqlite3.SQLITE_OK && of.path != "" {
		of.fs.synced(of.path, n)
	}
	return rc
}

func fileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	return call[func(*libc.TLS, uintptr, uintptr) int32](inner(pFile).FxFileSize)(tls, pFile+headerSize, pSize)
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

func fileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	return call[func(*libc.TLS, uintptr, int32, uintptr) int32](inner(pFile).FxFileControl)(tls, pFile+headerSize, op, pArg)
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
	return call[func(*libc.TLS, uintptr, int64, int32, uintptr) int32](inner(pFile).FxFetch)(tls, pFile+headerSize, iOfst, iAmt, pp)
}

func fileUnfetch(tls *libc.TLS, pFile uintptr, iOfst int64, p uintptr) int32 {
	return call[func(*libc.TLS, uintptr, int64, uintptr) int32](inner(pFile).FxUnfetch)(tls, pFile+headerSize, iOfst, p)
}

// fsOf returns the FS of a sqlite3_vfs of this package.
func fsOf(pVfs uintptr) *FS {
	fs, _ := registry.fss.Load(at[sqlite3.Tsqlite3_vfs](pVfs).FpAppData)
	return fs.(*FS)
}

// openFileOf returns the openFile of a sqlite3_file of this package.
func openFileOf(pFile uintptr) *openFile {
	of, _ := registry.files.Load(at[fileHeader](pFile).handle)
	return of.(*openFile)
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
