package storage

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
)

// BenchmarkSaveRecords measures synced commits of one 64-byte record on
// the real file system, serially and from 8 goroutines at once (Pebble
// groups concurrent synced commits into one fsync: group commit).
func BenchmarkSaveRecords(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", par), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			v := make([]byte, 64)
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if err := s.SaveRecords([]core.Record{{Instance: "bench", Key: fmt.Sprint(i), Value: v}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
