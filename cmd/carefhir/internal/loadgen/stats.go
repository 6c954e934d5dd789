package loadgen

import (
	"math"
	"slices"
	"time"
)

// Latency summarises the latencies of a run.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// Summarize returns the percentiles of d. It sorts d in place.
func Summarize(d []time.Duration) Latency {
	slices.Sort(d)
	return Latency{
		P50: Percentile(d, 50),
		P90: Percentile(d, 90),
		P99: Percentile(d, 99),
		Max: Percentile(d, 100),
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p percent of the
// values are less than or equal to it. Being always one of the measured
// values, it never reports a latency that no request had. It returns 0 for no
// values and clamps p to the range (0, 100].
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}
