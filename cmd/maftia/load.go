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

// loadResult summarises a closed-loop run.
type loadResult struct {
	Ops, Errors, Wrong uint64
	Elapsed            time.Duration
	lat                []time.Duration
}

func (r *loadResult) merge(o *loadResult) {
	r.Ops += o.Ops
	r.Errors += o.Errors
	r.Wrong += o.Wrong
	r.lat = append(r.lat, o.lat...)
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
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
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

// runLoad drives a closed loop: each client alternately writes its own
// keys and reads them back, checking that every read returns the value
// it last wrote (the client is the only writer of its keys, so any other
// value is a wrong answer from the service). It stops after d or maxOps
// operations in total, whichever comes first, and prints progress to
// progress (if non-nil) every second.
func runLoad(ctx context.Context, clients []*client.Client, d time.Duration, maxOps uint64, payload int, progress io.Writer, label string) *loadResult {
	connectAll(ctx, clients)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var done atomic.Uint64
	var mu sync.Mutex
	total := &loadResult{}
	start := time.Now()
	var wg sync.WaitGroup
	value := make([]byte, payload)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for ci, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &loadResult{}
			k := kv.Client{S: c}
			last := map[string]string{}
			for n := 0; ctx.Err() == nil; n++ {
				if done.Add(1) > maxOps {
					break
				}
				key := fmt.Sprintf("c%d/k%d", ci, n%8)
				t0 := time.Now()
				var err error
				if n%2 == 0 {
					v := fmt.Sprintf("%d:%d:", ci, n) + string(value[:max(0, payload-16)])
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
					continue
				}
				r.Ops++
				r.lat = append(r.lat, time.Since(t0))
			}
			mu.Lock()
			total.merge(r)
			mu.Unlock()
		}()
	}
	stop := make(chan struct{})
	var pw sync.WaitGroup
	if progress != nil {
		pw.Add(1)
		go func() {
			defer pw.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					n := min(done.Load(), maxOps)
					el := time.Since(start)
					fmt.Fprintf(progress, "\r  %-28s %6.0fs  %7d ops started  %7.0f ops/s ", label, el.Seconds(), n, float64(n)/el.Seconds())
				}
			}
		}()
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
