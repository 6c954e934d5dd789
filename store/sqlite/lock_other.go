//go:build !(linux || darwin || ios || freebsd || dragonfly || netbsd || openbsd)

package sqlite

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// tryLock takes no lock: this operating system has no flock(2). The store
// then keeps no cache of current versions, and nothing refuses a second
// process.
func tryLock(*os.File) (bool, error) { return false, nil }
