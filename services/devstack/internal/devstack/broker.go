package devstack

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
)

// StartBroker starts a one-node Kafka-protocol broker listening on addr
// (host:port; port 0 picks a free one). When dataDir is not empty the broker
// keeps its topics, records and group offsets there, so a broker started
// again on the same directory carries on where the last one stopped. The
// caller closes the cluster; Close flushes the data to disk.
func StartBroker(addr, dataDir string, log *zap.Logger, extra ...kfake.Opt) (*kfake.Cluster, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("broker address %q: bad port", addr)
	}
	if log == nil {
		log = zap.NewNop()
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.WithLogger(kfakeLogger{log.Sugar()}),
		// kfake always listens on 127.0.0.1; honour the host of addr.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	opts = append(opts, extra...)
	cl, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kafka broker on %s: %w", addr, err)
	}
	return cl, nil
}

// BrokerAddr returns the address the broker listens on.
func BrokerAddr(cl *kfake.Cluster) string {
	addrs := cl.ListenAddrs()
	if len(addrs) == 0 {
		return ""
	}
	return addrs[0]
}

// kfakeLogger passes the broker's warnings and errors to zap; its info and
// debug lines describe every request and would drown the services' output.
type kfakeLogger struct{ log *zap.SugaredLogger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Errorf(format, args...)
	case kfake.LogLevelWarn:
		l.log.Warnf(format, args...)
	}
}
