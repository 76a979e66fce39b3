//go:build race

package simtest

// Under the race detector (which finds nothing in this single-goroutine
// simulator but slows it ten-fold) the default run is shorter; `make test`
// runs the full default count again without it.
const defaultSeeds = 100
