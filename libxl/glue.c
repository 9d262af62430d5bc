#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "glue.h"
#include "_cgo_export.h"

static void event_occurs(void *user, libxl_event *ev)
{
	struct vxn_ctx *v = user;

	vxnDomainEvent(v->handle, (int)ev->type, ev->domid, ev->for_user,
		       ev->type == LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN ?
			       (int)ev->u.domain_shutdown.shutdown_reason : -1);
	libxl_event_free(v->ctx, ev);
}

static void disaster(void *user, libxl_event_type type, const char *msg,
		     int errnoval)
{
	struct vxn_ctx *v = user;

	vxnDisaster(v->handle, (int)type, (char *)msg, errnoval);
}

int vxn_ctx_new(struct vxn_ctx **out, xentoollog_logger *lg, uintptr_t handle)
{
	struct vxn_ctx *v = calloc(1, sizeof *v);
	int rc;

	*out = NULL;
	if (!v)
		return ERROR_NOMEM;
	v->handle = handle;
	if (pipe2(v->wake, O_CLOEXEC | O_NONBLOCK)) {
		free(v);
		return ERROR_FAIL;
	}
	rc = libxl_ctx_alloc(&v->ctx, LIBXL_VERSION, 0, lg);
	if (rc) {
		close(v->wake[0]);
		close(v->wake[1]);
		free(v);
		return rc;
	}
	v->childproc_hooks.chldowner = libxl_sigchld_owner_mainloop;
	libxl_childproc_setmode(v->ctx, &v->childproc_hooks, v);
	v->event_hooks.event_occurs_mask =
		(1UL << LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN) |
		(1UL << LIBXL_EVENT_TYPE_DOMAIN_DEATH);
	v->event_hooks.event_occurs = event_occurs;
	v->event_hooks.disaster = disaster;
	libxl_event_register_callbacks(v->ctx, &v->event_hooks, v);
	*out = v;
	return 0;
}

void vxn_ctx_free(struct vxn_ctx *v)
{
	libxl_ctx_free(v->ctx);
	close(v->wake[0]);
	close(v->wake[1]);
	free(v);
}

int vxn_pump(struct vxn_ctx *v)
{
	struct pollfd *fds = NULL, *nfds_buf;
	int cap = 0, nfds, timeout, rc, i;
	struct timeval now;
	char drain[16];

	for (;;) {
		/* fds[0] is the wake pipe, libxl's fds follow */
		nfds = cap > 0 ? cap - 1 : 0;
		timeout = -1;
		gettimeofday(&now, NULL);
		rc = libxl_osevent_beforepoll(v->ctx, &nfds, fds ? fds + 1 : NULL,
					      &timeout, now);
		if (rc == ERROR_BUFFERFULL || (!rc && !fds)) {
			nfds_buf = realloc(fds, (size_t)(nfds + 1) * sizeof *fds);
			if (!nfds_buf) {
				free(fds);
				return ERROR_NOMEM;
			}
			fds = nfds_buf;
			cap = nfds + 1;
			continue;
		}
		if (rc) {
			free(fds);
			return rc;
		}
		fds[0].fd = v->wake[0];
		fds[0].events = POLLIN;
		for (i = 0; i <= nfds; i++)
			fds[i].revents = 0;
		if (poll(fds, (nfds_t)nfds + 1, timeout) < 0 && errno != EINTR) {
			free(fds);
			return ERROR_FAIL;
		}
		gettimeofday(&now, NULL);
		libxl_osevent_afterpoll(v->ctx, nfds, fds + 1, now);
		if (fds[0].revents) {
			while (read(v->wake[0], drain, sizeof drain) > 0)
				;
			if (__atomic_load_n(&v->stop, __ATOMIC_SEQ_CST)) {
				free(fds);
				return 0;
			}
		}
	}
}

void vxn_pump_kick(struct vxn_ctx *v)
{
	ssize_t r = write(v->wake[1], "", 1);
	(void)r; /* a full pipe wakes the pump as well */
}

void vxn_pump_stop(struct vxn_ctx *v)
{
	__atomic_store_n(&v->stop, 1, __ATOMIC_SEQ_CST);
	vxn_pump_kick(v);
}

libxl_domain_config *vxn_config_new(void)
{
	libxl_domain_config *c = malloc(sizeof *c);

	if (c)
		libxl_domain_config_init(c);
	return c;
}

void vxn_config_free(libxl_domain_config *c)
{
	libxl_domain_config_dispose(c);
	free(c);
}

int vxn_config_alloc_disks(libxl_domain_config *c, int n)
{
	int i;

	c->disks = calloc((size_t)n, sizeof *c->disks);
	if (!c->disks)
		return ERROR_NOMEM;
	c->num_disks = n;
	for (i = 0; i < n; i++)
		libxl_device_disk_init(&c->disks[i]);
	return 0;
}

int vxn_config_alloc_nics(libxl_domain_config *c, int n)
{
	int i;

	c->nics = calloc((size_t)n, sizeof *c->nics);
	if (!c->nics)
		return ERROR_NOMEM;
	c->num_nics = n;
	for (i = 0; i < n; i++)
		libxl_device_nic_init(&c->nics[i]);
	return 0;
}

int vxn_config_alloc_p9s(libxl_domain_config *c, int n)
{
	int i;

	c->p9s = calloc((size_t)n, sizeof *c->p9s);
	if (!c->p9s)
		return ERROR_NOMEM;
	c->num_p9s = n;
	for (i = 0; i < n; i++)
		libxl_device_p9_init(&c->p9s[i]);
	return 0;
}

int vxn_bitmap_fill(libxl_bitmap *b, int nbits, int nset)
{
	int i;

	b->size = (uint32_t)(nbits + 7) / 8;
	b->map = calloc(b->size, 1);
	if (!b->map)
		return ERROR_NOMEM;
	for (i = 0; i < nset && i < nbits; i++)
		b->map[i / 8] |= (uint8_t)(1u << (i % 8));
	return 0;
}
