// Package vchan is vxn's agent transport on Xen: a byte stream over
// libxenvchan (shared-memory rings granted by one domain to another plus an
// event channel, advertised through xenstore).
//
// The guest is the server: Listen publishes the rings under the guest's own
// xenstore "data/" subtree (AgentPath), where dom0 may read them. The vxn
// monitor in dom0 is the client: Dial maps them.
//
// A Conn is an io.ReadWriteCloser safe for one reading goroutine and one
// writing goroutine at a time, plus Close from anywhere. libxenvchan is not
// thread-safe: every call into it is made under one mutex that is never
// held while blocking. Both directions share one event channel, so a single
// goroutine per Conn waits on its fd (libxenvchan_fd_for_select, poll,
// libxenvchan_wait) and wakes whichever side is waiting; readers and
// writers only ever make non-blocking libxenvchan calls.
//
// # Guest requirements (server side)
//
// Kernel modules xen-evtchn, xen-gntalloc and xen-gntdev (modules in
// Debian's cloud kernel; the xenbus frontend is built in), and devtmpfs on
// /dev so that /dev/xen/evtchn, /dev/xen/gntalloc, /dev/xen/gntdev and
// /dev/xen/xenbus exist. The client side (dom0) needs /dev/xen/evtchn,
// /dev/xen/gntdev and a running xenstored.
//
// # Static linking (guestinit)
//
// This package links only libxenvchan and what it needs (libxenstore,
// libxengnttab, libxenevtchn, libxentoolcore, libxentoollog), never
// libxenlight, so a static PID 1 builds with
//
//	CGO_ENABLED=1 go build -ldflags '-linkmode external -extldflags "-static"'
//
// (the "--static" in the pkg-config directive below lists the transitive
// libraries for the static link; a dynamic link ignores the extra ones).
package vchan

/*
#cgo pkg-config: --static xenvchan xenstore
#include <stdlib.h>
#include "vchan.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"github.com/vxn-runtime/vxn/libxl/xtl"
)

// AgentPath is the xenstore directory where the guest domain domid serves
// the vxn agent channel. guestinit listens there and the monitor dials it.
func AgentPath(domid uint32) string {
	return "/local/domain/" + strconv.FormatUint(uint64(domid), 10) + "/data/vxn-agent"
}

// DefaultRingSize is the size of each direction's ring when Listen is not
// given WithRingSize: libxenvchan's largest. Each ring costs the guest its
// size in granted memory (2 MiB and 513 grants for both directions), and
// buys speed: under QEMU/TCG, one-way transfers ran at 90-140 MB/s with
// 1 MiB rings, 25-40 MB/s with 256 KiB and 15 MB/s with 64 KiB.
const DefaultRingSize = 1 << 20

// maxRingSize is libxenvchan's limit (MAX_RING_SIZE).
const maxRingSize = 1 << 20

// maxPathLen: libxenvchan builds "<path>/event-channel" in a 64-byte buffer.
const maxPathLen = 64 - len("/event-channel") - 1

// Errors.
var (
	// ErrNoServer: nothing listens at the path (yet); Dial again later.
	ErrNoServer = errors.New("vchan: no server at path")
	// ErrClosed: the Conn was closed by this side.
	ErrClosed = errors.New("vchan: use of closed channel")
)

type options struct {
	ring int
	log  *xtl.Logger
}

// Option configures Dial or Listen.
type Option func(*options)

// WithRingSize sets the size in bytes of each direction's ring (Listen
// only; the client uses the server's). It is rounded up to a power of two,
// at most 1 MiB.
func WithRingSize(n int) Option { return func(o *options) { o.ring = n } }

// WithLogger sends the messages of the Xen libraries to l instead of
// stderr. l must outlive the Conn.
func WithLogger(l *xtl.Logger) Option { return func(o *options) { o.log = l } }

func getOptions(opts []Option) (options, *C.xentoollog_logger) {
	o := options{ring: DefaultRingSize}
	for _, f := range opts {
		f(&o)
	}
	var lg *C.xentoollog_logger
	if o.log != nil {
		lg = (*C.xentoollog_logger)(o.log.Ptr())
	}
	return o, lg
}

func checkPath(p string) error {
	if p == "" || len(p) > maxPathLen {
		return fmt.Errorf("vchan: xenstore path %q: length must be 1..%d", p, maxPathLen)
	}
	return nil
}

// Dial connects to the server that domain domid publishes at xsPath. It
// returns ErrNoServer (wrapped) while nothing is published there.
func Dial(domid uint32, xsPath string, opts ...Option) (*Conn, error) {
	if err := checkPath(xsPath); err != nil {
		return nil, err
	}
	_, lg := getOptions(opts)
	cp := C.CString(xsPath)
	defer C.free(unsafe.Pointer(cp))
	var noServer C.int
	ctrl, err := C.vxn_vchan_client(lg, C.int(domid), cp, &noServer)
	if ctrl == nil {
		if noServer != 0 {
			err = ErrNoServer
		}
		return nil, fmt.Errorf("vchan: dial domain %d at %s: %w", domid, xsPath, err)
	}
	return newConn(ctrl)
}

// Listen publishes a server at xsPath (a path this domain may write, such
// as AgentPath of its own domid) that domain peer may connect to. It does
// not wait for the client: writes fill the ring until it connects. One
// client connects once; to serve another, Close and Listen again,
// preferably at another path (a client that read the old entries just
// before Close could otherwise meet the new server half set up).
func Listen(xsPath string, peer uint32, opts ...Option) (*Conn, error) {
	if err := checkPath(xsPath); err != nil {
		return nil, err
	}
	o, lg := getOptions(opts)
	if o.ring <= 0 || o.ring > maxRingSize {
		return nil, fmt.Errorf("vchan: ring size %d out of range 1..%d", o.ring, maxRingSize)
	}
	cp := C.CString(xsPath)
	defer C.free(unsafe.Pointer(cp))
	ctrl, err := C.vxn_vchan_server(lg, C.int(peer), cp, C.size_t(o.ring))
	if ctrl == nil {
		return nil, fmt.Errorf("vchan: listen at %s for domain %d: %w", xsPath, peer, err)
	}
	return newConn(ctrl)
}

// OwnDomid returns the id of the domain this code runs in, from xenstore.
func OwnDomid() (uint32, error) {
	id, err := C.vxn_own_domid()
	if id < 0 {
		return 0, fmt.Errorf("vchan: reading own domid from xenstore: %w", err)
	}
	return uint32(id), nil
}

// Conn is one end of a vchan.
type Conn struct {
	mu     sync.Mutex
	ctrl   *C.struct_libxenvchan // nil once closed
	notify chan struct{}         // closed (and replaced) on every event
	err    error                 // event wait failure, sticky

	wake      [2]int // pipe that stops the event goroutine
	closed    chan struct{}
	closeOnce sync.Once
	waitDone  chan struct{}
}

func newConn(ctrl *C.struct_libxenvchan) (*Conn, error) {
	c := &Conn{
		ctrl:     ctrl,
		notify:   make(chan struct{}),
		closed:   make(chan struct{}),
		waitDone: make(chan struct{}),
	}
	if err := syscall.Pipe2(c.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		C.vxn_vchan_close(ctrl)
		return nil, fmt.Errorf("vchan: pipe: %w", err)
	}
	go c.waitEvents(ctrl)
	return c, nil
}

// waitEvents consumes event channel notifications and wakes the waiting
// reader and writer. It holds no lock while blocked in poll; ctrl stays
// valid until Close has seen it return.
func (c *Conn) waitEvents(ctrl *C.struct_libxenvchan) {
	defer close(c.waitDone)
	for {
		r, err := C.vxn_vchan_poll(ctrl, C.int(c.wake[0]))
		c.mu.Lock()
		if r > 0 && C.libxenvchan_wait(ctrl) < 0 {
			r, err = -1, errors.New("libxenvchan_wait failed")
		}
		if r < 0 {
			c.err = fmt.Errorf("vchan: waiting for event: %w", err)
		}
		close(c.notify)
		c.notify = make(chan struct{})
		c.mu.Unlock()
		if r <= 0 {
			return
		}
	}
}

// begin locks c for a libxenvchan call. It returns the channel to wait on
// should the call make no progress, or an error if c is unusable.
func (c *Conn) begin() (chan struct{}, error) {
	c.mu.Lock()
	if c.ctrl == nil {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	return c.notify, nil
}

func (c *Conn) sleep(ch chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-c.closed:
		return ErrClosed
	}
}

// Read reads what is available, waiting for at least one byte. It returns
// io.EOF once the peer has closed and everything it sent has been read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		ch, err := c.begin()
		if err != nil {
			return 0, err
		}
		n := C.libxenvchan_read(c.ctrl, unsafe.Pointer(&p[0]), C.size_t(min(len(p), maxRingSize)))
		open := C.libxenvchan_is_open(c.ctrl)
		c.mu.Unlock()
		switch {
		case n > 0:
			return int(n), nil
		case open == 0:
			return 0, io.EOF
		case n < 0:
			return 0, errors.New("vchan: read failed")
		}
		if err := c.sleep(ch); err != nil {
			return 0, err
		}
	}
}

// Write writes all of p, waiting for ring space as needed. It fails with
// io.ErrClosedPipe once the peer has closed.
func (c *Conn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		ch, err := c.begin()
		if err != nil {
			return done, err
		}
		var n C.int
		open := C.libxenvchan_is_open(c.ctrl)
		if open != 0 {
			n = C.libxenvchan_write(c.ctrl, unsafe.Pointer(&p[done]), C.size_t(min(len(p)-done, maxRingSize)))
		}
		c.mu.Unlock()
		switch {
		case open == 0:
			return done, io.ErrClosedPipe
		case n < 0:
			return done, errors.New("vchan: write failed")
		case n > 0:
			done += int(n)
			continue
		}
		if err := c.sleep(ch); err != nil {
			return done, err
		}
	}
	return done, nil
}

// Close closes this end; the peer reads what was sent, then EOF. A blocked
// Read or Write returns ErrClosed. A server first removes its xenstore
// entries, so that no client dials a half-closed server.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		// Stop the event goroutine before freeing what it polls.
		syscall.Write(c.wake[1], []byte{0})
		<-c.waitDone
		c.mu.Lock()
		C.vxn_vchan_close(c.ctrl)
		c.ctrl = nil
		c.mu.Unlock()
		syscall.Close(c.wake[0])
		syscall.Close(c.wake[1])
	})
	return nil
}
