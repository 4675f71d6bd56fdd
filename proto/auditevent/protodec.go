package auditevent

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// decodeBlock holds an event and every message it can point to, so a decode
// allocates them together. The strings of one decode share one copy of the
// value.
type decodeBlock struct {
	ev                          auditlogv1.AuditEvent
	actor                       auditlogv1.Actor
	token                       auditlogv1.AccessToken
	request                     auditlogv1.Request
	outcome                     auditlogv1.Outcome
	target                      auditlogv1.Target
	context                     auditlogv1.Context
	account, environment, wsRef auditlogv1.Ref
	ts                          timestamppb.Timestamp
}

// decodeProtobufFast decodes the AuditEvent messages this schema defines
// without reflection. It gives up (ok false) on anything it does not handle
// exactly as proto.Unmarshal does: unknown fields, a field given twice,
// wrong wire types, invalid UTF-8, truncated input. The caller then runs
// proto.Unmarshal, which stays the reference (see the differential fuzz
// test).
func decodeProtobufFast(b []byte) (*auditlogv1.AuditEvent, bool) {
	blk := new(decodeBlock)
	d := protoDecoder{buf: b, src: string(b)}
	if !d.event(blk, 0, len(b)) {
		return nil, false
	}
	return &blk.ev, true
}

type protoDecoder struct {
	buf []byte // the value, parsed
	src string // one copy of it; string fields are substrings of it
}

// fields walks the fields of the message at src[from:to], calling fn with
// each field's number, wire type and, for bytes fields, the value's bounds,
// for varints its value. A field number seen twice ends the walk.
func (d *protoDecoder) fields(from, to int, fn func(num protowire.Number, typ protowire.Type, start, end int, v uint64) bool) bool {
	var seen uint32
	b := d.buf[from:to]
	pos := from
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num >= 32 {
			return false
		}
		if seen&(1<<num) != 0 && num != 10 { // extra (10) is a map: repeated entries
			return false
		}
		seen |= 1 << num
		b, pos = b[n:], pos+n
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 || !fn(num, typ, 0, 0, v) {
				return false
			}
			b, pos = b[m:], pos+m
		case protowire.BytesType:
			l, m := protowire.ConsumeVarint(b)
			if m < 0 || l > uint64(len(b)-m) {
				return false
			}
			start := pos + m
			end := start + int(l)
			if !fn(num, typ, start, end, 0) {
				return false
			}
			b, pos = b[m+int(l):], end
		default:
			return false
		}
	}
	return true
}

func (d *protoDecoder) str(dst *string, typ protowire.Type, start, end int) bool {
	if typ != protowire.BytesType {
		return false
	}
	s := d.src[start:end]
	if !utf8.ValidString(s) {
		return false
	}
	*dst = s
	return true
}

func (d *protoDecoder) event(blk *decodeBlock, from, to int) bool {
	ev := &blk.ev
	return d.fields(from, to, func(num protowire.Number, typ protowire.Type, s, e int, v uint64) bool {
		switch num {
		case 1:
			return d.str(&ev.Id, typ, s, e)
		case 2:
			ev.SchemaVersion = uint32(v)
			return typ == protowire.VarintType
		case 3:
			ev.Actor = &blk.actor
			return typ == protowire.BytesType && d.actor(blk, s, e)
		case 4:
			ev.Request = &blk.request
			return typ == protowire.BytesType && d.request(&blk.request, s, e)
		case 5:
			return d.str(&ev.Hostname, typ, s, e)
		case 6:
			return d.str(&ev.Service, typ, s, e)
		case 7:
			ev.Outcome = &blk.outcome
			return typ == protowire.BytesType && d.outcome(&blk.outcome, s, e)
		case 8:
			ev.Target = &blk.target
			return typ == protowire.BytesType && d.target(blk, s, e)
		case 9:
			ev.Timestamp = &blk.ts
			return typ == protowire.BytesType && d.timestamp(&blk.ts, s, e)
		case 10:
			if typ != protowire.BytesType {
				return false
			}
			if ev.Extra == nil {
				ev.Extra = make(map[string]string, 4)
			}
			var k, val string
			ok := d.fields(s, e, func(num protowire.Number, typ protowire.Type, s, e int, _ uint64) bool {
				switch num {
				case 1:
					return d.str(&k, typ, s, e)
				case 2:
					return d.str(&val, typ, s, e)
				}
				return false
			})
			ev.Extra[k] = val
			return ok
		}
		return false
	})
}

func (d *protoDecoder) actor(blk *decodeBlock, from, to int) bool {
	a := &blk.actor
	return d.fields(from, to, func(num protowire.Number, typ protowire.Type, s, e int, _ uint64) bool {
		switch num {
		case 1:
			return d.str(&a.Id, typ, s, e)
		case 2:
			return d.str(&a.Type, typ, s, e)
		case 3:
			return d.str(&a.Email, typ, s, e)
		case 4:
			a.AccessToken = &blk.token
			return typ == protowire.BytesType && d.fields(s, e, func(num protowire.Number, typ protowire.Type, s, e int, _ uint64) bool {
				switch num {
				case 1:
					return d.str(&blk.token.Type, typ, s, e)
				case 2:
					return d.str(&blk.token.Token, typ, s, e)
				}
				return false
			})
		}
		return false
	})
}

func (d *protoDecoder) request(r *auditlogv1.Request, from, to int) bool {
	return d.fields(from, to, func(num protowire.Number, typ protowire.Type, s, e int, _ uint64) bool {
		switch num {
		case 1:
			return d.str(&r.IpAddress, typ, s, e)
		case 2:
			return d.str(&r.Action, typ, s, e)
		case 3:
			return d.str(&r.Id, typ, s, e)
		case 4:
			return d.str(&r.Source, typ, s, e)
		case 5:
			return d.str(&r.UserAgent, typ, s, e)
		}
		return false
	})
}

func (d *protoDecoder) outcome(o *auditlogv1.Outcome, from, to int) bool {
	return d.fields(from, to, func(num protowire.Number, typ protowire.Type, s, e int, v uint64) bool {
		switch num {
		case 1:
			return d.str(&o.Result, typ, s, e)
		case 2:
			o.StatusCode = int32(v)
			return typ == protowire.VarintType
		}
		return false
	})
}

func (d *protoDecoder) target(blk *decodeBlock, from, to int) bool {
	t := &blk.target
	return d.fields(from, to, func(num protowire.Number, typ protowire.Type, s, e int, _ uint64) bool {
		switch num {
		case 1:
			return d.str(&t.Id, typ, s, e)
		case 2:
			return d.str(&t.Type, typ, s, e)
		case 3:
			return d.str(&t.DisplayName, typ, s, e)
		case 4:
			t.Context = &blk.context
			return typ == protowire.BytesType && d.fields(s, e, func(num protowire.Number, typ protowire.Type, s, e int, _ uint64) bool {
				var ref *auditlogv1.Ref
				switch num {
				case 1:
					ref, blk.context.Account = &blk.account, &blk.account
				case 2:
					ref, blk.context.Environment = &blk.environment, &blk.environment
				case 3:
					ref, blk.context.Workspace = &blk.wsRef, &blk.wsRef
				default:
					return false
				}
				return typ == protowire.BytesType && d.ref(ref, s, e)
			})
		}
		return false
	})
}

func (d *protoDecoder) ref(r *auditlogv1.Ref, from, to int) bool {
	return d.fields(from, to, func(num protowire.Number, typ protowire.Type, s, e int, _ uint64) bool {
		switch num {
		case 1:
			return d.str(&r.Id, typ, s, e)
		case 2:
			return d.str(&r.DisplayName, typ, s, e)
		}
		return false
	})
}

func (d *protoDecoder) timestamp(ts *timestamppb.Timestamp, from, to int) bool {
	return d.fields(from, to, func(num protowire.Number, typ protowire.Type, _, _ int, v uint64) bool {
		switch num {
		case 1:
			ts.Seconds = int64(v)
		case 2:
			ts.Nanos = int32(v)
		default:
			return false
		}
		return typ == protowire.VarintType
	})
}
