package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Limits of produce.
const (
	// DefaultMaxLineBytes is ingest's default max_event_bytes: a line that
	// ingest would refuse is refused here too.
	DefaultMaxLineBytes = 256 << 10
	// produceChunk is how many events are written, and awaited, at once.
	produceChunk = 500
	// maxLineErrors bounds the per-line errors kept and printed; the rest
	// are only counted.
	maxLineErrors = 1000
)

// Reasons of produce's per-line errors that are not the codec's.
const (
	reasonLineTooLong = "too_large"
	reasonWriteFailed = "write_failed"
)

type produceOptions struct {
	file         string
	topic        string
	maxLineBytes config.ByteSize
	output       outputFlag
}

func newProduceCommand(g *globals) *cobra.Command {
	o := produceOptions{maxLineBytes: DefaultMaxLineBytes, output: outputText}
	cmd := &cobra.Command{
		Use:   "produce --file events.ndjson",
		Short: "Publish events from a file of JSON lines straight to the topic",
		Long: `produce reads one event a line, in the seed's JSON form (the record format's
JSON, as tail prints it), and publishes them with the producer package, the
code ingest uses: tokens are masked, missing ids (UUIDv7) and timestamps are
filled in, every event is checked as strictly as ingest does (unknown keys
are errors), and each is written as protobuf with acks=all.

A bad line does not stop the others: it is reported on stderr with its line
number and the field at fault, and counted. Blank lines are skipped. produce
ends with the counts of events written and failed, and exits non-zero when
any failed. --file - reads stdin.`,
		Example: `  auditctl produce --file events.ndjson
  auditctl tail --from-beginning --account acc-123 --max 100 | auditctl produce --file - --brokers staging-kafka:9092
  auditctl produce --file events.ndjson --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.file == "" {
				return errors.New("--file is required: a file of JSON lines, or - for stdin")
			}
			if o.maxLineBytes <= 0 {
				return fmt.Errorf("--max-line-bytes must be positive, not %d", o.maxLineBytes)
			}
			if cmd.Flags().Changed("topic") && o.topic == "" {
				return errors.New("--topic must not be empty")
			}
			in := g.env.Stdin
			if o.file != "-" {
				f, err := os.Open(o.file)
				if err != nil {
					return fmt.Errorf("open --file: %w", err)
				}
				defer f.Close()
				in = f
			}
			cfg, err := g.loadWithDefaults(&o.topic, nil)
			if err != nil {
				return err
			}
			return produce(cmd.Context(), g, cfg, o, in)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "file of events, one JSON object a line; - reads stdin (required)")
	f.StringVar(&o.topic, "topic", "", "topic to write (default kafka.topics.events.name, audit.events)")
	f.Var(&byteSizeFlag{&o.maxLineBytes}, "max-line-bytes", "longest line accepted, like ingest's max_event_bytes (256KiB)")
	f.VarP(&o.output, "output", "o", "text or json (the summary and every line error as one JSON document)")
	return cmd
}

// LineError is one line that was not written.
type LineError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e LineError) String() string {
	s := fmt.Sprintf("line %d: ", e.Line)
	if e.Field != "" {
		s += "field " + e.Field + ": "
	}
	return s + e.Reason + ": " + e.Message
}

// ProduceSummary is what produce reports.
type ProduceSummary struct {
	File    string `json:"file"`
	Topic   string `json:"topic"`
	Lines   int    `json:"lines"`
	Events  int    `json:"events"`
	Written int    `json:"written"`
	Failed  int    `json:"failed"`
	// Errors holds the first maxLineErrors line errors; ErrorsOmitted
	// counts the rest.
	Errors        []LineError `json:"errors"`
	ErrorsOmitted int         `json:"errors_omitted,omitempty"`
}

// producing is one produce run.
type producing struct {
	ctx     context.Context
	g       *globals
	o       produceOptions
	p       *producer.Producer
	sum     ProduceSummary
	pending []*auditlogv1.AuditEvent
	lines   []int // the line of each pending event
}

func produce(ctx context.Context, g *globals, cfg *Config, o produceOptions, in io.Reader) error {
	cl, err := g.connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := checkTopics(ctx, g, kadm.NewClient(cl), o.topic); err != nil {
		return err
	}
	run := &producing{ctx: ctx, g: g, o: o, p: producer.New(cl, o.topic),
		sum: ProduceSummary{File: o.file, Topic: o.topic, Errors: []LineError{}}}
	readErr := run.readAll(in)
	run.flush()
	if err := run.report(); err != nil {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after %d lines: %w", run.sum.Lines, ctx.Err())
	case readErr != nil:
		return fmt.Errorf("read --file %s after line %d: %w", o.file, run.sum.Lines, readErr)
	case run.sum.Failed > 0:
		return fmt.Errorf("%d of %d events failed", run.sum.Failed, run.sum.Events)
	}
	return nil
}

// readAll reads every line, publishing events in chunks as it goes.
func (r *producing) readAll(in io.Reader) error {
	lines := newLineReader(in, int(r.o.maxLineBytes))
	now := r.g.env.Now()
	for r.ctx.Err() == nil {
		line, tooLong, err := lines.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		r.sum.Lines = lines.n
		if tooLong {
			r.sum.Events++
			r.fail(LineError{Line: lines.n, Reason: reasonLineTooLong, Message: fmt.Sprintf("line is longer than %d bytes", r.o.maxLineBytes)})
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.sum.Events++
		ev, err := auditevent.DecodeJSON(line, auditevent.DecodeOptions{DisallowUnknownFields: true})
		if err == nil {
			if errs := producer.Prepare([]*auditlogv1.AuditEvent{ev}, now); len(errs) > 0 {
				err = errs[0]
			}
		}
		if err != nil {
			r.fail(lineError(lines.n, err))
			continue
		}
		r.pending = append(r.pending, ev)
		r.lines = append(r.lines, lines.n)
		if len(r.pending) >= produceChunk {
			r.flush()
		}
	}
	return nil
}

// flush writes the pending events and waits for Kafka's answers.
func (r *producing) flush() {
	if len(r.pending) == 0 {
		return
	}
	res, _ := r.p.PublishPrepared(r.ctx, r.pending)
	for i, err := range res.Errors {
		if err != nil {
			r.fail(LineError{Line: r.lines[i], Reason: reasonWriteFailed, Message: err.Error()})
		} else {
			r.sum.Written++
		}
	}
	r.pending, r.lines = r.pending[:0], r.lines[:0]
}

func (r *producing) fail(e LineError) {
	r.sum.Failed++
	e.Message = printable(e.Message)
	if len(r.sum.Errors) >= maxLineErrors {
		r.sum.ErrorsOmitted++
		return
	}
	r.sum.Errors = append(r.sum.Errors, e)
	if !r.o.output.json() {
		fmt.Fprintf(r.g.env.Stderr, "auditctl: %s\n", e)
	}
}

func (r *producing) report() error {
	s := r.sum
	if r.o.output.json() {
		return writeJSON(r.g.env.Stdout, s)
	}
	if s.ErrorsOmitted > 0 {
		fmt.Fprintf(r.g.env.Stderr, "auditctl: %d more line errors not shown\n", s.ErrorsOmitted)
	}
	if s.Events == 0 && r.ctx.Err() == nil {
		fmt.Fprintf(r.g.env.Stderr, "auditctl: no events in %s\n", displayFile(s.File))
	}
	_, err := fmt.Fprintf(r.g.env.Stdout, "written %d, failed %d (%d lines of %s to %s)\n", s.Written, s.Failed, s.Lines, displayFile(s.File), s.Topic)
	return err
}

func displayFile(f string) string {
	if f == "-" {
		return "stdin"
	}
	return f
}

// lineError turns a decode or validation error into a LineError.
func lineError(line int, err error) LineError {
	var fe *auditevent.FieldError
	if errors.As(err, &fe) {
		return LineError{Line: line, Field: fe.Field, Reason: fe.Reason, Message: fe.Message}
	}
	return LineError{Line: line, Reason: "invalid", Message: err.Error()}
}

// printable keeps a message from carrying raw bytes of a binary input to
// the terminal.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// lineReader reads lines of at most max bytes. Longer lines are skipped,
// not held: memory stays bounded by max whatever the input.
type lineReader struct {
	r   *bufio.Reader
	max int
	n   int // number of the line last returned
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, max+2), max: max}
}

// next returns the next line without its line ending, or tooLong when the
// line is longer than max (its bytes are skipped). It returns io.EOF at the
// end of the input.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	line, err = lr.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = lr.r.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		lr.n++
		return nil, true, nil
	case errors.Is(err, io.EOF) && len(line) == 0:
		return nil, false, io.EOF
	case err != nil && !errors.Is(err, io.EOF):
		return nil, false, err
	}
	lr.n++
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > lr.max {
		return nil, true, nil
	}
	return line, false, nil
}

// checkTopics fails with a clear message when a topic does not exist.
func checkTopics(ctx context.Context, g *globals, adm *kadm.Client, topics ...string) error {
	rctx, cancel := g.requestContext(ctx)
	defer cancel()
	details, err := adm.ListTopics(rctx, topics...)
	if err != nil {
		return fmt.Errorf("look up topics %s: %w", strings.Join(topics, ", "), err)
	}
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil {
			return fmt.Errorf("topic %s does not exist", t)
		}
	}
	return nil
}

// byteSizeFlag is a pflag.Value for sizes written as 256KiB, 1MB or bytes.
type byteSizeFlag struct{ v *config.ByteSize }

func (f *byteSizeFlag) Set(s string) error { return f.v.UnmarshalText([]byte(s)) }
func (f *byteSizeFlag) String() string {
	if f.v == nil {
		return "0"
	}
	b, _ := f.v.MarshalText()
	return string(b)
}
func (f *byteSizeFlag) Type() string { return "size" }
