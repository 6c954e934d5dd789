//go:build linux || darwin || ios || freebsd || dragonfly || netbsd || openbsd

package sqlite

import (
	"fmt"
	"syscall"
	"testing"
)

// TestLockUnsupported checks which errors of flock(2) mean a file system
// without locks, on which the store runs unlocked, and which fail Open.
func TestLockUnsupported(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.ENOLCK, true},
		{syscall.EOPNOTSUPP, true},
		{syscall.ENOSYS, true},
		{fmt.Errorf("flock: %w", syscall.ENOLCK), true},
		{syscall.EBADF, false},
		{syscall.EWOULDBLOCK, false},
		{syscall.EIO, false},
	} {
		if got := lockUnsupported(tc.err); got != tc.want {
			t.Errorf("lockUnsupported(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
