package libxl

/*
#include "glue.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
)

// NoDomid is the Domid of an Error from an operation on no particular
// domain (libxl's INVALID_DOMID).
const NoDomid = ^uint32(0)

// Error is a failed libxl call: Code is libxl's error code (negative,
// libxl_error), Op names the operation.
type Error struct {
	Op    string
	Domid uint32
	Code  int
}

// Sentinels for errors.Is: an *Error matches the sentinel with its Code.
var (
	ErrFail            = &Error{Code: C.ERROR_FAIL}
	ErrInvalid         = &Error{Code: C.ERROR_INVAL}
	ErrNoMemory        = &Error{Code: C.ERROR_NOMEM}
	ErrTimedOut        = &Error{Code: C.ERROR_TIMEDOUT}
	ErrNotReady        = &Error{Code: C.ERROR_NOT_READY}
	ErrDeviceExists    = &Error{Code: C.ERROR_DEVICE_EXISTS}
	ErrDomainNotFound  = &Error{Code: C.ERROR_DOMAIN_NOTFOUND}
	ErrNotFound        = &Error{Code: C.ERROR_NOTFOUND}
	ErrDomainDestroyed = &Error{Code: C.ERROR_DOMAIN_DESTROYED}
)

// ErrClosed is returned by every method of a closed Context.
var ErrClosed = errors.New("libxl: context closed")

// CodeName is libxl's name for an error code, "ERROR_DOMAIN_NOTFOUND".
func CodeName(code int) string {
	if s := C.libxl_error_to_string(C.libxl_error(code)); s != nil {
		return "ERROR_" + strings.ToUpper(C.GoString(s))
	}
	return fmt.Sprintf("libxl error %d", code)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("libxl: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		if e.Domid != NoDomid {
			fmt.Fprintf(&b, " (domain %d)", e.Domid)
		}
		b.WriteString(": ")
	}
	b.WriteString(CodeName(e.Code))
	return b.String()
}

// Is matches a sentinel (an *Error without Op) of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Code == e.Code
}

// check turns a libxl return code into an error.
func check(op string, domid uint32, rc C.int) error {
	if rc == 0 {
		return nil
	}
	return &Error{Op: op, Domid: domid, Code: int(rc)}
}
