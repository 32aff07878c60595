package bench

import (
	"math/bits"
	"time"
)

// Latencies are kept in a log-linear histogram of nanoseconds: exact below
// 64 ns, then 32 buckets per power of two, so any percentile is within about
// 3% of the true value. Recording is a couple of shifts and an increment;
// the whole histogram is a fixed array, so merging and resetting are cheap.
const (
	histSubBits  = 5
	histSub      = 1 << histSubBits // buckets per power of two
	histLinear   = 2 * histSub      // values below this are exact
	histMaxShift = 40               // up to ~2^46 ns (~19 hours)
	histBuckets  = histLinear + histMaxShift*histSub
)

// Histogram counts latencies. The zero value is empty and ready to use. It is
// not safe for concurrent use; the runner gives each connection its own and
// merges them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64
	max    uint64
}

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // >= 1
	if shift > histMaxShift {
		return histBuckets - 1
	}
	mant := v >> uint(shift) // in [histSub, 2*histSub)
	return histLinear + (shift-1)*histSub + int(mant-histSub)
}

// histValue is the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSub + 1
	mant := uint64((i-histLinear)%histSub + histSub)
	return mant<<uint(shift) + (uint64(1)<<uint(shift))/2
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of recorded latencies.
func (h *Histogram) Count() uint64 { return h.n }

// Mean is the average latency, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Max is the largest latency recorded (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the latency at or below which fraction q (0..1) of the
// recorded latencies lie; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}
