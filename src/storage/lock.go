package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file a writable Open locks in the node's folder
// (persistence/<name>/LOCK, a name the contract fixes).
const lockFileName = "LOCK"

// ErrLocked is wrapped by the error of a writable Open on a folder that
// another process (or another Storage of this process) holds: two writers on
// one log would interleave their records and vote twice in one term.
var ErrLocked = errors.New("storage: data folder in use")

// LockedError is the error of Open on a folder another writer holds.
// errors.Is(err, ErrLocked) holds for it.
type LockedError struct {
	Dir string // the node's folder
	PID int    // the holder's process ID as it wrote it in LOCK; 0 if unknown
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("storage: %s is in use by another raftkv process (%s): refusing to start a second node on the same data", e.Dir, e.Holder())
}

// Holder names the process that holds the lock, for messages: "pid 1234".
func (e *LockedError) Holder() string {
	if e.PID <= 0 {
		return "pid unknown"
	}
	return "pid " + strconv.Itoa(e.PID)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// lockDir takes the exclusive lock of dir, or fails with a *LockedError
// naming the holder. The lock is an flock(2) on dir/LOCK, not the file's
// existence: the kernel releases it when the holder's last descriptor closes,
// so a LOCK file left by a killed process blocks nobody, and nobody ever has
// to delete it (deleting it would let a waiter lock an unlinked inode while
// a newcomer locks a new one). The PID written into it is only for the
// message of the process that finds it held. The returned file holds the
// lock until it is closed.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: lock: %w", err)
	}
	held, err := flockExclusive(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: lock %s: %w", path, err)
	}
	if !held {
		pid := readPID(f)
		f.Close()
		return nil, &LockedError{Dir: dir, PID: pid}
	}
	// Write first, then cut: a reader racing with us sees the old PID or the
	// new one (its first line), never an empty file. No fsync: after a crash
	// the PID is stale anyway.
	b := strconv.AppendInt(nil, int64(os.Getpid()), 10)
	b = append(b, '\n')
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: lock %s: %w", path, err)
	}
	return f, nil
}

// readPID reads the PID a lock holder wrote in f; 0 if it cannot.
func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
