package agent

import (
	"bufio"
	"fmt"
	"io"
	"sync"
)

// Conn is a framed connection over any byte transport (vchan, vsock, or a
// unix socket in tests). Send may be called from many goroutines; Recv from
// one.
type Conn struct {
	rw  io.ReadWriteCloser
	r   *bufio.Reader
	mu  sync.Mutex // serialises writes
	buf []byte
}

// NewConn wraps a transport.
func NewConn(rw io.ReadWriteCloser) *Conn {
	return &Conn{rw: rw, r: bufio.NewReaderSize(rw, 64<<10)}
}

// Send writes one frame.
func (c *Conn) Send(t Type, session uint32, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := AppendFrame(c.buf[:0], Frame{Type: t, Session: session, Payload: payload})
	if err != nil {
		return err
	}
	c.buf = b
	if len(c.buf) > 1<<20 {
		defer func() { c.buf = nil }() // do not pin a large config buffer
	}
	if _, err := c.rw.Write(b); err != nil {
		return fmt.Errorf("agent: sending %s: %w", t, err)
	}
	return nil
}

// SendJSON marshals v and sends it as one frame.
func (c *Conn) SendJSON(t Type, session uint32, v any) error {
	p, err := Marshal(v)
	if err != nil {
		return err
	}
	return c.Send(t, session, p)
}

// Recv reads the next frame.
func (c *Conn) Recv() (Frame, error) { return ReadFrame(c.r) }

// Close closes the transport.
func (c *Conn) Close() error { return c.rw.Close() }
