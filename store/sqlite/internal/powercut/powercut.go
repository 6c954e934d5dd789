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
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"carefhir/store/sqlite/internal/vfsshim"
)

// FS is a registered VFS. Open a database through it with the DSN query
// parameter vfs=Name().
type FS struct {
	vfs *vfsshim.VFS

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
func (fs *FS) Name() string { return fs.vfs.Name() }

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

// The Go objects behind the VFSes and files of this package, by handle
// (see vfsshim).
var registry struct {
	fss   sync.Map // handle → *FS
	files sync.Map // handle → *openFile
}

// New registers a VFS that wraps the default one under a fresh name.
func New() (*FS, error) {
	v, err := vfsshim.Register("powercut", "", vfsshim.Calls{Open: vfsOpen, Delete: vfsDelete})
	if err != nil {
		return nil, err
	}
	fs := &FS{vfs: v, files: map[string]*file{}}
	registry.fss.Store(v.Handle(), fs)
	return fs, nil
}

// Close unregisters fs. Close every database opened through it first.
func (fs *FS) Close() error {
	registry.fss.Delete(fs.vfs.Handle())
	return fs.vfs.Close()
}

// methods are the sqlite3_io_methods of every file open through a VFS of
// this package: each forwards to the wrapped file's own, and those that
// change a file record the change.
var methods = func() sqlite3.Tsqlite3_io_methods {
	m := vfsshim.Methods()
	m.FxClose = vfsshim.FuncPtr(fileClose)
	m.FxWrite = vfsshim.FuncPtr(fileWrite)
	m.FxTruncate = vfsshim.FuncPtr(fileTruncate)
	m.FxSync = vfsshim.FuncPtr(fileSync)
	return m
}()

func vfsOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	fs := fsOf(pVfs)
	path := libc.GoString(zName)
	if path != "" {
		fs.opening(path)
	}
	rc := vfsshim.OpenBase(tls, pVfs, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	h := vfsshim.NewHandle()
	registry.files.Store(h, &openFile{fs: fs, path: path, deleteOnClose: flags&sqlite3.SQLITE_OPEN_DELETEONCLOSE != 0})
	vfsshim.SetMethods(pFile, &methods, h)
	return rc
}

func vfsDelete(tls *libc.TLS, pVfs, zPath uintptr, syncDir int32) int32 {
	fs := fsOf(pVfs)
	rc := vfsshim.DeleteBase(tls, pVfs, zPath, syncDir)
	if rc == sqlite3.SQLITE_OK || rc == sqlite3.SQLITE_IOERR_DELETE_NOENT {
		fs.deleted(libc.GoString(zPath))
	}
	return rc
}

func fileClose(tls *libc.TLS, pFile uintptr) int32 {
	h := vfsshim.HandleOf(pFile)
	of := openFileOf(pFile)
	rc := vfsshim.Close(tls, pFile)
	if of.deleteOnClose && of.path != "" {
		of.fs.deleted(of.path)
	}
	registry.files.Delete(h)
	return rc
}

func fileWrite(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	rc := vfsshim.Write(tls, pFile, pBuf, iAmt, iOfst)
	if of := openFileOf(pFile); rc == sqlite3.SQLITE_OK && of.path != "" {
		data := append([]byte(nil), unsafe.Slice(vfsshim.At[byte](pBuf), iAmt)...)
		of.fs.changed(of.path, change{off: iOfst, data: data}, Event{Path: of.path, Op: Write, Off: iOfst, Len: int(iAmt)})
	}
	return rc
}

func fileTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	rc := vfsshim.Truncate(tls, pFile, size)
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
	rc := vfsshim.Sync(tls, pFile, flags)
	if rc == sqlite3.SQLITE_OK && of.path != "" {
		of.fs.synced(of.path, n)
	}
	return rc
}

// fsOf returns the FS of a sqlite3_vfs of this package.
func fsOf(pVfs uintptr) *FS {
	fs, _ := registry.fss.Load(vfsshim.AppData(pVfs))
	return fs.(*FS)
}

// openFileOf returns the openFile of a sqlite3_file of this package.
func openFileOf(pFile uintptr) *openFile {
	of, _ := registry.files.Load(vfsshim.HandleOf(pFile))
	return of.(*openFile)
}
