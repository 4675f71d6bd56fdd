package rebuild

import (
	"slices"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/archive"
)

func TestRunsMergeOverlappingAndTouchingRanges(t *testing.T) {
	day := time.Date(2024, 2, 16, 0, 0, 0, 0, time.UTC)
	g := func(part int32, first, last int64) *group {
		return &group{g: archive.Group{Window: archive.WindowOf(day, time.Hour), Partition: part, First: first, Last: last}}
	}
	// Sorted by partition and first offset, as NewPlan sorts them.
	groups := []*group{g(0, 0, 10), g(0, 5, 8), g(0, 11, 20), g(0, 30, 40), g(1, 0, 3), g(1, 4, 4), g(2, 9, 9)}
	var got [][2]int64
	var parts []int32
	for _, run := range runs(groups) {
		first, last := run[0].g.First, run[0].g.Last
		for _, x := range run {
			if x.g.Partition != run[0].g.Partition {
				t.Fatalf("a run mixes partitions %d and %d", run[0].g.Partition, x.g.Partition)
			}
			first, last = min(first, x.g.First), max(last, x.g.Last)
		}
		got = append(got, [2]int64{first, last})
		parts = append(parts, run[0].g.Partition)
	}
	want := [][2]int64{{0, 20}, {30, 40}, {0, 4}, {9, 9}}
	if !slices.Equal(got, want) || !slices.Equal(parts, []int32{0, 0, 1, 2}) {
		t.Fatalf("runs %v on partitions %v, want %v on [0 0 1 2]", got, parts, want)
	}
}
