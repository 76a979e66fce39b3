// Package freelist is a slice whose freed places are reused: the stable
// small numbers by which the key-value table (src/kv) names its slabs and
// its keys' slots, and the watch history (src/watch) its chunks, so that
// the records pointing at them stay small and free of pointers.
package freelist

// Slice holds items at indexes that stay the same while they live.
// Invariant: every index in free is below len(Items), once, and its item is
// the zero value.
type Slice[T any] struct {
	Items []T
	free  []int
}

// Add stores v at a freed index, or at a new one at the end, and returns
// the index.
func (s *Slice[T]) Add(v T) int {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		s.Items[i] = v
		return i
	}
	s.Items = append(s.Items, v)
	return len(s.Items) - 1
}

// Free zeroes the item at index i and makes i available to Add.
func (s *Slice[T]) Free(i int) {
	var zero T
	s.Items[i] = zero
	s.free = append(s.free, i)
}

// Len is the number of items not freed.
func (s *Slice[T]) Len() int { return len(s.Items) - len(s.free) }

// Freed reports how many indexes are free.
func (s *Slice[T]) Freed() int { return len(s.free) }
