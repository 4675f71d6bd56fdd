package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pingTimeout bounds the first contact with the brokers, so a wrong address
// fails fast instead of waiting silently.
var pingTimeout = 15 * time.Second

type tailOptions struct {
	brokers       string
	topic         string
	fromBeginning bool
	account       string
	max           int
}

func newTailCommand(env Env) *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the audit events on the topic as JSON lines",
		Long: `tail reads every partition of the audit event topic (without a consumer
group, so it commits nothing and disturbs no one) and prints each event as one
JSON line on stdout, in the seed's attributes shape. A record that is not a
valid event is reported on stderr with its partition, offset and reason, and
tail goes on. Ctrl-C stops it.

By default tail starts at the end of the topic and prints new events only.`,
		Example: `  auditctl tail --from-beginning
  auditctl tail --account acc-sscctbisjkl3123 --max 10 --brokers kafka-1:9092,kafka-2:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.max < 0 {
				return fmt.Errorf("--max must be 0 (no limit) or more, not %d", o.max)
			}
			brokers := splitList(o.brokers)
			if len(brokers) == 0 {
				return errors.New("--brokers must name at least one host:port")
			}
			if o.topic == "" {
				return errors.New("--topic must not be empty")
			}
			return tail(cmd.Context(), o, brokers, env.Stdout, env.Stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.brokers, "brokers", defaultBrokers(env.Getenv), "comma-separated Kafka brokers (default from $"+EnvBrokers+")")
	f.StringVar(&o.topic, "topic", DefaultTopic, "topic to read")
	f.BoolVar(&o.fromBeginning, "from-beginning", false, "start at the oldest event instead of the newest")
	f.StringVar(&o.account, "account", "", "print only the events of this account id")
	f.IntVar(&o.max, "max", 0, "stop after this many events (0 = run until Ctrl-C)")
	return cmd
}

func tail(ctx context.Context, o tailOptions, brokers []string, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	start := kgo.NewOffset().AtEnd()
	if o.fromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("auditctl"),
		kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(start),
	)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	err = cl.Ping(pingCtx)
	cancel()
	if ctx.Err() != nil {
		return nil // interrupted: not an error
	}
	if err != nil {
		return fmt.Errorf("cannot reach Kafka at %v: %w", brokers, err)
	}

	out := bufio.NewWriter(stdout)
	var (
		buf     []byte
		printed int
	)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return out.Flush()
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				fmt.Fprintf(stderr, "auditctl: warning: fetch %s partition %d: %v\n", topic, partition, err)
			}
		})
		for it := fetches.RecordIter(); !it.Done(); {
			rec := it.Next()
			ev, err := auditevent.DecodeRecord(rec)
			if err != nil {
				fmt.Fprintf(stderr, "auditctl: warning: skipping record at partition %d offset %d: %s\n", rec.Partition, rec.Offset, describe(err))
				continue
			}
			if o.account != "" && auditevent.AccountID(ev) != o.account {
				continue
			}
			buf = auditevent.AppendJSON(buf[:0], ev)
			buf = append(buf, '\n')
			if _, err := out.Write(buf); err != nil {
				return err
			}
			printed++
			if o.max > 0 && printed >= o.max {
				return out.Flush()
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// describe renders a decode error as "reason (field): message".
func describe(err error) string {
	var fe *auditevent.FieldError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	s := fe.Reason
	if fe.Field != "" {
		s += " (" + fe.Field + ")"
	}
	return s + ": " + fe.Message
}
