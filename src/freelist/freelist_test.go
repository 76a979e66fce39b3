package freelist

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSliceMatchesAModel: under random adds and frees, every live item
// stays at its index, freed indexes are reused before the slice grows, and
// Len counts the live items.
func TestSliceMatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var s Slice[int]
	live := map[int]int{} // index -> value
	for step := range 5000 {
		if len(live) > 0 && rng.Intn(3) == 0 {
			for i := range live {
				s.Free(i)
				delete(live, i)
				break
			}
		} else {
			freed := s.Freed()
			n := len(s.Items)
			i := s.Add(step + 1)
			_, taken := live[i]
			require.False(t, taken, "index %d given twice", i)
			if freed > 0 {
				require.Equal(t, n, len(s.Items), "a freed index is reused before the slice grows")
			}
			live[i] = step + 1
		}
		require.Equal(t, len(live), s.Len())
		for i, v := range live {
			require.Equal(t, v, s.Items[i])
		}
	}
}
