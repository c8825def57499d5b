package main

import (
	"fmt"
	"image/color"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeBenchPlot draws two panels over the run, one point per second:
// completed requests per second, and p50/p99 latency in milliseconds. A
// vertical line marks the moment a replica was stopped (killAt > 0).
func writeBenchPlot(path, title string, secs []secondStats, killAt time.Duration) error {
	if len(secs) == 0 {
		return fmt.Errorf("plot: no data")
	}
	tput, p50, p99 := make(plotter.XYs, len(secs)), make(plotter.XYs, len(secs)), make(plotter.XYs, len(secs))
	var maxT, maxL float64
	for i, s := range secs {
		x := float64(s.Second) + 0.5
		tput[i] = plotter.XY{X: x, Y: s.ThroughputPerSec}
		p50[i] = plotter.XY{X: x, Y: float64(s.P50) / 1e6}
		p99[i] = plotter.XY{X: x, Y: float64(s.P99) / 1e6}
		maxT, maxL = max(maxT, s.ThroughputPerSec), max(maxL, float64(s.P99)/1e6)
	}
	top := plot.New()
	top.Title.Text = title
	top.Y.Label.Text = "requests/s"
	top.Y.Min = 0
	bottom := plot.New()
	bottom.X.Label.Text = "time (s)"
	bottom.Y.Label.Text = "latency (ms)"
	bottom.Y.Min = 0
	add := func(p *plot.Plot, pts plotter.XYs, name string, c color.Color) error {
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		p.Add(l)
		if name != "" {
			p.Legend.Add(name, l)
		}
		return nil
	}
	blue, orange, red, grey := color.RGBA{B: 200, A: 255}, color.RGBA{R: 230, G: 120, A: 255},
		color.RGBA{R: 200, A: 255}, color.RGBA{R: 120, G: 120, B: 120, A: 255}
	if err := add(top, tput, "", blue); err != nil {
		return err
	}
	if err := add(bottom, p50, "p50", orange); err != nil {
		return err
	}
	if err := add(bottom, p99, "p99", red); err != nil {
		return err
	}
	if killAt > 0 {
		k := killAt.Seconds()
		if err := add(top, plotter.XYs{{X: k, Y: 0}, {X: k, Y: maxT}}, "replica stopped", grey); err != nil {
			return err
		}
		if err := add(bottom, plotter.XYs{{X: k, Y: 0}, {X: k, Y: maxL}}, "", grey); err != nil {
			return err
		}
		top.Legend.Top = true
	}
	bottom.Legend.Top = true
	top.X.Min, bottom.X.Min = 0, 0
	top.X.Max, bottom.X.Max = float64(len(secs)), float64(len(secs))

	img := vgimg.New(vg.Points(720), vg.Points(540))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(10)}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
