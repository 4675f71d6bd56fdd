package auditevent

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The event's protobuf form, written without the reflection that the
// protobuf library spends on the extra map when marshalling
// deterministically. appendEventProto writes exactly the bytes of
// proto.MarshalOptions{Deterministic: true}: fields in field-number order,
// zero scalars left out, present messages written even when empty, map
// entries sorted by key with both key and value written. It covers the
// schema as eventProtoSchema lists it; if the generated code ever differs
// from that list, eventProtoSupported is false and NewRecord uses the
// protobuf library alone.

// eventSizes are the encoded sizes of an event's messages, computed once
// and used for the length prefixes.
type eventSizes struct {
	event, actor, accessToken, request, outcome, target, context, timestamp int
	refs                                                                    [3]int // account, environment, workspace
	// extra holds the entries of the extra map sorted by key.
	extra []extraEntry
}

type extraEntry struct{ key, value string }

// eventProtoSize returns the sizes of ev's encoding, or ok false when ev has
// something left to the protobuf library: unknown fields (from a newer
// schema) or a string that is not UTF-8 (which the library rejects). With
// validUTF8 the caller vouches for the strings and they are not checked.
// The extra entries are appended to buf for sz.extra.
func eventProtoSize(ev *auditlogv1.AuditEvent, buf []extraEntry, validUTF8 bool) (sz eventSizes, ok bool) {
	if hasUnknown(ev) {
		return sz, false
	}
	n, ok := sizeStrings(!validUTF8, ev.Id, ev.Hostname, ev.Service)
	if !ok {
		return sz, false
	}
	n += sizeVarint(uint64(ev.SchemaVersion))
	if a := ev.Actor; a != nil {
		if hasUnknown(a) {
			return sz, false
		}
		if sz.actor, ok = sizeStrings(!validUTF8, a.Id, a.Type, a.Email); !ok {
			return sz, false
		}
		if t := a.AccessToken; t != nil {
			if hasUnknown(t) {
				return sz, false
			}
			if sz.accessToken, ok = sizeStrings(!validUTF8, t.Type, t.Token); !ok {
				return sz, false
			}
			sz.actor += sizeMessage(sz.accessToken)
		}
		n += sizeMessage(sz.actor)
	}
	if r := ev.Request; r != nil {
		if hasUnknown(r) {
			return sz, false
		}
		if sz.request, ok = sizeStrings(!validUTF8, r.IpAddress, r.Action, r.Id, r.Source, r.UserAgent); !ok {
			return sz, false
		}
		n += sizeMessage(sz.request)
	}
	if o := ev.Outcome; o != nil {
		if hasUnknown(o) {
			return sz, false
		}
		if sz.outcome, ok = sizeStrings(!validUTF8, o.Result); !ok {
			return sz, false
		}
		sz.outcome += sizeVarint(uint64(o.StatusCode))
		n += sizeMessage(sz.outcome)
	}
	if t := ev.Target; t != nil {
		if hasUnknown(t) {
			return sz, false
		}
		if sz.target, ok = sizeStrings(!validUTF8, t.Id, t.Type, t.DisplayName); !ok {
			return sz, false
		}
		if c := t.Context; c != nil {
			if hasUnknown(c) {
				return sz, false
			}
			for i, r := range contextRefs(c) {
				if r == nil {
					continue
				}
				if hasUnknown(r) {
					return sz, false
				}
				if sz.refs[i], ok = sizeStrings(!validUTF8, r.Id, r.DisplayName); !ok {
					return sz, false
				}
				sz.context += sizeMessage(sz.refs[i])
			}
			sz.target += sizeMessage(sz.context)
		}
		n += sizeMessage(sz.target)
	}
	if ts := ev.Timestamp; ts != nil {
		if hasUnknown(ts) {
			return sz, false
		}
		sz.timestamp = sizeVarint(uint64(ts.Seconds)) + sizeVarint(uint64(int64(ts.Nanos)))
		n += sizeMessage(sz.timestamp)
	}
	for k, v := range ev.Extra {
		if !validUTF8 && (!utf8.ValidString(k) || !utf8.ValidString(v)) {
			return sz, false
		}
		n += sizeMessage(mapEntrySize(k, v))
		buf = append(buf, extraEntry{k, v})
	}
	// Deterministic marshalling writes map entries in key order.
	slices.SortFunc(buf, func(a, b extraEntry) int { return strings.Compare(a.key, b.key) })
	sz.extra = buf
	sz.event = n
	return sz, true
}

func contextRefs(c *auditlogv1.Context) [3]*auditlogv1.Ref {
	return [3]*auditlogv1.Ref{c.Account, c.Environment, c.Workspace}
}

func mapEntrySize(k, v string) int {
	// Both are written, empty or not.
	return 1 + protowire.SizeBytes(len(k)) + 1 + protowire.SizeBytes(len(v))
}

// appendEventProto appends ev's encoding, given the sizes eventProtoSize
// returned for it.
func appendEventProto(b []byte, ev *auditlogv1.AuditEvent, sz *eventSizes) []byte {
	b = appendString(b, 1, ev.Id)
	b = appendVarint(b, 2, uint64(ev.SchemaVersion))
	if a := ev.Actor; a != nil {
		b = appendTagLen(b, 3, sz.actor)
		b = appendString(b, 1, a.Id)
		b = appendString(b, 2, a.Type)
		b = appendString(b, 3, a.Email)
		if t := a.AccessToken; t != nil {
			b = appendTagLen(b, 4, sz.accessToken)
			b = appendString(b, 1, t.Type)
			b = appendString(b, 2, t.Token)
		}
	}
	if r := ev.Request; r != nil {
		b = appendTagLen(b, 4, sz.request)
		b = appendString(b, 1, r.IpAddress)
		b = appendString(b, 2, r.Action)
		b = appendString(b, 3, r.Id)
		b = appendString(b, 4, r.Source)
		b = appendString(b, 5, r.UserAgent)
	}
	b = appendString(b, 5, ev.Hostname)
	b = appendString(b, 6, ev.Service)
	if o := ev.Outcome; o != nil {
		b = appendTagLen(b, 7, sz.outcome)
		b = appendString(b, 1, o.Result)
		// int32 is written sign-extended to 64 bits.
		b = appendVarint(b, 2, uint64(o.StatusCode))
	}
	if t := ev.Target; t != nil {
		b = appendTagLen(b, 8, sz.target)
		b = appendString(b, 1, t.Id)
		b = appendString(b, 2, t.Type)
		b = appendString(b, 3, t.DisplayName)
		if c := t.Context; c != nil {
			b = appendTagLen(b, 4, sz.context)
			for i, r := range contextRefs(c) {
				if r != nil {
					b = appendTagLen(b, byte(i+1), sz.refs[i])
					b = appendString(b, 1, r.Id)
					b = appendString(b, 2, r.DisplayName)
				}
			}
		}
	}
	if ts := ev.Timestamp; ts != nil {
		b = appendTagLen(b, 9, sz.timestamp)
		b = appendVarint(b, 1, uint64(ts.Seconds))
		b = appendVarint(b, 2, uint64(int64(ts.Nanos)))
	}
	for _, e := range sz.extra {
		b = appendTagLen(b, 10, mapEntrySize(e.key, e.value))
		b = appendTagLen(b, 1, len(e.key))
		b = append(b, e.key...)
		b = appendTagLen(b, 2, len(e.value))
		b = append(b, e.value...)
	}
	return b
}

// sizeStrings returns the size of string fields numbered from 1 (every
// field number of this schema fits a one-byte tag), or ok false when check
// is set and one is not UTF-8.
func sizeStrings(check bool, ss ...string) (n int, ok bool) {
	for _, s := range ss {
		if s == "" {
			continue
		}
		if check && !utf8.ValidString(s) {
			return 0, false
		}
		n += 1 + protowire.SizeBytes(len(s))
	}
	return n, true
}

// sizeVarint is the size of a non-zero varint field with a one-byte tag.
func sizeVarint(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

// sizeMessage is the size of a message field of n bytes.
func sizeMessage(n int) int { return 1 + protowire.SizeBytes(n) }

// Every field number of this schema is below 16, so each tag is one byte:
// the number shifted left by three, or'ed with the wire type.
const (
	wireVarint = 0
	wireBytes  = 2
)

func appendString(b []byte, num byte, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, num<<3|wireBytes)
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendVarint(b []byte, num byte, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendUvarint(append(b, num<<3|wireVarint), v)
}

func appendTagLen(b []byte, num byte, n int) []byte {
	return appendUvarint(append(b, num<<3|wireBytes), uint64(n))
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// hasUnknown reports whether m holds fields of a newer schema, which the
// protobuf library writes after the known ones.
func hasUnknown(m protoreflect.ProtoMessage) bool {
	return len(m.ProtoReflect().GetUnknown()) > 0
}

// eventProtoSchema is the schema appendEventProto writes: per message, its
// fields as "number name kind cardinality".
var eventProtoSchema = map[protoreflect.FullName][]string{
	"auditlog.v1.AuditEvent": {
		"1 id string optional", "2 schema_version uint32 optional", "3 actor message optional",
		"4 request message optional", "5 hostname string optional", "6 service string optional",
		"7 outcome message optional", "8 target message optional", "9 timestamp message optional",
		"10 extra message repeated",
	},
	"auditlog.v1.AuditEvent.ExtraEntry": {"1 key string optional", "2 value string optional"},
	"auditlog.v1.Actor":                 {"1 id string optional", "2 type string optional", "3 email string optional", "4 access_token message optional"},
	"auditlog.v1.AccessToken":           {"1 type string optional", "2 token string optional"},
	"auditlog.v1.Request": {
		"1 ip_address string optional", "2 action string optional", "3 id string optional",
		"4 source string optional", "5 user_agent string optional",
	},
	"auditlog.v1.Outcome":       {"1 result string optional", "2 status_code int32 optional"},
	"auditlog.v1.Target":        {"1 id string optional", "2 type string optional", "3 display_name string optional", "4 context message optional"},
	"auditlog.v1.Context":       {"1 account message optional", "2 environment message optional", "3 workspace message optional"},
	"auditlog.v1.Ref":           {"1 id string optional", "2 display_name string optional"},
	"google.protobuf.Timestamp": {"1 seconds int64 optional", "2 nanos int32 optional"},
}

// eventProtoSupported reports whether the generated messages are the schema
// appendEventProto writes, field for field, all in proto3 files (so scalars
// have no presence and strings are checked for UTF-8).
var eventProtoSupported = func() bool {
	seen := map[protoreflect.FullName]bool{}
	var check func(md protoreflect.MessageDescriptor) bool
	check = func(md protoreflect.MessageDescriptor) bool {
		if seen[md.FullName()] {
			return true
		}
		seen[md.FullName()] = true
		want, ok := eventProtoSchema[md.FullName()]
		fields := md.Fields()
		if !ok || md.ParentFile().Syntax() != protoreflect.Proto3 || fields.Len() != len(want) ||
			md.Oneofs().Len() != 0 || md.ExtensionRanges().Len() != 0 {
			return false
		}
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fmt.Sprintf("%d %s %s %s", fd.Number(), fd.Name(), fd.Kind(), fd.Cardinality()) != want[i] {
				return false
			}
			if fd.HasPresence() && fd.Kind() != protoreflect.MessageKind && !md.IsMapEntry() {
				return false
			}
			if sub := fd.Message(); sub != nil && !check(sub) {
				return false
			}
		}
		return true
	}
	return check((*auditlogv1.AuditEvent)(nil).ProtoReflect().Descriptor()) && len(seen) == len(eventProtoSchema)
}()
