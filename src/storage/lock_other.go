//go:build !unix

package storage

import "os"

// flockExclusive: raftkv runs nodes on Linux (and builds on other Unixes,
// which have flock); elsewhere the folder is not locked.
func flockExclusive(*os.File) (bool, error) { return true, nil }
