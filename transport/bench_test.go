package transport

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTransport measures one replica streaming frames to another over
// TLS 1.3 on loopback, with a bounded window of frames in flight so no
// frame is dropped. Reports msgs/s and MB/s (payload bytes).
func BenchmarkTransport(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			window := int64(max(4, min(8192, (32<<20)/size)))
			c := newCluster(b, 2)
			edit := func(cfg *Config) {
				cfg.QueueLen, cfg.InboundLen = int(window)+16, int(window)+16
				cfg.RateFrames, cfg.RateBytes = -1, -1 // no flood limit here
				cfg.MaxFrame = 1 << 20
			}
			t1 := c.start(b, 1, edit)
			t2 := c.start(b, 2, edit)
			eventually(b, "connected", func() bool { return connected(t1, 2) })
			var got atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for got.Load() < int64(b.N) {
					select {
					case <-t2.Receive():
						got.Add(1)
					case <-time.After(30 * time.Second):
						return
					}
				}
			}()
			frame := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for int64(i)-got.Load() >= window {
					time.Sleep(10 * time.Microsecond)
				}
				t1.Send(2, frame)
			}
			<-done
			elapsed := time.Since(start)
			b.StopTimer()
			if got.Load() != int64(b.N) {
				b.Fatalf("received %d of %d", got.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			if d := peerStatus(t1, 2).Drops; len(d) != 0 {
				b.Fatalf("drops %v", d)
			}
		})
	}
}
