package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/internal/reading"
)

// Metrics are the Prometheus metrics of the intake, the stream and
// delivery (CONTRACT §8); the journal has its own.
type Metrics struct {
	messages   *prometheus.CounterVec
	samples    *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	delay      *prometheus.HistogramVec
	lastSeen   *prometheus.GaugeVec
	queued     prometheus.Gauge
	seqGaps    prometheus.Counter
	seqRepeats prometheus.Counter
	ackDelay   prometheus.Histogram
	qcFlags    *prometheus.CounterVec
	qcFlag     [5]prometheus.Counter // by flag value 1–4, resolved once (hot path)
	skipped    *prometheus.CounterVec
	// sl651Skipped counts SL 651 elements not stored.
	sl651Skipped *prometheus.CounterVec
	// The results counted for every message, resolved once (hot path).
	msgAccepted, msgPartial, msgRejected prometheus.Counter
	samplesStored, samplesRejected       prometheus.Counter
}

// NewMetrics builds the metrics and registers them with r (nil: not
// registered, for tests).
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_messages_total",
			Help: "Broker messages processed, by result: accepted (all kept), partial (some samples or values rejected), rejected (whole message dead-lettered).",
		}, []string{"result"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_samples_total",
			Help: "Samples processed, by result: stored or rejected.",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_rejected_total",
			Help: "Rejected messages, samples and values, by reason; each is on the dead-letter topic.",
		}, []string{"reason"}),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rivermon_ingest_delay_seconds",
			Help:    "Time from a sample's timestamp to its storage, by InfluxDB output (backfilled samples land in the top buckets).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400},
		}, []string{"output"}),
		lastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rivermon_station_last_seen_timestamp_seconds",
			Help: "Timestamp of the newest stored sample of each station.",
		}, []string{"station"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rivermon_intake_queue_messages",
			Help: "Messages received and not yet taken into a batch.",
		}),
		seqGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rivermon_seq_gaps_total",
			Help: "Reading messages missing from station counters (seq jumps); per station in /api/v1/stations.",
		}),
		seqRepeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rivermon_seq_repeats_total",
			Help: "Reading messages whose counter repeats an earlier one (redeliveries, duplicates).",
		}),
		ackDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rivermon_ack_delay_seconds",
			Help:    "Time from a message's arrival to its acknowledgement (it is then in the spool).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 1.5, 24), // 0.5 ms to about 5 s
		}),
		qcFlags: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_qc_flags_total",
			Help: "Stored values by aggregate QARTOD flag (1 pass, 2 not evaluated, 3 suspect, 4 fail).",
		}, []string{"flag"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_derived_skipped_total",
			Help: "Derivations not made, by reason: outside_rating (stage outside every segment, no extrapolation), no_rating (no curve in force), eflow_too_late (older than the days the stream keeps: the statistics stage accounts the day from InfluxDB).",
		}, []string{"reason"}),
		sl651Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_sl651_skipped_total",
			Help: "SL 651 element values not stored, by element (mnemonic, or identifier in hex) and why: unmapped (an element rivermon does not map), missing (marked missing by the RTU), superseded (a shorter-period rainfall at the same time was kept).",
		}, []string{"element", "why"}),
	}
	m.msgAccepted, m.msgPartial, m.msgRejected = m.messages.WithLabelValues("accepted"),
		m.messages.WithLabelValues("partial"), m.messages.WithLabelValues("rejected")
	for f := 1; f <= 4; f++ {
		m.qcFlag[f] = m.qcFlags.WithLabelValues(strconv.Itoa(f))
	}
	for _, r := range []string{"outside_rating", "no_rating", "eflow_too_late"} {
		m.skipped.WithLabelValues(r)
	}
	m.samplesStored, m.samplesRejected = m.samples.WithLabelValues("stored"), m.samples.WithLabelValues("rejected")
	for _, r := range append(append(reading.Reasons(), ReasonInfluxRejected), append(hj212Reasons(), sl651Reasons()...)...) {
		m.rejected.WithLabelValues(r)
	}
	if r != nil {
		r.MustRegister(m.messages, m.samples, m.rejected, m.delay, m.lastSeen, m.queued, m.seqGaps, m.seqRepeats, m.ackDelay, m.qcFlags, m.skipped, m.sl651Skipped)
	}
	return m
}
