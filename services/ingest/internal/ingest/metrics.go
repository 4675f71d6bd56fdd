package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	accepted        prometheus.Counter
	rejected        *prometheus.CounterVec
	requests        *prometheus.CounterVec
	produceLatency  prometheus.Histogram
	requestLatency  *prometheus.HistogramVec
	inflightBytes   prometheus.Gauge
	kafkaAvailable  prometheus.Gauge
	unconfirmedSent prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_ingest_events_accepted_total",
			Help: "Events acknowledged by Kafka and answered 202.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_ingest_events_rejected_total",
			Help: "Events not accepted, by reason (invalid reasons, too_large, unauthorized, forbidden, unavailable, kafka_error).",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_ingest_requests_total",
			Help: "Requests answered, by protocol and status code.",
		}, []string{"protocol", "code"}),
		produceLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditstream_ingest_produce_duration_seconds",
			Help:    "Time from handing a request's events to Kafka until every one was acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		requestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditstream_ingest_request_duration_seconds",
			Help:    "Time to answer a request, by protocol.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"protocol"}),
		inflightBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_ingest_inflight_bytes",
			Help: "Request bytes being handled now (bounded by ingest.max_inflight_bytes).",
		}),
		kafkaAvailable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_ingest_kafka_available",
			Help: "1 when the last produce or probe reached Kafka, 0 while requests are refused with 503.",
		}),
		unconfirmedSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_ingest_events_unconfirmed_total",
			Help: "Events handed to Kafka whose acknowledgement did not arrive in time (answered as not written).",
		}),
	}
	reg.MustRegister(m.accepted, m.rejected, m.requests, m.produceLatency, m.requestLatency, m.inflightBytes, m.kafkaAvailable, m.unconfirmedSent)
	return m
}
