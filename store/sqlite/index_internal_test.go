package sqlite

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// A resource's rows are sorted in place when they are few and by keys
// when many: both orders must be the same, rows of equal keys kept in the
// order they came in, or which of two rows SQLite keeps (INSERT OR IGNORE)
// would depend on how many there were.
func TestSortRowsInPlaceAsByKeys(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	texts := []string{"", "a", "b", "B", "ab"}
	for trial := range 2000 {
		n := 2 + trial%(maxInsertionSort-1)
		var args []any
		for i := range n {
			var first any
			switch rnd.IntN(3) {
			case 0:
				first = texts[rnd.IntN(len(texts))]
			case 1:
				first = int64(rnd.IntN(3))
			default:
				first = float64(rnd.IntN(3)) / 2
			}
			// pid, a first value column, a second that tells the rows
			// apart, rid.
			args = append(args, int64(rnd.IntN(3)), first, fmt.Sprint(i), int64(7))
		}
		inPlace, byKeys := slices.Clone(args), slices.Clone(args)
		insertionSortRows(inPlace, 4)
		sortRowsByKeys(byKeys, 4)
		if !slices.Equal(inPlace, byKeys) {
			t.Fatalf("rows %v\nsorted in place %v\nby keys %v", args, inPlace, byKeys)
		}
	}
}
