package archive

import (
	"testing"
	"time"
)

func TestVerifyRangeCoversWholeDays(t *testing.T) {
	opts := VerifyOptions{From: day0, To: day0.Add(24 * time.Hour)}
	for _, c := range []struct {
		start time.Time
		want  bool
	}{
		{day0.Add(-time.Hour), false},
		{day0, true},
		{day0.Add(21 * time.Hour), true},
		{day0.Add(24 * time.Hour), true},
		{day0.Add(47 * time.Hour), true}, // a short window late on the last day
		{day0.Add(48 * time.Hour), false},
	} {
		if got := inRange(c.start, opts); got != c.want {
			t.Errorf("inRange(%s) = %v, want %v", c.start, got, c.want)
		}
	}
	if !inRange(day0, VerifyOptions{}) {
		t.Error("an unbounded range leaves a day out")
	}
}
