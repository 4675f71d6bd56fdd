package delivery

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	delivered    *prometheus.CounterVec
	failed       *prometheus.CounterVec
	retried      *prometheus.CounterVec
	parked       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	filtered     *prometheus.CounterVec
	filterErrors *prometheus.CounterVec
	batchSize    *prometheus.HistogramVec
	sendLatency  *prometheus.HistogramVec
	endToEnd     *prometheus.HistogramVec
	lag          *prometheus.GaugeVec
	healthy      *prometheus.GaugeVec
	retryHeld    prometheus.Gauge
}

// newMetrics registers the runtime's metrics; inflight reads the bytes of
// polled records not yet finished, kept by the runtime in an atomic so that
// the poll loop and the workers never contend on a gauge per record.
func newMetrics(reg prometheus.Registerer, forwarder string, inflight func() float64) *metrics {
	constLabels := prometheus.Labels{"forwarder": forwarder}
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_delivered_total", Help: "Events the destination accepted, by connection.", ConstLabels: constLabels,
		}, []string{"connection"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_failed_total", Help: "Failed delivery attempts per event, by connection and error class.", ConstLabels: constLabels,
		}, []string{"connection", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_retried_total", Help: "Events sent again after a retryable failure, by connection.", ConstLabels: constLabels,
		}, []string{"connection"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_parked_total", Help: "Events parked on the retry topic, by connection and reason.", ConstLabels: constLabels,
		}, []string{"connection", "reason"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_dead_lettered_total", Help: "Records written to the dead-letter topic, by reason.", ConstLabels: constLabels,
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_dropped_total", Help: "Parked events dropped because their route was removed or disabled meanwhile.", ConstLabels: constLabels,
		}, []string{"connection"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_filtered_total", Help: "Events a connection's filter excluded: finished for that connection without being sent.", ConstLabels: constLabels,
		}, []string{"connection"}),
		filterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_delivery_filter_errors_total", Help: "Events a connection's filter could not decide on (delivered all the same).", ConstLabels: constLabels,
		}, []string{"connection"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditstream_delivery_batch_size", Help: "Events per batch handed to a sink.", ConstLabels: constLabels,
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"connection"}),
		sendLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditstream_delivery_send_duration_seconds", Help: "Time of one WriteBatch call.", ConstLabels: constLabels,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"connection"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditstream_delivery_end_to_end_seconds", Help: "Event timestamp to acceptance by the destination.", ConstLabels: constLabels,
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 20),
		}, []string{"connection"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_delivery_lag_records", Help: "Records between the last fetched offset and the partition's high watermark.", ConstLabels: constLabels,
		}, []string{"topic", "partition"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_delivery_connection_healthy", Help: "1 while a connection delivers, 0 while it is marked unhealthy and its events are parked.", ConstLabels: constLabels,
		}, []string{"connection"}),
		retryHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_delivery_retry_held_bytes", Help: "Bytes of parked records read back and waiting for their due time.", ConstLabels: constLabels,
		}),
	}
	reg.MustRegister(m.delivered, m.failed, m.retried, m.parked, m.deadLettered, m.dropped, m.filtered, m.filterErrors, m.batchSize, m.sendLatency, m.endToEnd, m.lag, m.healthy, m.retryHeld,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "auditstream_delivery_inflight_bytes", Help: "Bytes of polled records not yet finished (bounded by max_inflight_bytes).", ConstLabels: constLabels,
		}, inflight))
	return m
}
