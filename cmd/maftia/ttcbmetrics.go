package main

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maftia/maftia/ttcb"
)

// ttcbMetrics serves the counters of the running module incarnation at
// /metrics. Counters restart from zero with each incarnation (Prometheus
// treats that as a counter reset); maftia_ttcb_module_incarnation tells
// incarnations apart.
type ttcbMetrics struct {
	cur      atomic.Pointer[ttcb.Module]
	restarts atomic.Uint64
}

func (t *ttcbMetrics) started(m *ttcb.Module) {
	if t.cur.Swap(m) != nil {
		t.restarts.Add(1)
	}
}

func (t *ttcbMetrics) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	stat := func(name, help string, f func(ttcb.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "maftia_ttcb_module_" + name + "_total", Help: help},
			func() float64 {
				if m := t.cur.Load(); m != nil {
					return float64(f(m.Stats()))
				}
				return 0
			}))
	}
	stat("decided", "Executions decided and released.", func(s ttcb.Stats) uint64 { return s.Decided })
	stat("persisted", "Results made durable in the state file.", func(s ttcb.Stats) uint64 { return s.Persisted })
	stat("control_bad_mac", "Control datagrams with a wrong MAC (not from a module).", func(s ttcb.Stats) uint64 { return s.ControlBadMAC })
	stat("control_malformed", "Control datagrams that did not decode.", func(s ttcb.Stats) uint64 { return s.ControlMalformed })
	stat("control_replays", "Control datagrams replayed (old sequence number).", func(s ttcb.Stats) uint64 { return s.Replays })
	stat("control_dropped", "Control datagrams dropped (queue full).", func(s ttcb.Stats) uint64 { return s.ControlDrop })
	stat("timing_failures", "This module's own timing failures (late boundary, late message, clock jump).", func(s ttcb.Stats) uint64 { return s.TimingFailures })
	stat("stale", "Messages from a stale incarnation of a peer module.", func(s ttcb.Stats) uint64 { return s.Stale })
	stat("clones", "Messages from a second live copy of a peer module (same incarnation, other boot).", func(s ttcb.Stats) uint64 { return s.Clones })
	stat("tainted", "Executions this module withholds (timing failure or cut off in them).", func(s ttcb.Stats) uint64 { return s.Tainted })
	stat("unvouched", "Late joiners' executions withheld because this module could not vouch that nobody proposed (ADR 0007).", func(s ttcb.Stats) uint64 { return s.Unvouched })
	stat("late_messages", "Round messages dropped as stamped late by their sender.", func(s ttcb.Stats) uint64 { return s.LateMessages })
	stat("late_after_release", "Round messages received after a result was released (synchrony assumption broken).", func(s ttcb.Stats) uint64 { return s.LateAfterRelease })
	stat("clock_rejected", "Clock-synchronization samples rejected.", func(s ttcb.Stats) uint64 { return s.ClockRejected })
	stat("local_auth_failures", "Local sessions that failed entity authentication.", func(s ttcb.Stats) uint64 { return s.LocalAuthFailures })
	stat("local_bad_frames", "Malformed frames on local sessions.", func(s ttcb.Stats) uint64 { return s.LocalBadFrames })
	stat("rate_limited", "Local calls refused by the per-entity rate limit.", func(s ttcb.Stats) uint64 { return s.RateLimited })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "maftia_ttcb_module_restarts_total",
		Help: "Restarts of the module in this process (a new incarnation after a timing failure)."},
		func() float64 { return float64(t.restarts.Load()) }))
	gauge := func(name, help string, f func(*ttcb.Module) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "maftia_ttcb_module_" + name, Help: help},
			func() float64 {
				if m := t.cur.Load(); m != nil {
					return f(m)
				}
				return 0
			}))
	}
	gauge("joined", "1 when the module is synchronized and takes part in agreements.", func(m *ttcb.Module) float64 {
		if m.Joined() {
			return 1
		}
		return 0
	})
	gauge("incarnation", "The running incarnation (persisted, increases at every start).", func(m *ttcb.Module) float64 { return float64(m.Incarnation()) })
	gauge("clock_error_bound_seconds", "Current bound on this module's clock error against the reference.", func(m *ttcb.Module) float64 { return m.ErrorBound().Seconds() })
	return reg
}

// serve exposes /metrics on addr until ctx ends.
func (t *ttcbMetrics) serve(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(t.registry(), promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}
