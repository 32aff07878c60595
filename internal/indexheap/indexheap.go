// Package indexheap is a binary min-heap of elements that record their own
// position, so that one can be removed or re-keyed in O(log n). It is the
// container/heap boilerplate the primitives' schedulers share: a heap is a
// plain slice (index it, take its length) whose order and index field come
// from a zero-size Order type.
package indexheap

import "container/heap"

// Order says how elements compare and where each keeps its heap index.
type Order[T any] interface {
	Less(a, b T) bool
	// Index returns the element's index field: its position while in the
	// heap, -1 once removed.
	Index(x T) *int
}

// Heap is a min-heap under O. The zero value is empty.
type Heap[T any, O Order[T]] []T

// Add inserts x.
func (h *Heap[T, O]) Add(x T) { heap.Push(h, x) }

// Remove takes x, which must be in h, out of it; its index becomes -1.
func (h *Heap[T, O]) Remove(x T) {
	var o O
	heap.Remove(h, *o.Index(x))
}

// Fix restores the order after x's key changed.
func (h *Heap[T, O]) Fix(x T) {
	var o O
	heap.Fix(h, *o.Index(x))
}

// Len, Less, Swap, Push and Pop implement heap.Interface; use Add, Remove
// and Fix (or container/heap) rather than Push and Pop directly.
func (h Heap[T, O]) Len() int { return len(h) }

func (h Heap[T, O]) Less(i, j int) bool {
	var o O
	return o.Less(h[i], h[j])
}

func (h Heap[T, O]) Swap(i, j int) {
	var o O
	h[i], h[j] = h[j], h[i]
	*o.Index(h[i]), *o.Index(h[j]) = i, j
}

func (h *Heap[T, O]) Push(x any) {
	var o O
	e := x.(T)
	*o.Index(e) = len(*h)
	*h = append(*h, e)
}

func (h *Heap[T, O]) Pop() any {
	var o O
	old := *h
	n := len(old) - 1
	e := old[n]
	var zero T
	old[n] = zero
	*h = old[:n]
	*o.Index(e) = -1
	return e
}
