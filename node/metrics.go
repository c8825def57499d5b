package node

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maftia/maftia/core"
)

// Reasons a received message is dropped before Step.
const (
	DropMalformed      = "malformed"       // envelope does not decode (evidence: malformed)
	DropSenderMismatch = "sender_mismatch" // envelope sender is not the authenticated peer (evidence: unexpected)
	DropPrecheck       = "precheck"        // the core's Precheck refused it
	DropShutdown       = "shutdown"        // arrived while stopping
)

// maxRecentEvidence bounds the evidence kept for /status.
const maxRecentEvidence = 32

type metrics struct {
	steps, received, sent, delivered, persisted atomic.Uint64
	timers, requests                            atomic.Uint64

	stepsC     prometheus.Counter
	receivedC  prometheus.Counter
	sentC      prometheus.Counter
	deliveredC prometheus.Counter
	persistedC prometheus.Counter
	dropped    *prometheus.CounterVec
	evidenceC  *prometheus.CounterVec
	stepTime   prometheus.Histogram
	batch      prometheus.Histogram

	mu       sync.Mutex
	drops    map[string]uint64
	evidence map[core.NodeID]map[core.EvidenceKind]uint64
	recent   []core.Evidence
}

func newMetrics(reg prometheus.Registerer, self string) (*metrics, error) {
	labels := prometheus.Labels{"replica": self}
	m := &metrics{
		stepsC:     prometheus.NewCounter(prometheus.CounterOpts{Name: "maftia_node_steps_total", Help: "Events stepped into the root core.", ConstLabels: labels}),
		receivedC:  prometheus.NewCounter(prometheus.CounterOpts{Name: "maftia_node_received_messages_total", Help: "Envelopes received from the transport.", ConstLabels: labels}),
		sentC:      prometheus.NewCounter(prometheus.CounterOpts{Name: "maftia_node_sent_messages_total", Help: "Messages sent (one per destination, self included).", ConstLabels: labels}),
		deliveredC: prometheus.NewCounter(prometheus.CounterOpts{Name: "maftia_node_deliveries_total", Help: "Deliveries handed to the application.", ConstLabels: labels}),
		persistedC: prometheus.NewCounter(prometheus.CounterOpts{Name: "maftia_node_persisted_records_total", Help: "Records made durable before sending.", ConstLabels: labels}),
		dropped:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maftia_node_dropped_messages_total", Help: "Received messages dropped before Step, by reason.", ConstLabels: labels}, []string{"reason"}),
		evidenceC:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maftia_node_evidence_total", Help: "Evidence of misbehaviour, by accused replica and kind.", ConstLabels: labels}, []string{"accused", "kind"}),
		stepTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "maftia_node_flush_duration_seconds", Help: "Time to make a batch durable and perform its effects.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "maftia_node_batch_events", Help: "Events stepped per batch (one storage commit each).",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		drops:    make(map[string]uint64),
		evidence: make(map[core.NodeID]map[core.EvidenceKind]uint64),
	}
	for _, c := range []prometheus.Collector{m.stepsC, m.receivedC, m.sentC, m.deliveredC, m.persistedC, m.dropped, m.evidenceC, m.stepTime, m.batch} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) drop(reason string) {
	m.dropped.WithLabelValues(reason).Inc()
	m.mu.Lock()
	m.drops[reason]++
	m.mu.Unlock()
}

// accuse counts e and returns how many items of its accused and kind there
// are now.
func (m *metrics) accuse(e core.Evidence) uint64 {
	m.evidenceC.WithLabelValues(itoa(e.Accused), string(e.Kind)).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	byKind := m.evidence[e.Accused]
	if byKind == nil {
		byKind = make(map[core.EvidenceKind]uint64)
		m.evidence[e.Accused] = byKind
	}
	byKind[e.Kind]++
	if len(m.recent) == maxRecentEvidence {
		copy(m.recent, m.recent[1:])
		m.recent = m.recent[:maxRecentEvidence-1]
	}
	m.recent = append(m.recent, e)
	return byKind[e.Kind]
}
