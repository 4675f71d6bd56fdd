package harness

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// broker is the in-process Kafka-protocol broker, on a fixed port and with
// a data directory, so a restart keeps topics, records and group offsets
// and the services find it again where they left it.
type broker struct {
	dir  string
	port int

	mu sync.Mutex
	cl *kfake.Cluster

	// seen is when each group member last sent a request of its own
	// (join, sync, heartbeat, commit), across restarts: see reapGhosts.
	seenMu sync.Mutex
	seen   map[string]time.Time
}

func startBroker(dir string) (*broker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &broker{dir: dir, port: port, seen: map[string]time.Time{}}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *broker) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

func (b *broker) start() error {
	var err error
	// The port was free a moment ago (or was the broker's own before a
	// restart); a socket left behind by the old listener may hold it for
	// an instant.
	for range 50 {
		var cl *kfake.Cluster
		cl, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(b.port), kfake.DataDir(b.dir))
		if err == nil {
			b.observeMembers(cl)
			b.mu.Lock()
			b.cl = cl
			b.mu.Unlock()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("start the broker on port %d with data in %s: %w", b.port, b.dir, err)
}

// stop closes the broker; Close writes its data to the directory.
func (b *broker) stop() {
	b.mu.Lock()
	cl := b.cl
	b.cl = nil
	b.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}

// restart stops the broker, waits down, and starts it again on the same
// port and data.
func (b *broker) restart(down time.Duration) error {
	b.stop()
	time.Sleep(down) // the outage itself
	return b.start()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// observeMembers records, for every request a group member sends, that the
// member is alive; the requests are then handled as usual.
func (b *broker) observeMembers(cl *kfake.Cluster) {
	for _, key := range []kmsg.Key{kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.OffsetCommit} {
		cl.ControlKey(key.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
			var id string
			switch r := req.(type) {
			case *kmsg.JoinGroupRequest:
				id = r.MemberID
			case *kmsg.SyncGroupRequest:
				id = r.MemberID
			case *kmsg.HeartbeatRequest:
				id = r.MemberID
			case *kmsg.OffsetCommitRequest:
				id = r.MemberID
			}
			if id != "" {
				b.seenMu.Lock()
				b.seen[id] = time.Now()
				b.seenMu.Unlock()
			}
			return nil, nil, false
		})
	}
}

// lastSeen is when member last sent a request, and whether it ever did.
func (b *broker) lastSeen(member string) (time.Time, bool) {
	b.seenMu.Lock()
	defer b.seenMu.Unlock()
	t, ok := b.seen[member]
	return t, ok
}
