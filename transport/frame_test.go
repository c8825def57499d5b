package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	msgs := [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 200_000)}
	for _, m := range msgs {
		if err := WriteFrame(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		got, err := ReadFrame(&buf, 1<<20)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("got %d bytes, err %v; want %d", len(got), err, len(m))
		}
	}
	if _, err := ReadFrame(&buf, 1<<20); err != io.EOF {
		t.Fatalf("clean end: err=%v, want io.EOF", err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	full := AppendFrame(nil, []byte("hello world"))
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"oversized", AppendFrame(nil, make([]byte, 100)), ErrFrameTooLarge},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
		{"truncated header", full[:2], ErrTruncated},
		{"truncated payload", full[:9], ErrTruncated},
	}
	for _, c := range cases {
		if _, err := ReadFrame(bytes.NewReader(c.in), 64); !errors.Is(err, c.want) {
			t.Errorf("%s: err=%v, want %v", c.name, err, c.want)
		}
	}
}

func TestHelloRoundTrip(t *testing.T) {
	h := hello{ID: 3, Cluster: "prod-east"}
	got, err := decodeHello(h.encode())
	if err != nil || got != h {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, []byte("maftia-hello/0xxxxxx"), h.encode()[:len(h.encode())-1], append(h.encode(), 0)} {
		if _, err := decodeHello(bad); !errors.Is(err, ErrBadHello) {
			t.Errorf("%q: err=%v", bad, err)
		}
	}
}

// FuzzReadFrame: any byte stream yields a sequence of frames no larger than
// the maximum, ending in io.EOF, ErrTruncated or ErrFrameTooLarge — never a
// panic — and the frames re-encode to exactly the bytes consumed.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendFrame(nil, []byte("hello")))
	f.Add(AppendFrame(AppendFrame(nil, []byte("a")), []byte("bc")))
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 1})
	f.Add(AppendFrame(nil, make([]byte, 300)))
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 256
		r := bytes.NewReader(in)
		var re []byte
		for {
			fr, err := ReadFrame(r, max)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && !bytes.Equal(re, in) {
					t.Fatalf("clean EOF but frames re-encode to %x, input %x", re, in)
				}
				if !bytes.HasPrefix(in, re) {
					t.Fatal("frames do not re-encode to a prefix of the input")
				}
				return
			}
			if len(fr) > max {
				t.Fatalf("frame of %d > %d bytes", len(fr), max)
			}
			re = AppendFrame(re, fr)
		}
	})
}

// FuzzDecodeHello: decoding never panics and accepted hellos round-trip.
func FuzzDecodeHello(f *testing.F) {
	f.Add(hello{ID: 1, Cluster: "c"}.encode())
	f.Add([]byte(helloMagic))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := decodeHello(in)
		if err != nil {
			return
		}
		if !bytes.Equal(h.encode(), in) {
			t.Fatalf("hello %+v does not round-trip", h)
		}
	})
}
