// Package libxl is a hand-written cgo binding over libxenlight (Xen 4.17,
// LIBXL_API_VERSION 0x041400, pinned in glue.h): the part of libxl that
// vxn needs to run a container as a PV or PVH DomU.
//
// A Context wraps one libxl_ctx. Its log (xentoollog) goes to an
// xtl.Logger, never to stderr. Failed libxl calls return *Error, which
// names the operation, the domain and libxl's error code, and matches the
// sentinels (ErrDomainNotFound...) with errors.Is.
//
// # SIGCHLD
//
// libxl runs child processes (the block and vif hotplug scripts) during
// domain creation, device hot-plug and destruction, and must learn when
// they exit. Every libxl mode that has libxl install its own SIGCHLD
// handler is wrong for a Go program:
//
//   - libxl_sigchld_owner_libxl (the default) and _libxl_always reap
//     every child with wait(): they would steal the exit status of the
//     children the vxn monitor starts with os/exec.
//   - _libxl_always_selective_reap reaps only libxl's children, but it
//     still installs libxl's handler with sigaction, first asserting that
//     the handler in place is SIG_DFL or SIG_IGN. In a Go program the Go
//     runtime's handler is in place, so the assertion aborts the process;
//     and were it skipped, the Go runtime's handler would be replaced by
//     one without SA_ONSTACK, which Go forbids.
//
// So a Context uses libxl_sigchld_owner_mainloop, as Xen's own Go binding
// does: libxl installs no handler; the Go runtime keeps SIGCHLD; a
// goroutine per Context subscribes to it with os/signal and calls
// libxl_childproc_sigchld_occurred for each one. That function waitpid()s
// each of libxl's own children by pid and nothing else, so os/exec keeps
// reaping its children normally (and libxl never sees them). Coalesced
// signals are harmless: each call checks all of libxl's children.
//
// # Events
//
// Domain shutdown and death events are delivered through libxl's
// event_occurs callback. One goroutine per Context drives libxl's file
// descriptors and timeouts (libxl_osevent_beforepoll, poll,
// libxl_osevent_afterpoll) so that events arrive while no libxl call is
// running; synchronous calls (ao_how NULL) run libxl's event loop
// themselves and may deliver events too. WaitForDeath enables a
// domain-death event generator per call and can be abandoned through its
// context.Context. libxl_evenable_domain_death may start a xenstore watch
// without waking an application's poll (it runs without an event-generation
// context, so libxl's "baton" wake-up does not happen), so WaitForDeath
// wakes the goroutine itself, which then asks libxl for its descriptors
// again.
package libxl
