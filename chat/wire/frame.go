package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// Framing errors. ReadFrame wraps them with context; test with errors.Is.
var (
	// ErrFrameTooLarge: a length prefix above the reader's limit, or a
	// message too large to write. Nothing of the frame was read.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrTruncated: the stream ended inside a frame.
	ErrTruncated = errors.New("frame truncated")
	// ErrMalformed: a bad length prefix, or bytes that are not the expected
	// protobuf message.
	ErrMalformed = errors.New("malformed frame")
)

// maxVarintLen is the longest length prefix accepted: 5 bytes encode up to
// 2^35-1, far above any limit, and keep a hostile prefix short.
const maxVarintLen = 5

// Reader reads consecutive frames from one stream. It buffers, so once a
// stream is wrapped all reads must go through the Reader.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a Reader of the frames on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReader(r)}
}

// ReadFrame reads the next frame into m; see the package function ReadFrame.
func (r *Reader) ReadFrame(max int, m proto.Message) error {
	return readFrame(r.br, max, m)
}

// ReadFrame reads one frame, a length as an unsigned varint followed by that
// many bytes of protobuf, and unmarshals it into m. A frame longer than max
// bytes is refused with ErrFrameTooLarge before anything of it is read or
// allocated. At a clean end of stream, before the first byte of a frame, it
// returns io.EOF unwrapped; a stream ending later gives ErrTruncated.
//
// ReadFrame never reads past the frame: when r is not an io.ByteReader it
// reads the prefix a byte at a time. To read many frames efficiently, use
// NewReader.
func ReadFrame(r io.Reader, max int, m proto.Message) error {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = byteReader{r}
	}
	return readFrame(struct {
		io.Reader
		io.ByteReader
	}{r, br}, max, m)
}

type byteReadReader interface {
	io.Reader
	io.ByteReader
}

func readFrame(r byteReadReader, max int, m proto.Message) error {
	if max <= 0 {
		return fmt.Errorf("wire: read frame: limit %d is not positive", max)
	}
	size, err := readLength(r)
	if err != nil {
		return err
	}
	if size > uint64(max) {
		return fmt.Errorf("wire: read %s: length prefix %d exceeds limit %d: %w", msgName(m), size, max, ErrFrameTooLarge)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("wire: read %s: stream ended inside a %d-byte frame: %w", msgName(m), size, ErrTruncated)
		}
		return fmt.Errorf("wire: read %s: %w", msgName(m), err)
	}
	if err := proto.Unmarshal(buf, m); err != nil {
		return fmt.Errorf("wire: decode %s: %w: %v", msgName(m), ErrMalformed, err)
	}
	return nil
}

// readLength reads a minimally encoded unsigned varint.
func readLength(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := 0; i < maxVarintLen; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if i == 0 {
					return 0, io.EOF
				}
				return 0, fmt.Errorf("wire: stream ended inside a length prefix: %w", ErrTruncated)
			}
			return 0, fmt.Errorf("wire: read length prefix: %w", err)
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("wire: length prefix is not minimally encoded: %w", ErrMalformed)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("wire: length prefix longer than %d bytes: %w", maxVarintLen, ErrFrameTooLarge)
}

// WriteFrame writes m as one frame (varint length, then the protobuf bytes)
// in a single Write. It refuses messages above MaxWriteFrame; callers keep
// within the limit of the protocol they speak by validating first.
func WriteFrame(w io.Writer, m proto.Message) error {
	size := proto.Size(m)
	if size > MaxWriteFrame {
		return fmt.Errorf("wire: write %s: %d bytes exceeds limit %d: %w", msgName(m), size, MaxWriteFrame, ErrFrameTooLarge)
	}
	buf := make([]byte, 0, binary.MaxVarintLen64+size)
	buf = binary.AppendUvarint(buf, uint64(size))
	buf, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		return fmt.Errorf("wire: encode %s: %w", msgName(m), err)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("wire: write %s: %w", msgName(m), err)
	}
	return nil
}

// byteReader reads single bytes from an io.Reader without buffering ahead.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	for range 100 {
		n, err := b.r.Read(p[:])
		if n == 1 {
			return p[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

// msgName names a message in errors, e.g. "DMFrame".
func msgName(m proto.Message) string {
	if m == nil {
		return "frame"
	}
	return string(m.ProtoReflect().Descriptor().Name())
}
