package ddfake

import (
	"encoding/json"

	"github.com/auditstream/auditstream/services/testsupport/internal/jsonscan"
)

// splitValidArray checks in one pass that b is what the intake takes as a
// body, JSON whitespace then an array then JSON whitespace, valid exactly
// as json.Valid judges it, and returns the array's elements as splitArray
// returns them. ok is false for any other input, for which read runs
// json.Valid and splitArray (and answers with their error): this only
// saves the second pass over bodies that are valid.
//
// Like encoding/json it accepts any byte from 0x20 up in strings (it does
// not check UTF-8), and refuses nesting deeper than maxScanDepth.
func splitValidArray(b []byte) (items []json.RawMessage, ok bool) {
	i := jsonscan.Space(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	if i = jsonscan.Space(b, i+1); i < len(b) && b[i] == ']' {
		return items, jsonscan.Space(b, i+1) == len(b)
	}
	for {
		start := i
		if i, ok = jsonscan.Value(b, i, 1, maxScanDepth); !ok {
			return nil, false
		}
		items = append(items, b[start:i])
		if i = jsonscan.Space(b, i); i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = jsonscan.Space(b, i+1)
		case ']':
			return items, jsonscan.Space(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// maxScanDepth is encoding/json's limit on nesting: json.Valid refuses
// deeper input. The array itself is depth 1.
const maxScanDepth = 10000
