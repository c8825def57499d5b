package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestClientFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteClientFrame(&buf, FrameReply, []byte("body")); err != nil {
		t.Fatal(err)
	}
	kind, body, err := ReadClientFrame(&buf, 100)
	if err != nil || kind != FrameReply || string(body) != "body" {
		t.Fatalf("got %d %q %v", kind, body, err)
	}
	r := Refusal{Client: 7, Seq: 9, Reason: "bad_signature"}
	if got, err := DecodeRefusal(EncodeRefusal(r)); err != nil || got != r {
		t.Fatalf("refusal round trip: %+v %v", got, err)
	}
}

func TestClientFrameRefusesOversizedWithoutReading(t *testing.T) {
	hdr := binary.BigEndian.AppendUint32(nil, 1<<30)
	if _, _, err := ReadClientFrame(bytes.NewReader(hdr), MaxClientFrame); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if _, _, err := ReadClientFrame(bytes.NewReader([]byte{0, 0, 0, 0}), MaxClientFrame); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty frame: err = %v, want ErrMalformed", err)
	}
	if _, _, err := ReadClientFrame(bytes.NewReader([]byte{0, 0, 0, 9, 1}), MaxClientFrame); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated frame: err = %v, want ErrMalformed", err)
	}
}

// FuzzReadClientFrame: any byte stream yields frames within the bound or
// an error, never a panic or an allocation above the bound (ATTACKS row 8).
func FuzzReadClientFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteClientFrame(&buf, FrameRequest, []byte{1, 2, 3})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for range 16 {
			_, body, err := ReadClientFrame(r, 1024)
			if err != nil {
				return
			}
			if len(body) >= 1024 {
				t.Fatalf("body of %d bytes above the bound", len(body))
			}
		}
	})
}

// FuzzDecodeRefusal: refusals from a replica never panic the client.
func FuzzDecodeRefusal(f *testing.F) {
	f.Add(EncodeRefusal(Refusal{Client: 1, Seq: 2, Reason: "malformed"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRefusal(b)
		if err == nil && !bytes.Equal(EncodeRefusal(r), b) {
			t.Fatalf("refusal does not round-trip")
		}
	})
}
