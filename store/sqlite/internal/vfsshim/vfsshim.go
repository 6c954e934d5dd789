// Package vfsshim registers SQLite VFSes that wrap another VFS, for the
// packages that change what some file calls do (walbuf, powercut): it
// holds the registration, the layout of a wrapping file and the calls that
// only forward.
//
// SQLite calls a VFS through C function pointers with C pointers only
// (modernc.org/libc's translated C): a shim finds its Go objects through
// handles, a VFS's pAppData and a word in each of its files, that it
// resolves itself.
package vfsshim

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// handles numbers VFSes and files for the process, as SQLite's own list
// of VFSes is the process's.
var handles atomic.Uintptr

// NewHandle returns a handle no other VFS or file of any shim has.
func NewHandle() uintptr { return handles.Add(1) }

// VFS is a registered shim VFS.
type VFS struct {
	name   string
	handle uintptr   // its pAppData
	cname  uintptr   // C copies of name and of the sqlite3_vfs
	cvfs   uintptr   //
	tls    *libc.TLS // for registering and unregistering
}

// Calls are a shim's own VFS calls; each is a Go function of the exact
// signature of its sqlite3_vfs field, or nil to call the wrapped VFS's.
// Open must open the wrapped file at pFile+HeaderSize and then set the
// Header at pFile.
type Calls struct {
	Open, Delete any
}

// Register registers a VFS named prefix and a fresh number that wraps the
// VFS named base ("" for the default one). Its pAppData is Handle(); the
// calls that name a file but are not in calls (access, full path name)
// are handed the wrapped VFS, and the others (randomness, time, sleep…)
// go straight to the wrapped VFS's own.
func Register(prefix, base string, calls Calls) (*VFS, error) {
	tls := libc.NewTLS()
	fail := func(err error) (*VFS, error) {
		tls.Close()
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	var cbase uintptr
	if base != "" {
		var err error
		if cbase, err = libc.CString(base); err != nil {
			return fail(err)
		}
		defer libc.Xfree(tls, cbase)
	}
	pbase := sqlite3.Xsqlite3_vfs_find(tls, cbase)
	if pbase == 0 {
		return fail(fmt.Errorf("no VFS %q", base))
	}
	v := &VFS{tls: tls, handle: NewHandle()}
	v.name = fmt.Sprintf("%s%d", prefix, v.handle)
	var err error
	if v.cname, err = libc.CString(v.name); err != nil {
		return fail(err)
	}
	v.cvfs = libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
	if v.cvfs == 0 {
		libc.Xfree(tls, v.cname)
		return fail(errors.New("out of memory"))
	}
	c := At[sqlite3.Tsqlite3_vfs](v.cvfs)
	*c = *At[sqlite3.Tsqlite3_vfs](pbase)
	c.FszOsFile = HeaderSize + c.FszOsFile
	c.FpNext = 0
	c.FzName = v.cname
	c.FpAppData = v.handle
	c.FxOpen = FuncPtr(calls.Open)
	c.FxDelete = FuncPtr(vfsDelete)
	if calls.Delete != nil {
		c.FxDelete = FuncPtr(calls.Delete)
	}
	c.FxAccess = FuncPtr(vfsAccess)
	c.FxFullPathname = FuncPtr(vfsFullPathname)
	bases.Store(v.handle, pbase)
	if rc := sqlite3.Xsqlite3_vfs_register(tls, v.cvfs, 0); rc != sqlite3.SQLITE_OK {
		v.free()
		return nil, fmt.Errorf("%s: register VFS: SQLite error %d", prefix, rc)
	}
	return v, nil
}

// Name returns the name to open a database with (the DSN parameter vfs).
func (v *VFS) Name() string { return v.name }

// Handle returns the VFS's pAppData.
func (v *VFS) Handle() uintptr { return v.handle }

// Close unregisters v. Close every database opened through it first.
func (v *VFS) Close() error {
	rc := sqlite3.Xsqlite3_vfs_unregister(v.tls, v.cvfs)
	v.free()
	if rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("%s: unregister VFS: SQLite error %d", v.name, rc)
	}
	return nil
}

func (v *VFS) free() {
	bases.Delete(v.handle)
	libc.Xfree(v.tls, v.cvfs)
	libc.Xfree(v.tls, v.cname)
	v.tls.Close()
}

// AppData returns the pAppData of a sqlite3_vfs.
func AppData(pVfs uintptr) uintptr { return At[sqlite3.Tsqlite3_vfs](pVfs).FpAppData }

// BaseOf returns the sqlite3_vfs that a shim's sqlite3_vfs wraps.
func BaseOf(pVfs uintptr) uintptr {
	b, _ := bases.Load(AppData(pVfs))
	return b.(uintptr)
}

// bases maps a shim's handle to the sqlite3_vfs it wraps.
var bases sync.Map

func vfsDelete(tls *libc.TLS, pVfs, zPath uintptr, syncDir int32) int32 {
	base := BaseOf(pVfs)
	return Call[func(*libc.TLS, uintptr, uintptr, int32) int32](At[sqlite3.Tsqlite3_vfs](base).FxDelete)(tls, base, zPath, syncDir)
}

func vfsAccess(tls *libc.TLS, pVfs, zPath uintptr, flags int32, pResOut uintptr) int32 {
	base := BaseOf(pVfs)
	return Call[func(*libc.TLS, uintptr, uintptr, int32, uintptr) int32](At[sqlite3.Tsqlite3_vfs](base).FxAccess)(tls, base, zPath, flags, pResOut)
}

func vfsFullPathname(tls *libc.TLS, pVfs, zPath uintptr, nOut int32, zOut uintptr) int32 {
	base := BaseOf(pVfs)
	return Call[func(*libc.TLS, uintptr, uintptr, int32, uintptr) int32](At[sqlite3.Tsqlite3_vfs](base).FxFullPathname)(tls, base, zPath, nOut, zOut)
}

// OpenBase opens the file of the wrapped VFS at pFile+HeaderSize. On
// failure it clears the Header: SQLite closes a file whose open failed
// only if its methods are set.
func OpenBase(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	base := BaseOf(pVfs)
	rc := Call[func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32](At[sqlite3.Tsqlite3_vfs](base).FxOpen)(tls, base, zName, pFile+HeaderSize, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK {
		*At[Header](pFile) = Header{}
	}
	return rc
}

// DeleteBase deletes a file through the wrapped VFS.
func DeleteBase(tls *libc.TLS, pVfs, zPath uintptr, syncDir int32) int32 {
	return vfsDelete(tls, pVfs, zPath, syncDir)
}

// Header starts each sqlite3_file of a shim; the wrapped VFS's own file
// follows it at HeaderSize.
type Header struct {
	Methods uintptr // sqlite3_file.pMethods
	Handle  uintptr // the shim's, for the file
}

// HeaderSize is the size of Header rounded up, so that the wrapped file
// that follows is aligned for any field.
const HeaderSize = 16

// HandleOf returns the handle in the Header of a shim's sqlite3_file.
func HandleOf(pFile uintptr) uintptr { return At[Header](pFile).Handle }

// Inner returns the methods of the wrapped file inside a shim's
// sqlite3_file.
func Inner(pFile uintptr) *sqlite3.Tsqlite3_io_methods {
	return At[sqlite3.Tsqlite3_io_methods](At[sqlite3.Tsqlite3_file](pFile + HeaderSize).FpMethods)
}

// Methods returns sqlite3_io_methods (version 3) that forward every call to
// the wrapped file; a shim replaces the calls it changes.
func Methods() sqlite3.Tsqlite3_io_methods {
	return sqlite3.Tsqlite3_io_methods{
		FiVersion:               3,
		FxClose:                 FuncPtr(Close),
		FxRead:                  FuncPtr(Read),
		FxWrite:                 FuncPtr(Write),
		FxTruncate:              FuncPtr(Truncate),
		FxSync:                  FuncPtr(Sync),
		FxFileSize:              FuncPtr(FileSize),
		FxLock:                  FuncPtr(lock),
		FxUnlock:                FuncPtr(unlock),
		FxCheckReservedLock:     FuncPtr(checkReservedLock),
		FxFileControl:           FuncPtr(FileControl),
		FxSectorSize:            FuncPtr(sectorSize),
		FxDeviceCharacteristics: FuncPtr(deviceCharacteristics),
		FxShmMap:                FuncPtr(shmMap),
		FxShmLock:               FuncPtr(shmLock),
		FxShmBarrier:            FuncPtr(shmBarrier),
		FxShmUnmap:              FuncPtr(shmUnmap),
		FxFetch:                 FuncPtr(Fetch),
		FxUnfetch:               FuncPtr(unfetch),
	}
}

// SetMethods makes methods, which must stay where they are, the methods
// of the shim's file at pFile, with the shim's handle h for it.
func SetMethods(pFile uintptr, methods *sqlite3.Tsqlite3_io_methods, h uintptr) {
	*At[Header](pFile) = Header{Methods: uintptr(unsafe.Pointer(methods)), Handle: h}
}

// Close, Read, Write, Truncate, Sync, FileSize, FileControl and Fetch
// forward a call to the wrapped file; a shim that changes one calls them
// for the wrapped file's part.

func Close(tls *libc.TLS, pFile uintptr) int32 {
	return Call[func(*libc.TLS, uintptr) int32](Inner(pFile).FxClose)(tls, pFile+HeaderSize)
}

func Read(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	return Call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](Inner(pFile).FxRead)(tls, pFile+HeaderSize, pBuf, iAmt, iOfst)
}

func Write(tls *libc.TLS, pFile, pBuf uintptr, iAmt int32, iOfst int64) int32 {
	return Call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](Inner(pFile).FxWrite)(tls, pFile+HeaderSize, pBuf, iAmt, iOfst)
}

func Truncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	return Call[func(*libc.TLS, uintptr, int64) int32](Inner(pFile).FxTruncate)(tls, pFile+HeaderSize, size)
}

func Sync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	return Call[func(*libc.TLS, uintptr, int32) int32](Inner(pFile).FxSync)(tls, pFile+HeaderSize, flags)
}

func FileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	return Call[func(*libc.TLS, uintptr, uintptr) int32](Inner(pFile).FxFileSize)(tls, pFile+HeaderSize, pSize)
}

func FileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	return Call[func(*libc.TLS, uintptr, int32, uintptr) int32](Inner(pFile).FxFileControl)(tls, pFile+HeaderSize, op, pArg)
}

func Fetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	return Call[func(*libc.TLS, uintptr, int64, int32, uintptr) int32](Inner(pFile).FxFetch)(tls, pFile+HeaderSize, iOfst, iAmt, pp)
}

func lock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	return Call[func(*libc.TLS, uintptr, int32) int32](Inner(pFile).FxLock)(tls, pFile+HeaderSize, lock)
}

func unlock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	return Call[func(*libc.TLS, uintptr, int32) int32](Inner(pFile).FxUnlock)(tls, pFile+HeaderSize, lock)
}

func checkReservedLock(tls *libc.TLS, pFile, pResOut uintptr) int32 {
	return Call[func(*libc.TLS, uintptr, uintptr) int32](Inner(pFile).FxCheckReservedLock)(tls, pFile+HeaderSize, pResOut)
}

func sectorSize(tls *libc.TLS, pFile uintptr) int32 {
	return Call[func(*libc.TLS, uintptr) int32](Inner(pFile).FxSectorSize)(tls, pFile+HeaderSize)
}

func deviceCharacteristics(tls *libc.TLS, pFile uintptr) int32 {
	return Call[func(*libc.TLS, uintptr) int32](Inner(pFile).FxDeviceCharacteristics)(tls, pFile+HeaderSize)
}

func shmMap(tls *libc.TLS, pFile uintptr, iPg, pgsz, bExtend int32, pp uintptr) int32 {
	return Call[func(*libc.TLS, uintptr, int32, int32, int32, uintptr) int32](Inner(pFile).FxShmMap)(tls, pFile+HeaderSize, iPg, pgsz, bExtend, pp)
}

func shmLock(tls *libc.TLS, pFile uintptr, offset, n, flags int32) int32 {
	return Call[func(*libc.TLS, uintptr, int32, int32, int32) int32](Inner(pFile).FxShmLock)(tls, pFile+HeaderSize, offset, n, flags)
}

func shmBarrier(tls *libc.TLS, pFile uintptr) {
	Call[func(*libc.TLS, uintptr)](Inner(pFile).FxShmBarrier)(tls, pFile+HeaderSize)
}

func shmUnmap(tls *libc.TLS, pFile uintptr, deleteFlag int32) int32 {
	return Call[func(*libc.TLS, uintptr, int32) int32](Inner(pFile).FxShmUnmap)(tls, pFile+HeaderSize, deleteFlag)
}

func unfetch(tls *libc.TLS, pFile uintptr, iOfst int64, p uintptr) int32 {
	return Call[func(*libc.TLS, uintptr, int64, uintptr) int32](Inner(pFile).FxUnfetch)(tls, pFile+HeaderSize, iOfst, p)
}

// At returns the C memory at p as a *T. (C memory does not move and is not
// the Go collector's.)
func At[T any](p uintptr) *T {
	return (*T)(*(*unsafe.Pointer)(unsafe.Pointer(&p)))
}

// FuncPtr returns a Go function as the C function pointer
// modernc.org/libc's translated C calls: the pointer to its closure, static
// for a top-level function.
func FuncPtr(f any) uintptr {
	return (*[2]uintptr)(unsafe.Pointer(&f))[1]
}

// Call returns the function a C function pointer stands for, the reverse of
// FuncPtr, as F, which must be its exact signature.
func Call[F any](fp uintptr) F {
	return *(*F)(unsafe.Pointer(&fp))
}
