package node

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/transport"
	"github.com/maftia/maftia/wire"
)

// Service is a local service a core can call through Output.Request (the
// TTCB, later). Handle must not block the caller for long; it calls reply
// exactly once, from any goroutine, possibly after Handle returned.
type Service interface {
	Handle(req core.ServiceRequest, reply func(v any))
}

// ServiceFunc adapts a synchronous function to Service.
type ServiceFunc func(req core.ServiceRequest) any

// Handle implements Service.
func (f ServiceFunc) Handle(req core.ServiceRequest, reply func(any)) { reply(f(req)) }

// Config configures a Node.
type Config struct {
	Self      core.NodeID
	Group     core.Group          // n and f; envelopes from senders outside 1..n are malformed
	Protocol  core.Protocol       // the root core, typically a *core.Mux
	Transport transport.Transport // not owned: the caller closes it after Run returns
	Storage   Storage             // nil: NewMemStorage()

	// Deliver receives the root core's deliveries, on the stepping
	// goroutine, in order. It must not block for long.
	Deliver  func(core.Delivery)
	Services map[string]Service

	Tick       time.Duration // one abstract timer tick; default 10 ms
	MaxPayload int           // largest envelope payload accepted; default wire.DefaultMaxPayload
	Workers    int           // precheck workers; default GOMAXPROCS
	QueueLen   int           // per-stage queue lengths; default 1024
	MaxBatch   int           // events stepped per storage commit; default 256

	Logger   *slog.Logger         // nil: slog.Default()
	Registry *prometheus.Registry // nil: a fresh registry (served at /metrics)
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("node: invalid configuration")

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Protocol == nil:
		return c, fmt.Errorf("%w: no protocol", ErrConfig)
	case c.Transport == nil:
		return c, fmt.Errorf("%w: no transport", ErrConfig)
	case !c.Group.Contains(c.Self):
		return c, fmt.Errorf("%w: self %d not in group %v", ErrConfig, c.Self, c.Group)
	case c.Transport.Self() != c.Self:
		return c, fmt.Errorf("%w: transport is replica %d, node is %d", ErrConfig, c.Transport.Self(), c.Self)
	}
	if c.Storage == nil {
		c.Storage = NewMemStorage()
	}
	if c.Tick <= 0 {
		c.Tick = 10 * time.Millisecond
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = wire.DefaultMaxPayload
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return c, nil
}
