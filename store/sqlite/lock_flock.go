//go:build linux || darwin || ios || freebsd || dragonfly || netbsd || openbsd

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

var errLocked = errors.New("locked")

// tryLock takes an exclusive flock(2) on f without waiting. On a file
// system that has no such locks it takes none and reports so, as where
// the operating system has none: the store then runs as it did before it
// locked its directory, rather than not at all.
func tryLock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, errLocked
		case lockUnsupported(err):
			return false, nil
		}
		return false, err
	}
}

// lockUnsupported reports an error of flock(2) that says the file system
// has no such locks.
func lockUnsupported(err error) bool {
	return errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)
}
