package main

import (
	"bytes"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestSimCommandPrintsSummary(t *testing.T) {
	out, err := runCLI(t, "sim", "rbc", "--n", "7", "--f", "2", "--byzantine", "equivocate,silent", "--seeds", "50")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"protocol      rbc (n=7, f=2)", "50 schedules, 0 violations", "deliveries"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSimCommandFailsOnBrokenVariantWithTrace(t *testing.T) {
	out, err := runCLI(t, "sim", "rbc", "--broken", "deliver-on-first-echo", "--byzantine", "equivocate", "--seeds", "40")
	if err == nil || !strings.Contains(out, "VIOLATION: agreement") || !strings.Contains(out, "recv ") {
		t.Fatalf("broken variant not reported (err=%v):\n%s", err, out)
	}
}

func TestSimCommandRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "nosuch"},
		{"sim", "rbc", "--n", "3", "--f", "1", "--seeds", "1"},
		{"sim", "rbc", "--byzantine", "evil"},
		{"sim", "rbc", "--seeds", "0"},
	} {
		if out, err := runCLI(t, args...); err == nil {
			t.Errorf("%v accepted:\n%s", args, out)
		}
	}
}
