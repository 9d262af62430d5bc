// Package agent is the wire protocol between the vxn monitor (host side) and
// guestinit (PID 1 in the guest).
//
// Every message is one frame: a fixed 12-byte header followed by a payload of
// at most MaxPayload bytes.
//
//	offset size field
//	0      2    magic "VX"
//	2      1    protocol version (Version)
//	3      1    message type (Type)
//	4      4    session, big endian (0 = the container's init process,
//	            1.. = exec sessions)
//	8      4    payload length, big endian
//
// The guest is untrusted: the monitor decodes every frame with hard bounds
// and validates every payload before acting on it.
package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version spoken by this build. Both sides send it
// in every frame; a frame of another version is rejected.
const Version = 3

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 12

// MaxPayload bounds the payload of any frame. Stream data is sent in chunks
// of at most ChunkSize, so only configuration frames come near this bound.
const MaxPayload = 4 << 20

// ChunkSize is the largest stream-data payload a sender produces.
const ChunkSize = 32 << 10

var magic = [2]byte{'V', 'X'}

// Type says what a frame carries.
type Type uint8

// Message types. The direction is given as monitor -> guest (M>G) or
// guest -> monitor (G>M).
const (
	TypeHello       Type = 1 + iota // both: Hello JSON
	TypeConfig                      // M>G: Config JSON (session 0)
	TypeReady                       // G>M: empty; container set up, process not started
	TypeStart                       // M>G: empty; start the session's process
	TypeStdin                       // M>G: raw bytes
	TypeStdinClose                  // M>G: empty; close the process's stdin
	TypeStdinAck                    // G>M: 4-byte count of stdin bytes consumed
	TypeStdout                      // G>M: raw bytes (also the terminal's output)
	TypeStderr                      // G>M: raw bytes
	TypeSignal                      // M>G: Signal (4 bytes)
	TypeWinsize                     // M>G: Winsize (4 bytes)
	TypeStarted                     // G>M: Started JSON; the process runs
	TypeExit                        // G>M: Exit JSON; the session's process ended
	TypeError                       // G>M: Error JSON; the request failed
	TypeExec                        // M>G: Exec JSON; new session with its own process
	TypePsRequest                   // M>G: empty
	TypePsReply                     // G>M: PsReply JSON
	TypeShutdown                    // M>G: empty; stop everything and power off
	TypeNetwork                     // M>G: Network JSON (session 0); take these interfaces
	TypeNetworkDone                 // G>M: Error JSON, empty message if the network is set up
	TypeUpdate                      // M>G: LinuxResources JSON; new limits for the container
	TypeUpdated                     // G>M: Error JSON; empty message: the limits are applied
	typeEnd                         // first invalid type
)

var typeNames = map[Type]string{
	TypeHello: "hello", TypeConfig: "config", TypeReady: "ready", TypeStart: "start",
	TypeStdin: "stdin", TypeStdinClose: "stdin-close", TypeStdinAck: "stdin-ack",
	TypeStdout: "stdout", TypeStderr: "stderr", TypeSignal: "signal", TypeWinsize: "winsize",
	TypeStarted: "started", TypeExit: "exit", TypeError: "error", TypeExec: "exec",
	TypePsRequest: "ps-request", TypePsReply: "ps-reply", TypeShutdown: "shutdown",
	TypeNetwork: "network", TypeNetworkDone: "network-done",
	TypeUpdate: "update", TypeUpdated: "updated",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Frame is one decoded message.
type Frame struct {
	Type    Type
	Session uint32
	Payload []byte
}

// Decoding errors. Callers test them with errors.Is.
var (
	ErrBadMagic   = errors.New("agent: bad frame magic")
	ErrBadVersion = errors.New("agent: unsupported protocol version")
	ErrBadType    = errors.New("agent: unknown message type")
	ErrTooLarge   = errors.New("agent: frame payload too large")
)

// ReadFrame reads one frame from r. It never allocates more than the
// declared payload length, which is bounded by MaxPayload.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	if h[0] != magic[0] || h[1] != magic[1] {
		return Frame{}, ErrBadMagic
	}
	if h[2] != Version {
		return Frame{}, fmt.Errorf("%w: %d (this side speaks %d)", ErrBadVersion, h[2], Version)
	}
	t := Type(h[3])
	if t == 0 || t >= typeEnd {
		return Frame{}, fmt.Errorf("%w: %d", ErrBadType, h[3])
	}
	n := binary.BigEndian.Uint32(h[8:12])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, n, MaxPayload)
	}
	f := Frame{Type: t, Session: binary.BigEndian.Uint32(h[4:8])}
	if n > 0 {
		f.Payload = make([]byte, n)
		if _, err := io.ReadFull(r, f.Payload); err != nil {
			return Frame{}, fmt.Errorf("agent: reading %s payload: %w", t, noEOF(err))
		}
	}
	return f, nil
}

// AppendFrame appends the encoding of f to b.
func AppendFrame(b []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return b, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(f.Payload), MaxPayload)
	}
	if f.Type == 0 || f.Type >= typeEnd {
		return b, fmt.Errorf("%w: %d", ErrBadType, f.Type)
	}
	b = append(b, magic[0], magic[1], Version, byte(f.Type))
	b = binary.BigEndian.AppendUint32(b, f.Session)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Payload)))
	return append(b, f.Payload...), nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
