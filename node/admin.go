package node

import (
	"encoding/json"
	"maps"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/transport"
)

// Status is the JSON document served at /status.
type Status struct {
	Replica  core.NodeID `json:"replica"`
	Group    string      `json:"group"`
	Running  bool        `json:"running"`
	Halted   string      `json:"halted,omitempty"`
	Counters Counters    `json:"counters"`
	// Members are the transport's view of every replica (self included).
	Members  []transport.PeerStatus `json:"members"`
	Rejected map[string]uint64      `json:"rejected_handshakes"`
	// Evidence counts misbehaviour observed per accused replica and kind.
	Evidence       map[core.NodeID]map[core.EvidenceKind]uint64 `json:"evidence"`
	RecentEvidence []core.Evidence                              `json:"recent_evidence"`
}

// Counters are the runtime's totals.
type Counters struct {
	Steps     uint64            `json:"steps"`
	Received  uint64            `json:"received"`
	Sent      uint64            `json:"sent"`
	Delivered uint64            `json:"delivered"`
	Persisted uint64            `json:"persisted"`
	Requests  uint64            `json:"requests"`
	Timers    uint64            `json:"timers_armed"`
	Dropped   map[string]uint64 `json:"dropped"`
}

// Status returns a snapshot; it is safe to call from any goroutine.
func (n *Node) Status() Status {
	ts := n.cfg.Transport.Status()
	st := Status{
		Replica: n.cfg.Self, Group: n.cfg.Group.String(), Running: n.running.Load(),
		Members: ts.Peers, Rejected: ts.Rejected,
		Counters: Counters{
			Steps: n.m.steps.Load(), Received: n.m.received.Load(), Sent: n.m.sent.Load(),
			Delivered: n.m.delivered.Load(), Persisted: n.m.persisted.Load(),
			Requests: n.m.requests.Load(), Timers: n.m.timers.Load(),
		},
	}
	if h, ok := n.halted.Load().(string); ok {
		st.Halted = h
	}
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	st.Counters.Dropped = maps.Clone(n.m.drops)
	st.Evidence = make(map[core.NodeID]map[core.EvidenceKind]uint64, len(n.m.evidence))
	for id, k := range n.m.evidence {
		st.Evidence[id] = maps.Clone(k)
	}
	st.RecentEvidence = append([]core.Evidence(nil), n.m.recent...)
	return st
}

// AdminHandler serves /metrics (Prometheus), /healthz (200 while running,
// 503 otherwise) and /status (JSON). Callers may add routes to the mux
// (cmd/maftia adds POST /broadcast).
func (n *Node) AdminHandler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.running.Load() {
			http.Error(w, "not running", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(n.Status())
	})
	return mux
}
