package sink

import (
	"strings"
	"testing"
)

// A destination's answer is quoted in errors and logs: it cannot forge a
// log line or fill a log.
func TestAnswerText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"  bad request\n", "bad request"},
		{"line\nforged: entry\x1b[31m", "line forged: entry [31m"},
		{"caf\u00e9", "caf  "},
		{strings.Repeat("a", MaxAnswerText+5), strings.Repeat("a", MaxAnswerText) + "..."},
		{strings.Repeat("b", MaxAnswerText), strings.Repeat("b", MaxAnswerText)},
	} {
		if got := AnswerText(c.in); got != c.want {
			t.Errorf("AnswerText(%.20q) = %.40q, want %.40q", c.in, got, c.want)
		}
	}
}
