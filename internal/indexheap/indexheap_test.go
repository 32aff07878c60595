package indexheap

import (
	"container/heap"
	"math/rand/v2"
	"slices"
	"testing"
)

type item struct{ key, idx int }

type byKey struct{}

func (byKey) Less(a, b *item) bool { return a.key < b.key }
func (byKey) Index(x *item) *int   { return &x.idx }

// TestHeap_RandomOperations checks, against a sorted model, that Add,
// Remove, Fix and heap.Pop keep the order and every element's index.
func TestHeap_RandomOperations(t *testing.T) {
	var h Heap[*item, byKey]
	var in []*item
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 0; step < 5000; step++ {
		switch op := rng.IntN(4); {
		case op == 0 || len(in) == 0:
			it := &item{key: rng.IntN(100)}
			h.Add(it)
			in = append(in, it)
		case op == 1:
			i := rng.IntN(len(in))
			h.Remove(in[i])
			if in[i].idx != -1 {
				t.Fatalf("step %d: removed element keeps index %d", step, in[i].idx)
			}
			in = slices.Delete(in, i, i+1)
		case op == 2:
			it := in[rng.IntN(len(in))]
			it.key = rng.IntN(100)
			h.Fix(it)
		default:
			top := heap.Pop(&h).(*item)
			for _, it := range in {
				if it.key < top.key {
					t.Fatalf("step %d: popped key %d while %d is in the heap", step, top.key, it.key)
				}
			}
			in = slices.DeleteFunc(in, func(x *item) bool { return x == top })
		}
		if len(h) != len(in) {
			t.Fatalf("step %d: heap holds %d, model %d", step, len(h), len(in))
		}
		for i, it := range h {
			if it.idx != i {
				t.Fatalf("step %d: element at %d records index %d", step, i, it.idx)
			}
			if i > 0 && it.key < h[(i-1)/2].key {
				t.Fatalf("step %d: heap order broken at %d", step, i)
			}
		}
	}
}
