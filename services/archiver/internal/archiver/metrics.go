package archiver

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	objects       *prometheus.CounterVec
	objectBytes   *prometheus.CounterVec
	events        *prometheus.CounterVec
	duplicates    prometheus.Counter
	lateEvents    prometheus.Counter
	windowsClosed *prometheus.CounterVec
	conflicts     *prometheus.CounterVec
	storageErrors *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	unrouted      prometheus.Counter
	uploadLatency *prometheus.HistogramVec
	flushLatency  prometheus.Histogram
	lag           *prometheus.GaugeVec
	openGroups    *prometheus.GaugeVec
	spoolBytes    *prometheus.GaugeVec
	digests       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_archive_objects_written_total", Help: "Data objects created, by connection and outcome (created, existed: an identical object was already there).",
		}, []string{"connection", "outcome"}),
		objectBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_archive_bytes_written_total", Help: "Compressed bytes of data objects created, by connection.",
		}, []string{"connection"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_archive_events_total", Help: "Events in data objects created or confirmed, by connection.",
		}, []string{"connection"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_archive_duplicates_dropped_total", Help: "Events left out because the same id was already in the account's group.",
		}),
		lateEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_archive_late_events_total", Help: "Events that arrived after their window closed and went into a late object.",
		}),
		windowsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_archive_groups_closed_total", Help: "Groups cut and written, by why they were cut (window, late, size, evicted, resumed).",
		}, []string{"reason"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_archive_conflicts_total", Help: "Conditional creates that found different bytes under the expected name (never overwritten; an alarm).",
		}, []string{"connection"}),
		storageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_archive_storage_errors_total", Help: "Failed store operations, by connection.",
		}, []string{"connection"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_archive_dead_lettered_total", Help: "Records written to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_archive_unrouted_events_total", Help: "Events of accounts with no storage route (not archived).",
		}),
		uploadLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditstream_archive_upload_seconds", Help: "Time to create one data object and its manifest, by connection.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"connection"}),
		flushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auditstream_archive_group_write_seconds", Help: "Time to write every object of a cut group.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_archive_partition_lag", Help: "Records behind the partition's end, by partition (from the last fetch).",
		}, []string{"partition"}),
		openGroups: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_archive_open_groups", Help: "Groups collecting events, by partition.",
		}, []string{"partition"}),
		spoolBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_archive_spool_bytes", Help: "Bytes spooled on local disk for open groups, by partition.",
		}, []string{"partition"}),
		digests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_archive_digests_written_total", Help: "Day digests and addenda created.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.objects, m.objectBytes, m.events, m.duplicates, m.lateEvents, m.windowsClosed, m.conflicts,
			m.storageErrors, m.deadLettered, m.unrouted, m.uploadLatency, m.flushLatency, m.lag, m.openGroups, m.spoolBytes, m.digests)
	}
	return m
}
