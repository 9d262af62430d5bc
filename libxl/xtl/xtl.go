// Package xtl routes the log of Xen's C libraries (xentoollog, the logger
// that libxenlight, libxenctrl, libxenstore users, libxenvchan and friends
// take) into a Go function, so that nothing they say ends up on the
// process's stderr, which in vxn's monitor may be the container's stderr.
//
// It is shared by the libxl and vchan packages; guestinit may use it
// without pulling in libxenlight (it links only libxentoollog).
package xtl

/*
#cgo pkg-config: xentoollog
#include <stdlib.h>
#include "xtl.h"
*/
import "C"

import (
	"fmt"
	"io"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// Level is a xentoollog message level.
type Level int

// Levels, lowest first; they are xentoollog's.
const (
	Debug    Level = C.XTL_DEBUG
	Verbose  Level = C.XTL_VERBOSE
	Detail   Level = C.XTL_DETAIL
	Progress Level = C.XTL_PROGRESS
	Info     Level = C.XTL_INFO
	Notice   Level = C.XTL_NOTICE
	Warn     Level = C.XTL_WARN
	Error    Level = C.XTL_ERROR
	Critical Level = C.XTL_CRITICAL
)

var levelNames = [...]string{
	Debug: "debug", Verbose: "verbose", Detail: "detail", Progress: "progress",
	Info: "info", Notice: "notice", Warn: "warning", Error: "error",
	Critical: "critical",
}

func (l Level) String() string {
	if l >= Debug && l <= Critical {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// LogFunc receives one message: no trailing newline, already prefixed with
// its C context ("libxl: ...", "xc: ..."). It may be called from any
// goroutine or C thread, concurrently, and must not call back into Xen's
// libraries.
type LogFunc func(level Level, msg string)

// WriterLog returns a LogFunc that writes "level: msg\n" lines to w,
// one Write per message, serialised.
func WriterLog(w io.Writer) LogFunc {
	var mu sync.Mutex
	return func(level Level, msg string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s: %s\n", level, msg)
	}
}

// Logger is a xentoollog_logger backed by a LogFunc.
type Logger struct {
	ptr    *C.xentoollog_logger
	handle cgo.Handle
	once   sync.Once
}

// NewLogger returns a logger passing messages at level min or above to fn.
// A nil fn discards everything. Close it after every C object that was
// given it is gone.
func NewLogger(min Level, fn LogFunc) *Logger {
	if fn == nil {
		fn = func(Level, string) {}
	}
	h := cgo.NewHandle(fn)
	p := C.vxn_xtl_new(C.uintptr_t(h), C.xentoollog_level(min))
	if p == nil {
		h.Delete()
		panic("xtl: out of memory")
	}
	return &Logger{ptr: p, handle: h}
}

// Ptr is the xentoollog_logger* for the cgo code of sibling packages, which
// convert it to their own C type.
func (l *Logger) Ptr() unsafe.Pointer { return unsafe.Pointer(l.ptr) }

// Log sends msg through the C logger, exactly as a C library would.
func (l *Logger) Log(level Level, msg string) {
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	C.vxn_xtl_log(l.ptr, C.xentoollog_level(level), cs)
}

// Close destroys the C logger.
func (l *Logger) Close() {
	l.once.Do(func() {
		C.xtl_logger_destroy(l.ptr)
		l.handle.Delete()
	})
}

//export vxnXTLMessage
func vxnXTLMessage(handle C.uintptr_t, level C.int, msg *C.char) {
	fn := cgo.Handle(handle).Value().(LogFunc)
	fn(Level(level), C.GoString(msg))
}
