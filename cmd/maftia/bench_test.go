package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Windows and per-second figures are computed from completion times.
func TestLoadResultWindows(t *testing.T) {
	r := &loadResult{Elapsed: 2500 * time.Millisecond}
	for i := range 10 {
		at := time.Duration(i) * 250 * time.Millisecond
		r.samples = append(r.samples, sample{at: at, lat: time.Duration(i+1) * time.Millisecond})
		r.Ops++
	}
	r.errorsAt = []time.Duration{1200 * time.Millisecond}
	secs := r.PerSecond()
	if len(secs) != 3 {
		t.Fatalf("%d seconds", len(secs))
	}
	if secs[0].Ops != 4 || secs[1].Ops != 4 || secs[2].Ops != 2 || secs[1].Errors != 1 {
		t.Fatalf("per second %+v", secs)
	}
	if secs[2].ThroughputPerSec != 4 { // 2 ops in the last half second
		t.Fatalf("last second throughput %v", secs[2].ThroughputPerSec)
	}
	if secs[0].P50 != 2*time.Millisecond || secs[0].P99 != 4*time.Millisecond {
		t.Fatalf("first second p50 %v p99 %v", secs[0].P50, secs[0].P99)
	}
	w := r.Window(time.Second, 2*time.Second)
	if w.Ops != 4 || w.Errors != 1 || w.Throughput() != 4 || w.Percentile(50) != 6*time.Millisecond {
		t.Fatalf("window %+v p50 %v", w, w.Percentile(50))
	}
}

// One short open-loop run with certified replies on a local cluster with a
// replica stopped midway: no wrong answers, the before/after report, and
// readable CSV and PNG files.
func TestBenchOpenLoopKillCSVPlot(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	dir := t.TempDir()
	csvPath, pngPath := filepath.Join(dir, "b.csv"), filepath.Join(dir, "b.png")
	cmd := newBenchCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--clients", "16", "--rate", "100", "--duration", "6s", "--kill-after", "3s",
		"--payload", "64", "--csv", csvPath, "--plot", pngPath, "--certify"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"open loop at 100 req/s, certified replies", "replica 4 stopped at 3s", "after/before throughput", "wrong 0"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q", want)
		}
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) < 6 || rows[0][0] != "second" {
		t.Fatalf("csv: %v, %d rows", err, len(rows))
	}
	pf, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if img, err := png.Decode(pf); err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("png: %v", err)
	}
}
