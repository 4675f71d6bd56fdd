package main

import (
	"bytes"
	"strings"
	"testing"
)

const output = `BenchmarkCeiling-2   	 1000	 1000 ns/op	 1000000 events/s	 100.0 peak-MB
BenchmarkCandidate-2 	 1000	 2000 ns/op	  500000 events/s	 3.0 p50-ms	 80.0 peak-MB
PASS
`

func TestRun(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		input string
		code  int
		want  []string
	}{
		{"pass", []string{"-ceiling", "Ceiling", "-candidate", "Candidate", "-quiet"}, output, 0,
			[]string{"events/s  1,000,000", "50.0 %", "peak-MB", "80.0 %", "PASS (50.0 %)"}},
		{"below", []string{"-ceiling", "Ceiling", "-candidate", "Candidate", "-target", "0.6", "-quiet"}, output, 0,
			[]string{"BELOW TARGET (50.0 %)"}},
		{"strict below", []string{"-ceiling", "Ceiling", "-candidate", "Candidate", "-target", "0.6", "-strict", "-quiet"}, output, 1,
			[]string{"BELOW TARGET"}},
		{"echo", []string{"-ceiling", "Ceiling", "-candidate", "Candidate"}, output, 0,
			[]string{"BenchmarkCandidate-2", "PASS\n"}},
		{"missing", []string{"-ceiling", "Ceiling", "-candidate", "Other", "-quiet"}, output, 1, nil},
		{"failed run", []string{"-ceiling", "Ceiling", "-candidate", "Candidate", "-quiet"}, output + "--- FAIL: BenchmarkX\nFAIL\n", 1,
			[]string{"PASS (50.0 %)"}},
		{"unknown metric", []string{"-ceiling", "Ceiling", "-candidate", "Candidate", "-metric", "p50-ms", "-quiet"}, output, 1,
			[]string{"not reported by both"}},
		{"no flags", nil, output, 2, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(c.args, strings.NewReader(c.input), &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, stdout.String(), stderr.String())
			}
			for _, w := range c.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}
