package server

import (
	"maps"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the replication layer's, named maftia_smr_*.
type metrics struct {
	accepted, replies prometheus.Counter
	refusedC          *prometheus.CounterVec
	conns             prometheus.Gauge
	verifyBatch       prometheus.Histogram

	mu       sync.Mutex
	refusedN map[string]uint64
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "maftia_smr_requests_accepted_total",
			Help: "Client requests whose signature verified and that were submitted for ordering."}),
		replies: prometheus.NewCounter(prometheus.CounterOpts{Name: "maftia_smr_replies_total",
			Help: "Signed replies sent to clients."}),
		refusedC: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maftia_smr_refused_total",
			Help: "Client requests refused before ordering, by reason."}, []string{"reason"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "maftia_smr_client_connections",
			Help: "Open client connections."}),
		verifyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "maftia_smr_verify_batch_size",
			Help:    "Client request signatures per ingress verification batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64}}),
		refusedN: map[string]uint64{},
	}
	stat := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{m.accepted, m.replies, m.refusedC, m.conns, m.verifyBatch,
		stat("maftia_smr_executed_total", "Requests executed on the state machine.", func() float64 { return float64(s.Stats().Executed) }),
		stat("maftia_smr_duplicates_total", "Retried or replayed requests answered from the session or dropped (exactly-once).", func() float64 { return float64(s.Stats().Duplicates) }),
		stat("maftia_smr_rejected_total", "Ordered requests rejected at execution (invalid signature).", func() float64 { return float64(s.Stats().Rejected) }),
		stat("maftia_smr_malformed_total", "Ordered requests that did not decode.", func() float64 { return float64(s.Stats().Malformed) }),
		stat("maftia_smr_transfers_total", "Certified checkpoints installed by state transfer from peers.", func() float64 { return float64(s.Transfers()) }),
		stat("maftia_smr_engine_records_collected_total", "Persisted records of finished abc epochs deleted (garbage collection).", func() float64 { return float64(s.collected.Load()) }),
		stat("maftia_smr_idle_probes_total", "Probes for newer certified checkpoints sent because this replica's position stayed put for a probe period.", func() float64 { return float64(s.idleProbes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "maftia_smr_position_batches", Help: "Last executed batch."},
			func() float64 { return float64(s.Position()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "maftia_smr_checkpoint_batches", Help: "Position of the latest certified (n−f threshold-signed) checkpoint."},
			func() float64 { return float64(s.StableCheckpoint()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{ReasonMalformed, ReasonOversized, ReasonUnknownClient, ReasonBadSignature, ReasonOverloaded} {
		m.refusedC.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) refused(reason string) {
	m.refusedC.WithLabelValues(reason).Inc()
	m.mu.Lock()
	m.refusedN[reason]++
	m.mu.Unlock()
}

func (m *metrics) refusedSnapshot() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.refusedN)
}
