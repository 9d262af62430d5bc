/* xentoollog logger whose messages go to a Go function (see xtl.go). */
#ifndef VXN_XTL_H
#define VXN_XTL_H

#include <stdint.h>
#include <xentoollog.h>

struct vxn_xtl_logger;

/* vxn_xtl_new returns a logger that hands every message at or above min to
 * the Go logger registered under handle (a runtime/cgo.Handle), or NULL if
 * out of memory. Destroy it with xtl_logger_destroy. */
xentoollog_logger *vxn_xtl_new(uintptr_t handle, xentoollog_level min);

/* vxn_xtl_log logs msg through any xentoollog logger, as libxl would. */
void vxn_xtl_log(xentoollog_logger *lg, xentoollog_level level, const char *msg);

#endif
