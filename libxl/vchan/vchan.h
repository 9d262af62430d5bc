/* C side of package vchan: libxenvchan set-up and the event wait. */
#ifndef VXN_VCHAN_H
#define VXN_VCHAN_H

#include <stddef.h>
#include <stdint.h>
#include <xentoollog.h>
#include <libxenvchan.h>

/* Both return a non-blocking vchan, or NULL with errno set.
 * vxn_vchan_client sets *no_server when it failed because no server has
 * published path yet. */
struct libxenvchan *vxn_vchan_server(xentoollog_logger *lg, int peer,
				     const char *path, size_t ring);
struct libxenvchan *vxn_vchan_client(xentoollog_logger *lg, int peer,
				     const char *path, int *no_server);

/* vxn_vchan_close is libxenvchan_close, but a server's xenstore entries
 * go first. */
void vxn_vchan_close(struct libxenvchan *ctrl);

/* vxn_vchan_poll blocks until the vchan's event channel fd or wakefd is
 * readable, without calling into libxenvchan. Returns 1 for the event
 * channel (libxenvchan_wait will not block), 0 for wakefd, -1 with errno on
 * error. */
int vxn_vchan_poll(struct libxenvchan *ctrl, int wakefd);

/* vxn_own_domid reads this domain's id from xenstore, or returns -1 with
 * errno. */
long vxn_own_domid(void);

#endif
