package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/client"
)

// loadSpec says what load to apply. Rate 0 is a closed loop: every client
// has one request outstanding and sends the next when the last is
// answered. Rate > 0 is an open loop: requests arrive at Rate per second
// whatever the service does, each is served by the next free client, and
// its latency counts from its arrival, so queueing is measured (no
// coordinated omission); an arrival that finds every client busy and the
// queue (one slot per client) full is shed and counted.
type loadSpec struct {
	Duration time.Duration
	MaxOps   uint64
	Payload  int
	Rate     float64
	// Certify asks for certified replies (client.SubmitCertified): the
	// replicas add shares of the service's signature, which the client
	// combines and verifies for every operation.
	Certify bool
}

// certifying submits through SubmitCertified and returns the certified
// result.
type certifying struct{ c *client.Client }

func (s certifying) Submit(ctx context.Context, op []byte) ([]byte, error) {
	cert, err := s.c.SubmitCertified(ctx, op)
	return cert.Result, err
}

// sample is one completed operation: when it completed and its latency
// (both from the start of the run).
type sample struct{ at, lat time.Duration }

// loadResult summarises a run.
type loadResult struct {
	Ops, Errors, Wrong, Shed uint64
	Elapsed                  time.Duration
	samples                  []sample
	errorsAt                 []time.Duration
}

func (r *loadResult) merge(o *loadResult) {
	r.Ops += o.Ops
	r.Errors += o.Errors
	r.Wrong += o.Wrong
	r.Shed += o.Shed
	r.samples = append(r.samples, o.samples...)
	r.errorsAt = append(r.errorsAt, o.errorsAt...)
}

// Throughput is completed operations per second.
func (r *loadResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Percentile returns the p-th latency percentile (0 < p ≤ 100).
func (r *loadResult) Percentile(p float64) time.Duration {
	lat := make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		lat[i] = s.lat
	}
	return percentile(lat, p)
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := int(float64(len(lat))*p/100+0.5) - 1
	return lat[max(0, min(i, len(lat)-1))]
}

// Window returns the part of the run that completed in [from, to).
func (r *loadResult) Window(from, to time.Duration) *loadResult {
	w := &loadResult{Elapsed: to - from}
	for _, s := range r.samples {
		if s.at >= from && s.at < to {
			w.samples = append(w.samples, s)
			w.Ops++
		}
	}
	for _, at := range r.errorsAt {
		if at >= from && at < to {
			w.errorsAt = append(w.errorsAt, at)
			w.Errors++
		}
	}
	return w
}

// secondStats is one second of a run (for --csv and --plot).
type secondStats struct {
	Second           int
	Ops, Errors      uint64
	P50, P99         time.Duration
	ThroughputPerSec float64
}

// PerSecond splits the run into whole seconds; a last partial second is
// kept if it lasted at least half a second (a sliver would show as a
// spurious drop).
func (r *loadResult) PerSecond() []secondStats {
	n := int(r.Elapsed / time.Second)
	if r.Elapsed%time.Second >= time.Second/2 {
		n++
	}
	lat := make([][]time.Duration, n)
	errs := make([]uint64, n)
	for _, s := range r.samples {
		if i := int(s.at / time.Second); i < n {
			lat[i] = append(lat[i], s.lat)
		}
	}
	for _, at := range r.errorsAt {
		if i := int(at / time.Second); i < n {
			errs[i]++
		}
	}
	out := make([]secondStats, n)
	for i := range out {
		span := time.Second
		if rest := r.Elapsed - time.Duration(i)*time.Second; rest < span {
			span = rest
		}
		out[i] = secondStats{Second: i, Ops: uint64(len(lat[i])), Errors: errs[i],
			P50: percentile(lat[i], 50), P99: percentile(lat[i], 99),
			ThroughputPerSec: float64(len(lat[i])) / span.Seconds()}
	}
	return out
}

// connectAll opens every client's connections, 16 clients at a time.
func connectAll(ctx context.Context, clients []*client.Client) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, c := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.Connect(ctx)
		}()
	}
	wg.Wait()
}

// runLoad drives the load: each client alternately writes its own keys
// and reads them back, checking that every read returns the value it last
// wrote (the client is the only writer of its keys, so any other value is
// a wrong answer from the service). It stops after spec.Duration or
// spec.MaxOps operations in total, whichever comes first, and prints
// progress to progress (if non-nil) every second.
func runLoad(ctx context.Context, clients []*client.Client, spec loadSpec, progress io.Writer, label string) *loadResult {
	connectAll(ctx, clients)
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	var started atomic.Uint64
	var mu sync.Mutex
	total := &loadResult{}
	start := time.Now()
	var wg sync.WaitGroup
	value := make([]byte, spec.Payload)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	// Open loop: arrivals carry their due time; latency counts from it.
	var arrivals chan time.Time
	if spec.Rate > 0 {
		arrivals = make(chan time.Time, len(clients))
		wg.Go(func() {
			defer close(arrivals)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			var issued, shed uint64
			for {
				select {
				case <-ctx.Done():
					mu.Lock()
					total.Shed += shed
					mu.Unlock()
					return
				case <-tick.C:
				}
				due := uint64(time.Since(start).Seconds() * spec.Rate)
				for ; issued < due && issued < spec.MaxOps; issued++ {
					at := start.Add(time.Duration(float64(issued) / spec.Rate * float64(time.Second)))
					select {
					case arrivals <- at:
					default:
						shed++
					}
				}
			}
		})
	}
	for ci, c := range clients {
		wg.Go(func() {
			r := &loadResult{}
			k := kv.Client{S: c}
			if spec.Certify {
				k.S = certifying{c}
			}
			last := map[string]string{}
			for n := 0; ctx.Err() == nil; n++ {
				t0 := time.Now()
				if arrivals != nil {
					at, ok := <-arrivals
					if !ok {
						break
					}
					t0 = at
					started.Add(1)
				} else if started.Add(1) > spec.MaxOps {
					break
				}
				key := fmt.Sprintf("c%d/k%d", ci, n%8)
				var err error
				if n%2 == 0 {
					v := fmt.Sprintf("%d:%d:", ci, n) + string(value[:max(0, spec.Payload-16)])
					if _, err = k.Put(ctx, []byte(key), []byte(v)); err == nil {
						last[key] = v
					}
				} else {
					key = fmt.Sprintf("c%d/k%d", ci, (n-1)%8)
					res, gerr := k.Get(ctx, []byte(key))
					if err = gerr; err == nil {
						if want, ok := last[key]; ok && (!res.GetFound() || string(res.GetValue()) != want) {
							r.Wrong++
						}
					}
				}
				if err != nil {
					if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
						break // the run ended mid-request: not an error
					}
					r.Errors++
					r.errorsAt = append(r.errorsAt, time.Since(start))
					continue
				}
				r.Ops++
				now := time.Since(start)
				r.samples = append(r.samples, sample{at: now, lat: now - t0.Sub(start)})
			}
			mu.Lock()
			total.merge(r)
			mu.Unlock()
		})
	}
	stop := make(chan struct{})
	var pw sync.WaitGroup
	if progress != nil {
		pw.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					n := min(started.Load(), spec.MaxOps)
					el := time.Since(start)
					fmt.Fprintf(progress, "\r  %-28s %6.0fs  %7d ops started  %7.0f ops/s ", label, el.Seconds(), n, float64(n)/el.Seconds())
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	pw.Wait()
	if progress != nil {
		fmt.Fprintln(progress)
	}
	total.Elapsed = time.Since(start)
	return total
}
