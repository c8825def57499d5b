package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	in := Msg{Sender: 3, Instance: "abc:0/e:1/rbc:2", Payload: []byte("hello")}
	b, err := EncodeEnvelope(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeEnvelope(b, 4, 1<<10)
	if err != nil || out.Sender != in.Sender || out.Instance != in.Instance || !bytes.Equal(out.Payload, in.Payload) {
		t.Fatalf("round trip: %+v %v", out, err)
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	enc := func(m Msg) []byte { b, _ := EncodeEnvelope(m); return b }
	cases := map[string][]byte{
		"garbage":        {0xff, 0xff, 0xff},
		"sender zero":    enc(Msg{Sender: 0, Instance: "rbc:1"}),
		"sender > n":     enc(Msg{Sender: 5, Instance: "rbc:1"}),
		"bad instance":   enc(Msg{Sender: 1, Instance: "RBC//1"}),
		"empty instance": enc(Msg{Sender: 1}),
		"huge payload":   enc(Msg{Sender: 1, Instance: "rbc:1", Payload: make([]byte, 2000)}),
		"truncated":      enc(Msg{Sender: 1, Instance: "rbc:1", Payload: []byte("abc")})[:8],
	}
	for name, b := range cases {
		if _, err := DecodeEnvelope(b, 4, 1<<10); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err=%v, want ErrMalformed", name, err)
		}
	}
}

// FuzzDecodeEnvelope: any bytes either decode to a valid message that
// re-encodes and decodes to the same value, or give ErrMalformed; never a
// panic.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, m := range []Msg{{Sender: 1, Instance: "rbc:1", Payload: []byte("x")}, {Sender: 4, Instance: "a/b:2/c"}} {
		b, _ := EncodeEnvelope(m)
		f.Add(b)
	}
	f.Add([]byte{0x08, 0x80, 0x80, 0x80, 0x80, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeEnvelope(b, 7, 4096)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := EncodeEnvelope(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := DecodeEnvelope(again, 7, 4096)
		if err != nil || m2.Sender != m.Sender || m2.Instance != m.Instance || !bytes.Equal(m2.Payload, m.Payload) {
			t.Fatalf("re-decode differs: %+v vs %+v (%v)", m, m2, err)
		}
	})
}
