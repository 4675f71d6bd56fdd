package otlp

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// A request is built from entries by splicing their protobuf: an entry is
// an ExportLogsServiceRequest with one ResourceLogs, one ScopeLogs and one
// LogRecord, and a request is the same message with the records of an
// account under one ResourceLogs. Decoding every entry into pdata, copying
// its record into the request's pdata and marshalling that again cost
// several times what copying the bytes does; the result is byte for byte
// what the pdata path marshals (FuzzSpliceMatchesPdata).

// Field numbers of opentelemetry/proto/collector/logs/v1 and logs/v1.
const (
	fieldRequestResourceLogs = 1 // ExportLogsServiceRequest.resource_logs

	fieldRLResource  = 1 // ResourceLogs.resource
	fieldRLScopeLogs = 2 // ResourceLogs.scope_logs
	fieldRLSchemaURL = 3 // ResourceLogs.schema_url

	fieldSLScope      = 1 // ScopeLogs.scope
	fieldSLLogRecords = 2 // ScopeLogs.log_records
	fieldSLSchemaURL  = 3 // ScopeLogs.schema_url

	fieldResourceAttributes = 1 // Resource.attributes
	fieldKeyValueKey        = 1 // KeyValue.key
	fieldKeyValueValue      = 2 // KeyValue.value
	fieldAnyValueString     = 1 // AnyValue.string_value
)

// splicedEntry is an entry's parts, each a slice of the entry: the field
// contents without tag or length; has* say whether the field was there.
type splicedEntry struct {
	resource, scope      []byte
	hasResource          bool
	hasScope             bool
	rlSchema, slSchema   []byte
	record               []byte
	account, serviceName []byte
}

// parseEntry splits an entry as Encode makes it. It fails on anything
// else: bad framing, other than one ResourceLogs, ScopeLogs or LogRecord,
// or fields it does not know (which it could not carry over as pdata
// would).
func parseEntry(b []byte) (splicedEntry, error) {
	var e splicedEntry
	rl, err := onlyMessage(b, fieldRequestResourceLogs, "resource_logs")
	if err != nil {
		return e, err
	}
	var sl []byte
	nSL := 0
	err = eachField(rl, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldRLResource:
			e.resource, e.hasResource = v, true
		case fieldRLScopeLogs:
			sl = v
			nSL++
		case fieldRLSchemaURL:
			e.rlSchema = v
		default:
			return fmt.Errorf("resource_logs has unexpected field %d", num)
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	if nSL != 1 {
		return e, fmt.Errorf("holds %d scope_logs, not 1", nSL)
	}
	nRec := 0
	err = eachField(sl, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldSLScope:
			e.scope, e.hasScope = v, true
		case fieldSLLogRecords:
			e.record = v
			nRec++
		case fieldSLSchemaURL:
			e.slSchema = v
		default:
			return fmt.Errorf("scope_logs has unexpected field %d", num)
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	if nRec != 1 {
		return e, fmt.Errorf("holds %d log records, not 1", nRec)
	}
	if err := eachField(e.record, func(protowire.Number, []byte) error { return nil }); err != nil {
		return e, fmt.Errorf("log record: %w", err)
	}
	if err := e.readResource(); err != nil {
		return e, err
	}
	return e, nil
}

// readResource finds the attributes requests are grouped by: the first of
// each key, a string or else "", as pcommon.Map.Get and Value.Str give.
func (e *splicedEntry) readResource() error {
	var gotAccount, gotService bool
	return eachField(e.resource, func(num protowire.Number, kv []byte) error {
		if num != fieldResourceAttributes {
			return nil
		}
		var key, val []byte
		err := eachField(kv, func(num protowire.Number, v []byte) error {
			switch num {
			case fieldKeyValueKey:
				key = v
			case fieldKeyValueValue:
				val = v
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("resource attribute: %w", err)
		}
		var dst *[]byte
		switch {
		case !gotAccount && string(key) == AttrAccountID:
			gotAccount, dst = true, &e.account
		case !gotService && string(key) == AttrServiceName:
			gotService, dst = true, &e.serviceName
		default:
			return nil
		}
		// A oneof's last field wins; only a string gives a value.
		*dst = nil
		return eachField(val, func(num protowire.Number, v []byte) error {
			if num == fieldAnyValueString {
				*dst = v
			} else {
				*dst = nil
			}
			return nil
		})
	})
}

// onlyMessage returns the contents of the one field num of b, which must
// have no other field.
func onlyMessage(b []byte, num protowire.Number, name string) ([]byte, error) {
	var out []byte
	n := 0
	err := eachField(b, func(got protowire.Number, v []byte) error {
		if got != num {
			return fmt.Errorf("unexpected field %d", got)
		}
		out = v
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("holds %d %s, not 1", n, name)
	}
	return out, nil
}

var errGroup = errors.New("groups are not supported")

// eachField calls f with each field of b: length-delimited ones with their
// contents, others with nil after checking their framing.
func eachField(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.StartGroupType, protowire.EndGroupType:
			return errGroup
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// spliceRequest appends the ExportLogsServiceRequest of the entries at idx
// to dst: one ResourceLogs per account and service.name, in the order of
// their first entry, each with the first entry's resource and scope and
// every record in order.
func spliceRequest(dst []byte, entries []splicedEntry, idx []int) []byte {
	type group struct {
		first   int
		members []int
	}
	var groups []group
	byKey := make(map[string]int, 1)
	var key []byte
	for _, i := range idx {
		e := &entries[i]
		key = append(append(append(key[:0], e.account...), 0), e.serviceName...)
		g, ok := byKey[string(key)]
		if !ok {
			g = len(groups)
			byKey[string(key)] = g
			groups = append(groups, group{first: i})
		}
		groups[g].members = append(groups[g].members, i)
	}
	bytesField := func(n int) int { return 1 + protowire.SizeBytes(n) } // field numbers here fit one tag byte
	optional := func(has bool, v []byte) int {
		if !has && len(v) == 0 {
			return 0
		}
		return bytesField(len(v))
	}
	for _, g := range groups {
		first := &entries[g.first]
		slLen := optional(first.hasScope, first.scope) + optional(false, first.slSchema)
		for _, i := range g.members {
			slLen += bytesField(len(entries[i].record))
		}
		rlLen := optional(first.hasResource, first.resource) + bytesField(slLen) + optional(false, first.rlSchema)

		// pdata writes a message's fields from the last number to the first.
		dst = protowire.AppendTag(dst, fieldRequestResourceLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(rlLen))
		if len(first.rlSchema) > 0 {
			dst = protowire.AppendTag(dst, fieldRLSchemaURL, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.rlSchema)
		}
		dst = protowire.AppendTag(dst, fieldRLScopeLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(slLen))
		if len(first.slSchema) > 0 {
			dst = protowire.AppendTag(dst, fieldSLSchemaURL, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.slSchema)
		}
		for _, i := range g.members {
			dst = protowire.AppendTag(dst, fieldSLLogRecords, protowire.BytesType)
			dst = protowire.AppendBytes(dst, entries[i].record)
		}
		if first.hasScope {
			dst = protowire.AppendTag(dst, fieldSLScope, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.scope)
		}
		if first.hasResource {
			dst = protowire.AppendTag(dst, fieldRLResource, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.resource)
		}
	}
	return dst
}
