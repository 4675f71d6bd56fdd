package ebfake

import "github.com/auditstream/auditstream/services/testsupport/internal/jsonscan"

// MaxDetailDepth is how deeply nested a Detail may be: PutEvents processes
// nested JSON up to 1100 levels deep.
const MaxDetailDepth = 1100

// validObject reports whether s is one JSON object (surrounding whitespace
// allowed) nested at most MaxDetailDepth deep. It accepts what json.Valid
// accepts for an object, in one pass without allocating; the fake checks
// every Detail with it.
func validObject(s string) bool {
	i := jsonscan.Space(s, 0)
	if i >= len(s) || s[i] != '{' {
		return false
	}
	end, ok := jsonscan.Value(s, i, 0, MaxDetailDepth)
	return ok && jsonscan.Space(s, end) == len(s)
}
