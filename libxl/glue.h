/* C side of package libxl. Every Go file of the package includes this
 * header, never libxl.h directly, so the API version is pinned here once. */
#ifndef VXN_LIBXL_GLUE_H
#define VXN_LIBXL_GLUE_H

/* The newest libxl API that Xen 4.17 offers. */
#define LIBXL_API_VERSION 0x041400

#include <stdint.h>
#include <stdlib.h>
#include <libxl.h>
#include <libxl_event.h>
#include <libxl_utils.h>
#include <libxl_uuid.h>

/* A libxl_ctx with what this package hangs off it. The hooks live here
 * because libxl keeps pointers to them for the life of the ctx. */
struct vxn_ctx {
	libxl_ctx *ctx;
	uintptr_t handle; /* cgo.Handle of the Go *Context */
	int wake[2];      /* pipe that wakes vxn_pump */
	int stop;         /* vxn_pump returns when woken (atomic) */
	libxl_event_hooks event_hooks;
	libxl_childproc_hooks childproc_hooks;
};

/* vxn_ctx_new allocates a libxl_ctx logging to lg, tells libxl that the
 * application owns SIGCHLD (libxl_sigchld_owner_mainloop) and sends domain
 * shutdown/death events to vxnDomainEvent. Returns 0 or a libxl error. */
int vxn_ctx_new(struct vxn_ctx **out, xentoollog_logger *lg, uintptr_t handle);
void vxn_ctx_free(struct vxn_ctx *v);

/* vxn_pump runs libxl's file descriptor and timeout handling (watches on
 * xenstore and the like, which produce the events) until vxn_pump_stop.
 * Returns 0 when stopped, or a libxl error. */
int vxn_pump(struct vxn_ctx *v);
void vxn_pump_stop(struct vxn_ctx *v);
/* vxn_pump_kick makes vxn_pump ask libxl for its file descriptors again.
 * Needed after libxl calls that add some without an event-generation
 * context (libxl_evenable_domain_death), which do not wake the
 * application's poll themselves. */
void vxn_pump_kick(struct vxn_ctx *v);

/* Allocation helpers matching what the libxl dispose functions free. */
libxl_domain_config *vxn_config_new(void);
void vxn_config_free(libxl_domain_config *c);
int vxn_config_alloc_disks(libxl_domain_config *c, int n);
int vxn_config_alloc_nics(libxl_domain_config *c, int n);
int vxn_config_alloc_p9s(libxl_domain_config *c, int n);
/* vxn_bitmap_fill makes b an nbits-bit map with bits 0..nset-1 set. */
int vxn_bitmap_fill(libxl_bitmap *b, int nbits, int nset);

#endif
