package monitor_test

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// patternReader is stdin of n bytes of a known pattern; it counts its
// reads.
type patternReader struct {
	n, off int
	reads  atomic.Int32
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func (r *patternReader) Read(p []byte) (int, error) {
	r.reads.Add(1)
	if r.off >= r.n {
		return 0, io.EOF
	}
	n := min(len(p), r.n-r.off)
	for i := 0; i < n; i++ {
		j := r.off + i
		p[i] = byte(j*7 + j/251)
	}
	r.off += n
	return n, nil
}

// settle gives the monitor a moment in which it must NOT do something (send
// past the window). Only a broken monitor can fail because of it.
func settle() { time.Sleep(50 * time.Millisecond) }

// TestMonitorStdinWindow: the monitor keeps at most agent.StdinWindow
// bytes unacknowledged, sends more as the guest acknowledges, and closes
// the process's stdin after the last byte.
func TestMonitorStdinWindow(t *testing.T) {
	t.Parallel()
	const total = 3*agent.StdinWindow + 1000
	src := &patternReader{n: total}
	h := newHarness(t, withStdin(src))
	h.boot()
	h.start()
	done := h.serve()

	// No acknowledgement: the monitor fills the window and stops.
	if !h.g.wait(func() bool { return h.g.stdin[0] != nil && h.g.stdin[0].Len() >= agent.StdinWindow-agent.ChunkSize }) {
		t.Fatalf("the monitor sent %d stdin bytes, want about a window", h.g.stdinLen(0))
	}
	// The pump has read the chunk it cannot send: it waits for credit.
	if !eventually(func() bool { return int(src.reads.Load()) > agent.StdinWindow/agent.ChunkSize }) {
		t.Fatalf("the monitor read stdin %d times", src.reads.Load())
	}
	settle()
	sent := h.g.stdinLen(0)
	if sent > agent.StdinWindow || sent < agent.StdinWindow-agent.ChunkSize {
		t.Fatalf("without acknowledgement the monitor sent %d bytes; window %d", sent, agent.StdinWindow)
	}
	if h.g.stdinClosed(0) {
		t.Fatal("stdin closed before all was sent")
	}

	// A partial acknowledgement opens part of the window.
	const ack = 100000
	h.g.mustSend(t, agent.TypeStdinAck, 0, agent.EncodeCount(ack))
	if !h.g.wait(func() bool { return h.g.stdin[0].Len() > sent }) {
		t.Fatal("no more stdin after an acknowledgement")
	}
	settle()
	sent2 := h.g.stdinLen(0)
	if sent2-ack > agent.StdinWindow || sent2-ack < agent.StdinWindow-agent.ChunkSize {
		t.Fatalf("after acknowledging %d of %d bytes the monitor sent %d in all; window %d", ack, sent, sent2, agent.StdinWindow)
	}

	// Acknowledge as data comes, as guestinit does, until the end.
	acked := ack
	for !h.g.stdinClosed(0) {
		var n int
		if !h.g.wait(func() bool {
			n = h.g.stdin[0].Len()
			return n > acked || h.g.closed[0]
		}) {
			t.Fatalf("stdin stalled at %d of %d bytes, %d acknowledged", h.g.stdinLen(0), total, acked)
		}
		if n > acked {
			h.g.mustSend(t, agent.TypeStdinAck, 0, agent.EncodeCount(uint32(n-acked)))
			acked = n
		}
	}
	if got := h.g.stdinOf(0); !bytes.Equal(got, pattern(total)) {
		t.Fatalf("stdin: got %d bytes, want %d; equal prefix %d", len(got), total, commonPrefix(got, pattern(total)))
	}
	// The close comes after the last data.
	h.g.mu.Lock()
	lastData, closeAt := -1, -1
	for i, f := range h.g.frames {
		switch {
		case f.Type == agent.TypeStdin:
			lastData = i
			if len(f.Payload) > agent.ChunkSize {
				t.Errorf("stdin frame of %d bytes, above agent.ChunkSize", len(f.Payload))
			}
		case f.Type == agent.TypeStdinClose && closeAt < 0:
			closeAt = i
		}
	}
	h.g.mu.Unlock()
	if closeAt < lastData {
		t.Errorf("stdin-close (frame %d) before the last stdin data (frame %d)", closeAt, lastData)
	}
	if n := h.g.count(agent.TypeStdinClose, 0); n != 1 {
		t.Errorf("%d stdin-close frames, want 1", n)
	}
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{})
	if st := await(t, done, "Serve"); st != 0 {
		t.Errorf("Serve: %d", st)
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// TestMonitorStdinExitWithFullWindow: a process that exits without reading
// its stdin does not hang the monitor on a full window.
func TestMonitorStdinExitWithFullWindow(t *testing.T) {
	t.Parallel()
	src := &patternReader{n: 4 * agent.StdinWindow}
	h := newHarness(t, withStdin(src))
	h.boot()
	h.start()
	done := h.serve()
	if !h.g.wait(func() bool { return h.g.stdin[0] != nil && h.g.stdin[0].Len() >= agent.StdinWindow-agent.ChunkSize }) {
		t.Fatal("no stdin")
	}
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 1})
	if st := await(t, done, "Serve"); st != 1 {
		t.Errorf("Serve: %d", st)
	}
	if n := h.g.stdinLen(0); n > agent.StdinWindow {
		t.Errorf("%d stdin bytes sent, above the window", n)
	}
}

// TestMonitorStdinEmpty: an empty stdin is closed at once.
func TestMonitorStdinEmpty(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withStdin(&patternReader{}))
	h.boot()
	h.start()
	h.g.mustTake(t, agent.TypeStdinClose, 0)
	if n := h.g.count(agent.TypeStdin, 0); n != 0 {
		t.Errorf("%d stdin frames for empty stdin", n)
	}
}

// TestMonitorStdinNotBeforeStart: nothing is read from stdin until the
// process runs.
func TestMonitorStdinNotBeforeStart(t *testing.T) {
	t.Parallel()
	src := &patternReader{n: 10}
	h := newHarness(t, withStdin(src))
	h.boot()
	settle()
	if n := src.reads.Load(); n != 0 {
		t.Errorf("stdin read %d times before start", n)
	}
	h.start()
	h.g.mustTake(t, agent.TypeStdinClose, 0)
	if got := h.g.stdinOf(0); !bytes.Equal(got, pattern(10)) {
		t.Errorf("stdin %q", got)
	}
}
