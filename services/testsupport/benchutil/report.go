package benchutil

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Result is one line of `go test -bench` output.
type Result struct {
	// Name is the benchmark's name without the "Benchmark" prefix and the
	// "-GOMAXPROCS" suffix: "IngestBatch" for "BenchmarkIngestBatch-2".
	Name       string
	Iterations int64
	// Metrics maps a unit ("ns/op", "events/s", "peak-MB") to its value.
	Metrics map[string]float64
	// Units lists the units in the order the line gave them.
	Units []string
}

// ParseLine reads one benchmark result line; ok is false for any other line.
func ParseLine(line string) (Result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return Result{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Result{}, false
	}
	r := Result{Name: benchName(f[0]), Iterations: n, Metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		unit := f[i+1]
		if _, dup := r.Metrics[unit]; !dup {
			r.Units = append(r.Units, unit)
		}
		r.Metrics[unit] = v
	}
	return r, true
}

func benchName(s string) string {
	s = strings.TrimPrefix(s, "Benchmark")
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		if _, err := strconv.Atoi(s[i+1:]); err == nil {
			s = s[:i]
		}
	}
	return s
}

// Output is what a run of `go test -bench` printed.
type Output struct {
	Results []Result
	// Failures are the lines that say a test, benchmark or package failed.
	Failures []string
}

// Parse reads `go test -bench` output, copying every line to echo when it is
// not nil.
func Parse(r io.Reader, echo io.Writer) (Output, error) {
	var out Output
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if echo != nil {
			if _, err := fmt.Fprintln(echo, line); err != nil {
				return out, err
			}
		}
		if res, ok := ParseLine(line); ok {
			out.Results = append(out.Results, res)
			continue
		}
		if t := strings.TrimSpace(line); t == "FAIL" || strings.HasPrefix(t, "FAIL\t") || strings.HasPrefix(t, "--- FAIL") || strings.HasPrefix(t, "panic:") {
			out.Failures = append(out.Failures, t)
		}
	}
	return out, sc.Err()
}

// Median folds every run of the named benchmark into one result holding
// the median of each metric; runs is how many lines there were.
func (o Output) Median(name string) (res Result, runs int) {
	values := map[string][]float64{}
	res = Result{Name: name, Metrics: map[string]float64{}}
	for _, r := range o.Results {
		if r.Name != name {
			continue
		}
		runs++
		res.Iterations += r.Iterations
		for _, u := range r.Units {
			if _, seen := values[u]; !seen {
				res.Units = append(res.Units, u)
			}
			values[u] = append(values[u], r.Metrics[u])
		}
	}
	for u, vs := range values {
		res.Metrics[u] = median(vs)
	}
	return res, runs
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Comparison sets a candidate benchmark beside its ceiling.
type Comparison struct {
	Ceiling, Candidate         Result
	CeilingRuns, CandidateRuns int
}

// Compare picks the median results of the ceiling and candidate benchmarks.
func (o Output) Compare(ceiling, candidate string) (Comparison, error) {
	var c Comparison
	c.Ceiling, c.CeilingRuns = o.Median(ceiling)
	c.Candidate, c.CandidateRuns = o.Median(candidate)
	var missing []string
	if c.CeilingRuns == 0 {
		missing = append(missing, "Benchmark"+ceiling)
	}
	if c.CandidateRuns == 0 {
		missing = append(missing, "Benchmark"+candidate)
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("no result for %s in the benchmark output", strings.Join(missing, " and "))
	}
	return c, nil
}

// Ratio is candidate / ceiling for unit, when both report it.
func (c Comparison) Ratio(unit string) (float64, bool) {
	a, okA := c.Candidate.Metrics[unit]
	b, okB := c.Ceiling.Metrics[unit]
	if !okA || !okB || b == 0 {
		return 0, false
	}
	return a / b, true
}

// Table lays out the comparison: one row per unit with the ceiling, the
// candidate and their ratio. The units named in first lead, then the
// candidate's in the order it reported them, then any only the ceiling has.
func (c Comparison) Table(first ...string) *Table {
	t := &Table{}
	t.Row("metric", c.Ceiling.Name, c.Candidate.Name, "candidate/ceiling")
	var units []string
	for _, list := range [][]string{first, c.Candidate.Units, c.Ceiling.Units} {
		for _, u := range list {
			if !slices.Contains(units, u) {
				units = append(units, u)
			}
		}
	}
	for _, u := range units {
		ratio := "-"
		if r, ok := c.Ratio(u); ok {
			ratio = FormatPercent(r)
		}
		t.Row(u, formatMetric(c.Ceiling.Metrics, u), formatMetric(c.Candidate.Metrics, u), ratio)
	}
	return t
}

func formatMetric(m map[string]float64, unit string) string {
	v, ok := m[unit]
	if !ok {
		return "-"
	}
	return FormatValue(v)
}

// FormatValue writes v with digits grouped by thousands when it is large
// and with up to two decimals when it is small.
func FormatValue(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case a >= 1000:
		return groupThousands(strconv.FormatFloat(v, 'f', 0, 64))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func groupThousands(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return sign + b.String()
}

// FormatPercent writes a ratio as a percentage with one decimal.
func FormatPercent(r float64) string {
	return strconv.FormatFloat(r*100, 'f', 1, 64) + " %"
}

// Table is text in aligned columns: the first column left-aligned, the
// others right-aligned, two spaces apart.
type Table struct {
	rows [][]string
}

// Row appends a row.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// WriteTo writes the table.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if i == 0 {
				line.WriteString(c + pad)
			} else {
				line.WriteString(pad + c)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
