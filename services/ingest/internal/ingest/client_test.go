package ingest

import (
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

func newTestClient(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*kgo.Client, error) {
	return kafka.NewClient(cfg.Kafka, log, reg, ProducerOpts(cfg)...)
}
