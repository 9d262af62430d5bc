package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrBadPayload is wrapped by every payload validation error.
var ErrBadPayload = errors.New("agent: invalid payload")

// SessionAll addresses a Signal to every process of the container (kill --all).
const SessionAll = ^uint32(0)

// StdinWindow is how many stdin bytes the monitor may send to a session
// before the guest acknowledges them (TypeStdinAck); it bounds the guest's
// buffer for a process that does not read its stdin.
const StdinWindow = 256 << 10

// Limits on what the monitor accepts from the guest.
const (
	MaxErrorLen  = 4096 // bytes of an Error message
	MaxPsEntries = 4096 // processes in a PsReply
	MaxSignal    = 64   // highest signal number (SIGRTMAX on Linux)
	MaxFiles     = 64   // files copied into the guest at create
	MaxShares    = 32   // directory volumes of a container
)

// Hello is the first frame each side sends.
type Hello struct {
	Version int    `json:"version"`
	Role    string `json:"role"` // "monitor" or "guest"
}

// File is a host file copied into the container at create (the file bind
// mounts an engine adds: hosts, resolv.conf, hostname, .containerenv ...).
type File struct {
	Destination string `json:"destination"`
	Mode        uint32 `json:"mode"`
	Data        []byte `json:"data"`
	ReadOnly    bool   `json:"readonly,omitempty"`
}

// Share is a directory volume: the bind mount Spec.Mounts[Mount], whose
// host directory the guest mounts live by Tag (Xen 9pfs; a bind mount of
// the host directory in host mode).
type Share struct {
	Tag   string `json:"tag"`
	Mount int    `json:"mount"`
}

// Config is what the monitor sends to set the container up.
type Config struct {
	// Spec is the bundle's config.json. Root.Path is meaningless in the
	// guest, which mounts its root disk instead (see RootDevice).
	Spec *specs.Spec `json:"spec"`
	// RootDevice names the guest block device holding the rootfs ("xvda").
	// Empty in host mode (tests), where the rootfs is a host directory.
	RootDevice string `json:"rootDevice,omitempty"`
	// Files are copied in after the rootfs is mounted.
	Files []File `json:"files,omitempty"`
	// Shares are mounted in place of their bind mounts.
	Shares []Share `json:"shares,omitempty"`
}

// Exec asks for another process in the running container.
type Exec struct {
	Process *specs.Process `json:"process"`
}

// Started reports the guest PID of a session's process.
type Started struct {
	Pid int `json:"pid"`
}

// Exit is how a session's process ended: Signal > 0 means it was killed by
// that signal, otherwise Code is its exit code.
type Exit struct {
	Code   int `json:"code"`
	Signal int `json:"signal,omitempty"`
}

// Status is the wait status as a shell shows it: the code, or 128+signal.
func (e Exit) Status() int {
	if e.Signal > 0 {
		return 128 + e.Signal
	}
	return e.Code
}

// Error reports a failed request of a session.
type Error struct {
	Message string `json:"message"`
}

// PsEntry is one process of the guest.
type PsEntry struct {
	Pid     int    `json:"pid"`
	Command string `json:"command"`
}

// PsReply lists the container's processes.
type PsReply struct {
	Processes []PsEntry `json:"processes"`
}

// Winsize is a terminal size.
type Winsize struct {
	Rows uint16
	Cols uint16
}

// CheckHello decodes the peer's Hello and checks that it speaks this
// version of the protocol.
func CheckHello(p []byte) error {
	var h Hello
	if err := Unmarshal(p, &h); err != nil {
		return err
	}
	if h.Version != Version {
		return fmt.Errorf("%w: the %s speaks protocol %d, this side %d: use a guest image built with this vxn", ErrBadVersion, Sanitize(h.Role, 16), h.Version, Version)
	}
	return nil
}

// Marshal encodes v as a frame payload.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("agent: encoding %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes a JSON payload into v, rejecting trailing data.
func Unmarshal(p []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(p))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrBadPayload, v, err)
	}
	if d.More() {
		return fmt.Errorf("%w: %T: trailing data", ErrBadPayload, v)
	}
	return nil
}

// EncodeSignal encodes a signal number.
func EncodeSignal(sig int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(sig)) }

// DecodeSignal decodes and validates a signal number.
func DecodeSignal(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: signal: %d bytes", ErrBadPayload, len(p))
	}
	s := binary.BigEndian.Uint32(p)
	if s == 0 || s > MaxSignal {
		return 0, fmt.Errorf("%w: signal %d out of range", ErrBadPayload, s)
	}
	return int(s), nil
}

// EncodeWinsize encodes a terminal size.
func EncodeWinsize(w Winsize) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, w.Rows), w.Cols)
}

// DecodeWinsize decodes a terminal size.
func DecodeWinsize(p []byte) (Winsize, error) {
	if len(p) != 4 {
		return Winsize{}, fmt.Errorf("%w: winsize: %d bytes", ErrBadPayload, len(p))
	}
	return Winsize{Rows: binary.BigEndian.Uint16(p), Cols: binary.BigEndian.Uint16(p[2:])}, nil
}

// EncodeCount encodes a byte count (stdin acknowledgements).
func EncodeCount(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// DecodeCount decodes a byte count bounded by limit.
func DecodeCount(p []byte, limit uint32) (uint32, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: count: %d bytes", ErrBadPayload, len(p))
	}
	n := binary.BigEndian.Uint32(p)
	if n > limit {
		return 0, fmt.Errorf("%w: count %d above %d", ErrBadPayload, n, limit)
	}
	return n, nil
}

// DecodeExit decodes and validates an exit report from the guest.
func DecodeExit(p []byte) (Exit, error) {
	var e Exit
	if err := Unmarshal(p, &e); err != nil {
		return Exit{}, err
	}
	if e.Code < 0 || e.Code > 255 || e.Signal < 0 || e.Signal > MaxSignal || (e.Signal > 0 && e.Code != 0) {
		return Exit{}, fmt.Errorf("%w: exit code %d signal %d", ErrBadPayload, e.Code, e.Signal)
	}
	return e, nil
}

// DecodeStarted decodes and validates a start report from the guest.
func DecodeStarted(p []byte) (Started, error) {
	var s Started
	if err := Unmarshal(p, &s); err != nil {
		return Started{}, err
	}
	if s.Pid <= 0 || s.Pid > 1<<22 {
		return Started{}, fmt.Errorf("%w: pid %d", ErrBadPayload, s.Pid)
	}
	return s, nil
}

// DecodeError decodes an error report from the guest; the message is
// truncated to MaxErrorLen and made valid UTF-8 without control characters,
// so it can be shown to a user and written to a log safely.
func DecodeError(p []byte) (Error, error) {
	var e Error
	if err := Unmarshal(p, &e); err != nil {
		return Error{}, err
	}
	e.Message = Sanitize(e.Message, MaxErrorLen)
	return e, nil
}

// DecodePsReply decodes and validates a process list from the guest.
func DecodePsReply(p []byte) (PsReply, error) {
	var r PsReply
	if err := Unmarshal(p, &r); err != nil {
		return PsReply{}, err
	}
	if len(r.Processes) > MaxPsEntries {
		return PsReply{}, fmt.Errorf("%w: %d processes (limit %d)", ErrBadPayload, len(r.Processes), MaxPsEntries)
	}
	for i := range r.Processes {
		if r.Processes[i].Pid <= 0 || r.Processes[i].Pid > 1<<22 {
			return PsReply{}, fmt.Errorf("%w: pid %d", ErrBadPayload, r.Processes[i].Pid)
		}
		r.Processes[i].Command = Sanitize(r.Processes[i].Command, 256)
	}
	return r, nil
}

// Sanitize bounds s to max bytes of printable UTF-8.
func Sanitize(s string, max int) string {
	var b []byte
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		if len(b)+utf8.RuneLen(r) > max {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}
