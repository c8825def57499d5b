package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Framing: every frame on a connection is a 4-byte big-endian length N
// followed by N bytes. N is bounded by Config.MaxFrame; a larger N or a
// connection that ends inside a frame is a protocol violation and the
// connection is dropped (ATTACKS.md row 8).

// HeaderLen is the size of the length prefix.
const HeaderLen = 4

var (
	// ErrFrameTooLarge: the length prefix exceeds the configured maximum.
	ErrFrameTooLarge = errors.New("transport: frame exceeds maximum size")
	// ErrTruncated: the stream ended inside a frame.
	ErrTruncated = errors.New("transport: truncated frame")
)

// readChunk bounds how much is allocated ahead of the bytes actually
// received, so a peer announcing a huge (but allowed) frame and then
// stalling costs at most readChunk bytes until it really sends them.
const readChunk = 64 << 10

// ReadFrame reads one frame of at most max bytes. It returns io.EOF if the
// stream ends cleanly before a frame starts, an error wrapping ErrTruncated
// if it ends inside one and ErrFrameTooLarge for an oversized length. It
// never allocates more than min(N, max)+readChunk bytes.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d-byte header cut short", ErrTruncated, HeaderLen)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, n, max)
	}
	size := int(n)
	buf := make([]byte, 0, min(size, readChunk))
	for len(buf) < size {
		step := min(size-len(buf), readChunk)
		if cap(buf)-len(buf) < step {
			nb := make([]byte, len(buf), min(size, 2*cap(buf)+step))
			copy(nb, buf)
			buf = nb
		}
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+got]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: %d of %d bytes", ErrTruncated, len(buf), size)
			}
			return nil, err
		}
	}
	return buf, nil
}

// AppendFrame appends the framed form of payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// WriteFrame writes one frame (header and payload) to w.
func WriteFrame(w io.Writer, payload []byte) error {
	var hdr [HeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}
