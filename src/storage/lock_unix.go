//go:build unix

package storage

import (
	"errors"
	"os"
	"syscall"
)

// flockExclusive tries to take an exclusive flock(2) on f without waiting;
// held is false when another open file description holds it (another
// process, or another open of the same file in this one: flock locks belong
// to the open file description, not to the process).
func flockExclusive(f *os.File) (held bool, err error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		}
		return false, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
}
