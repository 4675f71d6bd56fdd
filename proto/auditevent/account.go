package auditevent

import (
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
	if recordFormat(rec) != ContentTypeProtobuf {
		return "", false
	}
	var last []byte
	if !scanPath(rec.Value, accountPath[:], &last) {
		return "", false
	}
	return string(last), true
}

// accountPath is the field numbers from AuditEvent to the account id:
// target, context, account, id.
var accountPath = [...]protowire.Number{8, 4, 1, 1}

// scanPath sets *last to the value of every occurrence of the field path
// leads to, in the order proto.Unmarshal merges them, so the last one set
// is the one decoding gives. path's fields are all length-delimited. It is
// false when a message on the way is malformed, as proto.Unmarshal would
// refuse, or a field of path has another wire type (which proto.Unmarshal
// keeps as an unknown field: the caller's whole decode then decides).
func scanPath(b []byte, path []protowire.Number, last *[]byte) bool {
	for len(b) > 0 {
		var num protowire.Number
		var typ protowire.Type
		if c := b[0]; c < 0x80 { // a one-byte tag: field numbers below 16
			num, typ = protowire.Number(c>>3), protowire.Type(c&7)
			b = b[1:]
			if num == 0 {
				return false
			}
		} else {
			n, t, l := protowire.ConsumeTag(b)
			// ConsumeTag takes numbers up to 2^31-1; proto.Unmarshal
			// refuses those above the largest a schema may use.
			if l < 0 || n > protowire.MaxValidNumber {
				return false
			}
			num, typ, b = n, t, b[l:]
		}
		if num != path[0] {
			l := protowire.ConsumeFieldValue(num, typ, b)
			if l < 0 {
				return false
			}
			b = b[l:]
			continue
		}
		if typ != protowire.BytesType {
			return false
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return false
		}
		if len(path) == 1 {
			*last = v
		} else if !scanPath(v, path[1:], last) {
			return false
		}
		b = b[l:]
	}
	return true
}
