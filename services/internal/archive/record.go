package archive

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/proto/auditevent"
)

// Filed is a record of the events topic as the archive files it.
type Filed struct {
	Account string
	ID      string
	// Time is the event's time (the record's when the event has none).
	Time time.Time
	// Window is the window the event is filed under.
	Window Window
	// Line is the event as it is stored: its JSON form, without newline.
	Line []byte
}

// WindowFor is the window an event is filed under: the one holding its own
// time, unless that is more than MaxFutureSkew ahead of its record's time,
// when the record's time decides, so a bad clock cannot hold a window open
// for days.
func (c PartitionConfig) WindowFor(eventTime, recordTime time.Time) Window {
	if !recordTime.IsZero() && eventTime.After(recordTime.Add(c.MaxFutureSkew)) {
		eventTime = recordTime
	}
	return WindowOf(eventTime, c.Window)
}

// FileRecord decodes a record of the events topic and files it by the rules
// of cfg (Window and MaxFutureSkew): its account, id, time, window and the
// line it is stored as. The archiver files every record with it, and a
// rebuild of archived objects from the topic does too, so both put the same
// events into the same windows as the same bytes.
//
// accept, when not nil, is asked about the account before anything else is
// done: for an account it refuses, ok is false and the event is not
// encoded. The line is appended to buf[:0], so a caller can hand the last
// Line back as buf. A record that is not a valid event is an error (the
// archiver dead-letters it).
func FileRecord(cfg PartitionConfig, rec *kgo.Record, accept func(account string) bool, buf []byte) (f Filed, ok bool, err error) {
	ev, err := auditevent.DecodeRecord(rec)
	if err != nil {
		return Filed{}, false, err
	}
	f.Account = auditevent.AccountID(ev)
	if accept != nil && !accept(f.Account) {
		return f, false, nil
	}
	f.ID = ev.GetId()
	f.Time = auditevent.EventTime(ev, rec)
	f.Window = cfg.WindowFor(f.Time, rec.Timestamp)
	f.Line = auditevent.AppendJSON(buf[:0], ev)
	return f, true, nil
}

// FileRecord is FileRecord with the partition's rules.
func (p *Partition) FileRecord(rec *kgo.Record, accept func(account string) bool, buf []byte) (Filed, bool, error) {
	return FileRecord(p.cfg, rec, accept, buf)
}
