package ebfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Match reports whether an event (as Entry.Event gives it) matches an
// EventBridge event pattern, so tests can check that rules written against
// the documentation match what the forwarder sends. It implements the
// pattern language's common part: nested objects, arrays of allowed values
// (an array in the event matches when any element does), exact strings,
// numbers, booleans and null, and the operators prefix, suffix,
// equals-ignore-case, anything-but (a value, a list, or a prefix/suffix),
// exists, numeric (<, <=, =, >=, >) and wildcard. A pattern that uses
// anything else is an error rather than a silent mismatch.
func Match(pattern []byte, event map[string]any) (bool, error) {
	var p map[string]any
	dec := json.NewDecoder(bytes.NewReader(pattern))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return false, fmt.Errorf("pattern is not a JSON object: %w", err)
	}
	return matchObject(p, event)
}

func matchObject(p map[string]any, ev map[string]any) (bool, error) {
	for k, pv := range p {
		v, present := ev[k]
		switch pv := pv.(type) {
		case map[string]any:
			sub, ok := v.(map[string]any)
			if !present || !ok {
				return false, nil
			}
			m, err := matchObject(pv, sub)
			if err != nil || !m {
				return m, err
			}
		case []any:
			m, err := matchValues(pv, v, present)
			if err != nil || !m {
				return m, err
			}
		default:
			return false, fmt.Errorf("pattern member %q must be an object or an array", k)
		}
	}
	return true, nil
}

// matchValues matches a field against an array of allowed values or
// operators.
func matchValues(allowed []any, v any, present bool) (bool, error) {
	if len(allowed) == 0 {
		return false, fmt.Errorf("an empty array matches nothing")
	}
	for _, a := range allowed {
		if op, ok := a.(map[string]any); ok {
			if ex, ok := op["exists"]; ok && len(op) == 1 {
				want, ok := ex.(bool)
				if !ok {
					return false, fmt.Errorf("exists takes true or false")
				}
				if want == present {
					return true, nil
				}
				continue
			}
		}
		if !present {
			continue
		}
		vals := []any{v}
		if arr, ok := v.([]any); ok {
			vals = arr
		}
		for _, x := range vals {
			m, err := matchOne(a, x)
			if err != nil {
				return false, err
			}
			if m {
				return true, nil
			}
		}
	}
	return false, nil
}

func matchOne(a, x any) (bool, error) {
	op, ok := a.(map[string]any)
	if !ok {
		return equal(a, x), nil
	}
	if len(op) != 1 {
		return false, fmt.Errorf("an operator object holds exactly one operator")
	}
	for name, arg := range op {
		switch name {
		case "prefix", "suffix":
			s, ok := x.(string)
			if !ok {
				return false, nil
			}
			want, fold, err := stringArg(arg)
			if err != nil {
				return false, err
			}
			if fold {
				s, want = strings.ToLower(s), strings.ToLower(want)
			}
			if name == "prefix" {
				return strings.HasPrefix(s, want), nil
			}
			return strings.HasSuffix(s, want), nil
		case "equals-ignore-case":
			s, ok := x.(string)
			want, ok2 := arg.(string)
			if !ok2 {
				return false, fmt.Errorf("equals-ignore-case takes a string")
			}
			return ok && strings.EqualFold(s, want), nil
		case "wildcard":
			s, ok := x.(string)
			want, ok2 := arg.(string)
			if !ok2 {
				return false, fmt.Errorf("wildcard takes a string")
			}
			if !ok {
				return false, nil
			}
			return wildcard(want, s), nil
		case "anything-but":
			switch arg := arg.(type) {
			case []any:
				for _, b := range arg {
					if equal(b, x) {
						return false, nil
					}
				}
				return true, nil
			case map[string]any:
				m, err := matchOne(arg, x)
				return !m, err
			default:
				return !equal(arg, x), nil
			}
		case "numeric":
			return matchNumeric(arg, x)
		default:
			return false, fmt.Errorf("pattern operator %q is not supported by the fake", name)
		}
	}
	return false, nil
}

func stringArg(arg any) (string, bool, error) {
	switch arg := arg.(type) {
	case string:
		return arg, false, nil
	case map[string]any:
		if s, ok := arg["equals-ignore-case"].(string); ok && len(arg) == 1 {
			return s, true, nil
		}
	}
	return "", false, fmt.Errorf("prefix and suffix take a string or {\"equals-ignore-case\": string}")
}

func matchNumeric(arg, x any) (bool, error) {
	conds, ok := arg.([]any)
	if !ok || len(conds) == 0 || len(conds)%2 != 0 {
		return false, fmt.Errorf("numeric takes [op, number, ...]")
	}
	v, ok := number(x)
	if !ok {
		return false, nil
	}
	for i := 0; i < len(conds); i += 2 {
		op, _ := conds[i].(string)
		n, ok := number(conds[i+1])
		if !ok {
			return false, fmt.Errorf("numeric: %v is not a number", conds[i+1])
		}
		var m bool
		switch op {
		case "<":
			m = v < n
		case "<=":
			m = v <= n
		case "=":
			m = v == n
		case ">=":
			m = v >= n
		case ">":
			m = v > n
		default:
			return false, fmt.Errorf("numeric: unknown operator %q", op)
		}
		if !m {
			return false, nil
		}
	}
	return true, nil
}

func number(x any) (float64, bool) {
	switch x := x.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return math.NaN(), false
}

func equal(a, x any) bool {
	if an, ok := number(a); ok {
		xn, ok := number(x)
		return ok && an == xn
	}
	return a == x
}

// wildcard matches s against a pattern where '*' stands for any run of
// characters, as EventBridge's wildcard operator does.
func wildcard(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
