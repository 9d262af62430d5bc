#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <xenstore.h>

#include "vchan.h"

struct libxenvchan *vxn_vchan_server(xentoollog_logger *lg, int peer,
				     const char *path, size_t ring)
{
	struct libxenvchan *c;

	errno = 0;
	c = libxenvchan_server_init(lg, peer, path, ring, ring);
	if (!c) {
		if (!errno)
			errno = EIO;
		return NULL;
	}
	c->blocking = 0;
	return c;
}

/* has_key reports whether xenstore has key: 1 yes, 0 no, -1 error. */
static int has_key(const char *key)
{
	struct xs_handle *xs = xs_open(0);
	unsigned int len;
	void *v;
	int r, e;

	if (!xs)
		return -1;
	v = xs_read(xs, XBT_NULL, key, &len);
	e = errno;
	r = v ? 1 : (e == ENOENT ? 0 : -1);
	free(v);
	xs_close(xs);
	errno = e;
	return r;
}

struct libxenvchan *vxn_vchan_client(xentoollog_logger *lg, int peer,
				     const char *path, int *no_server)
{
	struct libxenvchan *c;
	char key[64];
	int r;

	if ((size_t)snprintf(key, sizeof key, "%s/event-channel", path) >= sizeof key) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	r = has_key(key);
	*no_server = r == 0;
	if (r <= 0)
		return NULL;
	errno = 0;
	c = libxenvchan_client_init(lg, peer, path);
	if (!c) {
		if (!errno)
			errno = EIO;
		return NULL;
	}
	c->blocking = 0;
	return c;
}

int vxn_vchan_poll(struct libxenvchan *ctrl, int wakefd)
{
	struct pollfd fds[2] = {
		{ .fd = libxenvchan_fd_for_select(ctrl), .events = POLLIN },
		{ .fd = wakefd, .events = POLLIN },
	};

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (fds[1].revents)
			return 0;
		if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			errno = EIO;
			return -1;
		}
		if (fds[0].revents & POLLIN)
			return 1;
	}
}

long vxn_own_domid(void)
{
	struct xs_handle *xs = xs_open(0);
	unsigned int len;
	char *v, *end;
	long id;

	if (!xs)
		return -1;
	v = xs_read(xs, XBT_NULL, "domid", &len);
	xs_close(xs);
	if (!v)
		return -1;
	errno = 0;
	id = strtol(v, &end, 10);
	if (errno || end == v || *end || id < 0) {
		free(v);
		errno = EINVAL;
		return -1;
	}
	free(v);
	return id;
}

void vxn_vchan_close(struct libxenvchan *ctrl)
{
	struct xs_handle *xs;

	/* libxenvchan_close removes the server's xenstore entries last, after
	 * releasing the grants and the event channel; a client reading them
	 * in between could find a ring reference and a port that a new
	 * server has just been given again but not set up yet. Remove them
	 * first. */
	if (ctrl->is_server && ctrl->xs_path) {
		xs = xs_open(0);
		if (xs) {
			xs_rm(xs, XBT_NULL, ctrl->xs_path);
			xs_close(xs);
		}
	}
	libxenvchan_close(ctrl);
}
