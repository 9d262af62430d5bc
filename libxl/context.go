package libxl

/*
#cgo pkg-config: xenlight xentoollog
#include "glue.h"
*/
import "C"

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/cgo"
	"sync"
	"syscall"

	"github.com/vxn-runtime/vxn/libxl/xtl"
)

// Context is a libxl_ctx. Its methods may be called from many goroutines
// at once (libxl locks the ctx itself); Close waits for calls in flight.
type Context struct {
	// mu is held for reading across every libxl call and for writing by
	// Close, so v is never freed under a call.
	mu  sync.RWMutex
	v   *C.struct_vxn_ctx // nil once closed
	raw *C.libxl_ctx      // v.ctx, for the goroutines Close stops itself

	log    *xtl.Logger
	ownLog bool
	handle cgo.Handle

	closing   chan struct{}
	closeOnce sync.Once

	sigchld     chan os.Signal
	sigchldDone chan struct{}
	pumpDone    chan struct{}

	wmu      sync.Mutex
	nextUser uint64
	waiters  map[uint64]chan deathEvent
	broken   error // set by libxl's disaster hook
}

// New opens a libxl context that logs to log (nil: nowhere). log must
// outlive the Context. It fails where Xen is not running.
func New(log *xtl.Logger) (*Context, error) {
	c := &Context{
		log:         log,
		closing:     make(chan struct{}),
		sigchld:     make(chan os.Signal, 4),
		sigchldDone: make(chan struct{}),
		pumpDone:    make(chan struct{}),
		waiters:     map[uint64]chan deathEvent{},
	}
	if c.log == nil {
		c.log = xtl.NewLogger(xtl.Critical, nil)
		c.ownLog = true
	}
	// SIGCHLD must reach libxl before it can fork its first child.
	signal.Notify(c.sigchld, syscall.SIGCHLD)
	c.handle = cgo.NewHandle(c)
	rc := C.vxn_ctx_new(&c.v, (*C.xentoollog_logger)(c.log.Ptr()), C.uintptr_t(c.handle))
	if err := check("ctx_alloc", NoDomid, rc); err != nil {
		signal.Stop(c.sigchld)
		c.handle.Delete()
		if c.ownLog {
			c.log.Close()
		}
		return nil, err
	}
	c.raw = c.v.ctx
	go c.reapChildren()
	go c.pump()
	return c, nil
}

// reapChildren keeps the promise made with libxl_sigchld_owner_mainloop:
// tell libxl about every SIGCHLD. libxl then waitpid()s only its own
// children, by pid; Go's children are left to os/exec.
func (c *Context) reapChildren() {
	defer close(c.sigchldDone)
	for range c.sigchld {
		C.libxl_childproc_sigchld_occurred(c.raw)
	}
}

// pump runs libxl's event machinery for events that arrive while no libxl
// call is in progress (a domain dying while WaitForDeath waits).
func (c *Context) pump() {
	defer close(c.pumpDone)
	if rc := C.vxn_pump(c.v); rc != 0 {
		err := check("event loop", NoDomid, rc)
		c.log.Log(xtl.Critical, err.Error())
		c.fail(err)
	}
}

// Close waits for the calls in flight, then frees the context. Pending
// WaitForDeath calls return ErrClosed.
func (c *Context) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.mu.Lock()
		defer c.mu.Unlock()
		C.vxn_pump_stop(c.v)
		<-c.pumpDone
		signal.Stop(c.sigchld)
		close(c.sigchld)
		<-c.sigchldDone
		C.vxn_ctx_free(c.v)
		c.v, c.raw = nil, nil
		c.handle.Delete()
		if c.ownLog {
			c.log.Close()
		}
	})
	return nil
}

// do runs f with the libxl_ctx, unless the Context is closed.
func (c *Context) do(f func(*C.libxl_ctx) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.v == nil {
		return ErrClosed
	}
	return f(c.raw)
}

//export vxnDisaster
func vxnDisaster(handle C.uintptr_t, typ C.int, msg *C.char, errnoval C.int) {
	c := cgo.Handle(handle).Value().(*Context)
	err := fmt.Errorf("libxl: event disaster (event type %d): %s", int(typ), C.GoString(msg))
	if errnoval > 0 {
		err = fmt.Errorf("%w: %w", err, syscall.Errno(errnoval))
	}
	c.fail(err)
}
