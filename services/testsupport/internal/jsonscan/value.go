package jsonscan

// Space returns the index of the first byte at or after i that is not JSON
// whitespace (len(b) when there is none).
func Space[T ~string | ~[]byte](b T, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// Value reads the JSON value that starts at b[i] (whitespace before it is
// the caller's to skip) and returns the index after it. ok says whether it
// is valid as json.Valid judges a value: strings as String reads them (no
// UTF-8 check), and no object or array opened when depth, the number of
// containers it sits in, has reached maxDepth. It reads in one pass and
// does not allocate.
func Value[T ~string | ~[]byte](b T, i, depth, maxDepth int) (end int, ok bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return String(b, i)
	case c == '{':
		if depth >= maxDepth {
			return i, false
		}
		if i = Space(b, i+1); i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i, ok = String(b, i); !ok {
				return i, false
			}
			if i = Space(b, i); i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = Value(b, Space(b, i+1), depth+1, maxDepth); !ok {
				return i, false
			}
			if i = Space(b, i); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = Space(b, i+1)
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '[':
		if depth >= maxDepth {
			return i, false
		}
		if i = Space(b, i+1); i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			if i, ok = Value(b, i, depth+1, maxDepth); !ok {
				return i, false
			}
			if i = Space(b, i); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = Space(b, i+1)
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		return number(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return i, false
}

func literal[T ~string | ~[]byte](b T, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number[T ~string | ~[]byte](b T, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

// digits returns the index after the run of decimal digits at b[i:].
func digits[T ~string | ~[]byte](b T, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
