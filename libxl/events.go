package libxl

/*
#include "glue.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
)

// ShutdownReason says why a domain stopped running.
type ShutdownReason int

// Shutdown reasons: libxl's, plus ShutdownDestroyed.
const (
	ShutdownUnknown   ShutdownReason = C.LIBXL_SHUTDOWN_REASON_UNKNOWN
	ShutdownPoweroff  ShutdownReason = C.LIBXL_SHUTDOWN_REASON_POWEROFF
	ShutdownReboot    ShutdownReason = C.LIBXL_SHUTDOWN_REASON_REBOOT
	ShutdownSuspend   ShutdownReason = C.LIBXL_SHUTDOWN_REASON_SUSPEND
	ShutdownCrash     ShutdownReason = C.LIBXL_SHUTDOWN_REASON_CRASH
	ShutdownWatchdog  ShutdownReason = C.LIBXL_SHUTDOWN_REASON_WATCHDOG
	ShutdownSoftReset ShutdownReason = C.LIBXL_SHUTDOWN_REASON_SOFT_RESET
	// ShutdownDestroyed is not libxl's: the domain went away (was
	// destroyed) without shutting down first.
	ShutdownDestroyed ShutdownReason = 1 << 16
)

func (r ShutdownReason) String() string {
	if r == ShutdownDestroyed {
		return "destroyed"
	}
	if s := C.libxl_shutdown_reason_to_string(C.libxl_shutdown_reason(r)); s != nil {
		return C.GoString(s)
	}
	return fmt.Sprintf("shutdown reason %d", int(r))
}

type deathEvent struct {
	reason ShutdownReason
	err    error
}

//export vxnDomainEvent
func vxnDomainEvent(handle C.uintptr_t, typ C.int, domid C.uint32_t, user C.uint64_t, reason C.int) {
	c := cgo.Handle(handle).Value().(*Context)
	ev := deathEvent{reason: ShutdownDestroyed}
	if typ == C.LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN {
		ev.reason = ShutdownReason(reason)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if ch, ok := c.waiters[uint64(user)]; ok {
		select {
		case ch <- ev:
		default: // the waiter has its answer already
		}
	}
}

// fail ends every WaitForDeath with err: libxl can no longer report
// events.
func (c *Context) fail(err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.broken = err
	for _, ch := range c.waiters {
		select {
		case ch <- deathEvent{err: err}:
		default:
		}
	}
}

// WaitForDeath blocks until domain domid shuts down (poweroff, reboot,
// crash...) or disappears (ShutdownDestroyed), or ctx ends. A domain that
// has already shut down or does not exist is reported at once. The domain
// is left as it is: a shut-down domain stays until Destroy.
func (c *Context) WaitForDeath(ctx context.Context, domid uint32) (ShutdownReason, error) {
	ch := make(chan deathEvent, 1)
	c.wmu.Lock()
	if c.broken != nil {
		c.wmu.Unlock()
		return ShutdownUnknown, c.broken
	}
	c.nextUser++
	user := c.nextUser
	c.waiters[user] = ch
	c.wmu.Unlock()
	defer func() {
		c.wmu.Lock()
		delete(c.waiters, user)
		c.wmu.Unlock()
	}()

	var evg *C.libxl_evgen_domain_death
	err := c.do(func(p *C.libxl_ctx) error {
		rc := C.libxl_evenable_domain_death(p, C.uint32_t(domid), C.libxl_ev_user(user), &evg)
		// The xenstore watch it may have added is news to the pump.
		C.vxn_pump_kick(c.v)
		return check("evenable_domain_death", domid, rc)
	})
	if err != nil {
		return ShutdownUnknown, err
	}
	defer c.do(func(p *C.libxl_ctx) error {
		C.libxl_evdisable_domain_death(p, evg)
		return nil
	})

	select {
	case ev := <-ch:
		return ev.reason, ev.err
	case <-ctx.Done():
		return ShutdownUnknown, ctx.Err()
	case <-c.closing:
		return ShutdownUnknown, ErrClosed
	}
}
