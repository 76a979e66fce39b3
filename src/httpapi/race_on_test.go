//go:build race

package httpapi

// raceEnabled: under the race detector sync.Pool drops a random share of
// what is put back, so allocation counts of pooled paths vary by one run
// to the next.
const raceEnabled = true
