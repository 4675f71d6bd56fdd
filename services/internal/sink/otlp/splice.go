package otlp

import (
	"errors"
	"fmt"

	"github.com/auditstream/auditstream/services/internal/sink"
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

// Entry is an event as the sink takes it: the protobuf form of an
// ExportLogsServiceRequest holding its one record (what Encode returns),
// with where in it lie the parts a request is spliced from. They are found
// once, when the event is encoded, so that WriteBatch and its retries and
// splits only copy bytes. Only an Encoder makes an Entry; WriteBatch
// refuses the zero Entry as a bad entry.
type Entry struct {
	proto []byte
	at    entryParts
}

// Proto is the entry's ExportLogsServiceRequest in protobuf.
func (e Entry) Proto() []byte { return e.proto }

// span is where a part lies in its entry: offsets, which take less memory
// than slices for as long as the entry waits in the runtime.
type span struct{ off, end uint32 }

// entryParts are the parts of an entry: field contents without tag or
// length; has* say whether the field was there (it may be empty).
type entryParts struct {
	resource, scope      span
	rlSchema, slSchema   span
	record               span
	account, serviceName span
	hasResource          bool
	hasScope             bool
}

func (e *Entry) part(s span) []byte { return e.proto[s.off:s.end] }

// maxEntryBytes keeps every offset of an entry within a span.
const maxEntryBytes = 1<<32 - 1

// parseEntry splits an entry as Encode makes it. It fails on anything
// else: bad framing, other than one ResourceLogs, ScopeLogs or LogRecord,
// or fields it does not know (which it could not carry over as pdata
// would).
func parseEntry(b []byte) (Entry, error) {
	if uint64(len(b)) > maxEntryBytes {
		return Entry{}, fmt.Errorf("%d bytes, over %d", len(b), maxEntryBytes)
	}
	e := Entry{proto: b}
	// Every part is a slice of b made by reslicing it, so its offset in b
	// is the capacity it lost; nil is an absent part.
	at := func(v []byte) span {
		if v == nil {
			return span{}
		}
		off := uint32(cap(b) - cap(v))
		return span{off, off + uint32(len(v))}
	}
	rl, err := onlyMessage(b, fieldRequestResourceLogs, "resource_logs")
	if err != nil {
		return e, err
	}
	var sl, resource, record []byte
	nSL := 0
	err = eachField(rl, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldRLResource:
			resource, e.at.hasResource = v, true
			e.at.resource = at(v)
		case fieldRLScopeLogs:
			sl = v
			nSL++
		case fieldRLSchemaURL:
			e.at.rlSchema = at(v)
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
			e.at.scope, e.at.hasScope = at(v), true
		case fieldSLLogRecords:
			record = v
			e.at.record = at(v)
			nRec++
		case fieldSLSchemaURL:
			e.at.slSchema = at(v)
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
	if err := eachField(record, func(protowire.Number, []byte) error { return nil }); err != nil {
		return e, fmt.Errorf("log record: %w", err)
	}
	account, service, err := readResource(resource)
	if err != nil {
		return e, err
	}
	e.at.account, e.at.serviceName = at(account), at(service)
	return e, nil
}

// readResource finds the attributes requests are grouped by: the first of
// each key, a string or else "", as pcommon.Map.Get and Value.Str give.
func readResource(resource []byte) (account, service []byte, err error) {
	var gotAccount, gotService bool
	err = eachField(resource, func(num protowire.Number, kv []byte) error {
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
			gotAccount, dst = true, &account
		case !gotService && string(key) == AttrServiceName:
			gotService, dst = true, &service
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
	return account, service, err
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
func spliceRequest(dst []byte, entries []sink.Entry[Entry], idx []int) []byte {
	type group struct {
		first   int
		members []int
	}
	var groups []group
	byKey := make(map[string]int, 1)
	var key []byte
	for _, i := range idx {
		e := &entries[i].Value
		key = append(append(append(key[:0], e.part(e.at.account)...), 0), e.part(e.at.serviceName)...)
		g, ok := byKey[string(key)]
		if !ok {
			g = len(groups)
			byKey[string(key)] = g
			groups = append(groups, group{first: i})
		}
		groups[g].members = append(groups[g].members, i)
	}
	bytesField := func(n int) int { return 1 + protowire.SizeBytes(n) } // field numbers here fit one tag byte
	optional := func(has bool, s span) int {
		if !has && s.end == s.off {
			return 0
		}
		return bytesField(int(s.end - s.off))
	}
	for _, g := range groups {
		first := &entries[g.first].Value
		at := &first.at
		slLen := optional(at.hasScope, at.scope) + optional(false, at.slSchema)
		for _, i := range g.members {
			r := entries[i].Value.at.record
			slLen += bytesField(int(r.end - r.off))
		}
		rlLen := optional(at.hasResource, at.resource) + bytesField(slLen) + optional(false, at.rlSchema)

		// pdata writes a message's fields from the last number to the first.
		dst = protowire.AppendTag(dst, fieldRequestResourceLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(rlLen))
		if at.rlSchema.end > at.rlSchema.off {
			dst = protowire.AppendTag(dst, fieldRLSchemaURL, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.part(at.rlSchema))
		}
		dst = protowire.AppendTag(dst, fieldRLScopeLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(slLen))
		if at.slSchema.end > at.slSchema.off {
			dst = protowire.AppendTag(dst, fieldSLSchemaURL, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.part(at.slSchema))
		}
		for _, i := range g.members {
			e := &entries[i].Value
			dst = protowire.AppendTag(dst, fieldSLLogRecords, protowire.BytesType)
			dst = protowire.AppendBytes(dst, e.part(e.at.record))
		}
		if at.hasScope {
			dst = protowire.AppendTag(dst, fieldSLScope, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.part(at.scope))
		}
		if at.hasResource {
			dst = protowire.AppendTag(dst, fieldRLResource, protowire.BytesType)
			dst = protowire.AppendBytes(dst, first.part(at.resource))
		}
	}
	return dst
}
