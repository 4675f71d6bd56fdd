package auditevent

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"
)

// RecordAccount reads the account id (target.context.account.id) of the
// event a protobuf record holds without decoding the rest, so a consumer
// can route a record before, or instead of, decoding it. ok is false for a
// record that is not protobuf or whose path to the id is malformed; the
// caller then decodes it whole.
//
// The id is the one DecodeRecord's event would carry: occurrences of a
// message field merge and the last id wins, as in proto.Unmarshal. The rest
// of the event is not checked, so the record may still fail DecodeRecord,
// and a caller that acts on the account must check it against the decoded
// event before trusting anything else the record says.
func RecordAccount(rec *kgo.Record) (id string, ok bool) {
	switch recordContentType(rec) {
	case ContentTypeProtobuf:
	case "":
		if v := bytes.TrimLeft(rec.Value, " \t\r\n"); len(v) > 0 && v[0] == '{' {
			return "", false // JSON, as DecodeRecord takes it
		}
	default:
		return "", false
	}
	var last []byte
	ok = eachMessage(rec.Value, 8, func(target []byte) bool { // AuditEvent.target
		return eachMessage(target, 4, func(context []byte) bool { // Target.context
			return eachMessage(context, 1, func(account []byte) bool { // Context.account
				return eachMessage(account, 1, func(v []byte) bool { // Ref.id
					last = v
					return true
				})
			})
		})
	})
	if !ok {
		return "", false
	}
	return string(last), true
}

// eachMessage calls fn with the value of every occurrence of field num, a
// length-delimited field, in the message b. It is false when b is malformed
// or the field has another wire type, as proto.Unmarshal would refuse.
func eachMessage(b []byte, num protowire.Number, fn func([]byte) bool) bool {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		if n != num {
			if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
				return false
			}
			b = b[l:]
			continue
		}
		if typ != protowire.BytesType {
			return false
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 || !fn(v) {
			return false
		}
		b = b[l:]
	}
	return true
}
