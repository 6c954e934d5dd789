package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LockFileName is the file in the data directory whose lock says which
// process has the directory: the one serving it, or a tool that changes
// or replaces its database.
const LockFileName = "carefhir.lock"

// ErrInUse reports a data directory that another process holds: a server
// serving it, an import, a migration or a restore.
var ErrInUse = errors.New("in use by another process")

// dirLock is an exclusive lock on a data directory, held until release.
//
// A Store takes it for as long as it is open, so that it alone writes the
// database: its cache of current versions (current.go) is right only if no
// other process commits a version it does not see. Replacing or migrating
// the database under a server would lose what the server then writes, so
// restore and migrate take it too. The lock is the operating system's
// (flock(2)): it goes with the process, so a crash never leaves the
// directory locked.
type dirLock struct {
	f *os.File
}

// lockDir takes the lock of dir, or fails at once with ErrInUse if another
// process, or another open Store of this one, holds it. held is false
// where this operating system has no such lock; the caller then runs
// without what relies on it.
func lockDir(dir string) (l *dirLock, held bool, err error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: lock %s: %w", dir, err)
	}
	held, err = tryLock(f)
	if err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, false, fmt.Errorf("sqlite: data directory %s: %w", dir, ErrInUse)
		}
		return nil, false, fmt.Errorf("sqlite: lock %s: %w", dir, err)
	}
	return &dirLock{f: f}, held, nil
}

// release lets the lock go. Closing the file releases it.
func (l *dirLock) release() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}

// LockDir takes the lock of the data directory dir, for a tool that
// replaces its database (restore): it fails with ErrInUse while a server
// or another tool holds it. unlock lets it go.
func LockDir(dir string) (unlock func() error, err error) {
	l, _, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	return l.release, nil
}
