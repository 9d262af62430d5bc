#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xtl.h"
#include "_cgo_export.h"

struct vxn_xtl_logger {
	xentoollog_logger vtable; /* first: libxl casts to this */
	uintptr_t handle;
	xentoollog_level min;
	pid_t pid; /* the process that may call into Go */
};

/* in_forked_child is true in a child that libxl forked and that has not
 * exec'd yet: Go cannot run there, so messages go straight to stderr. */
static int in_forked_child(const struct vxn_xtl_logger *l)
{
	return getpid() != l->pid;
}

static void vxn_vmessage(xentoollog_logger *lg, xentoollog_level level,
			 int errnoval, const char *context,
			 const char *format, va_list al)
{
	struct vxn_xtl_logger *l = (struct vxn_xtl_logger *)lg;
	char buf[1024], *msg = buf, *out;
	size_t len, cap;
	va_list ap;
	int n;

	if (level < l->min)
		return;

	va_copy(ap, al);
	n = vsnprintf(buf, sizeof buf, format, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf) {
		msg = malloc((size_t)n + 1);
		if (!msg)
			return;
		va_copy(ap, al);
		vsnprintf(msg, (size_t)n + 1, format, ap);
		va_end(ap);
	}

	/* "context: message: strerror" */
	cap = strlen(msg) + (context ? strlen(context) + 2 : 0) + 128;
	out = malloc(cap);
	if (out) {
		len = 0;
		if (context)
			len += snprintf(out + len, cap - len, "%s: ", context);
		len += snprintf(out + len, cap - len, "%s", msg);
		if (errnoval >= 0)
			snprintf(out + len, cap - len, ": %s", strerror(errnoval));
		if (in_forked_child(l)) {
			/* best effort; nothing else can be done here */
			ssize_t w = write(2, out, strlen(out));
			w = write(2, "\n", 1);
			(void)w;
		} else {
			vxnXTLMessage(l->handle, (int)level, out);
		}
		free(out);
	}
	if (msg != buf)
		free(msg);
}

static void vxn_destroy(xentoollog_logger *lg)
{
	free(lg);
}

xentoollog_logger *vxn_xtl_new(uintptr_t handle, xentoollog_level min)
{
	struct vxn_xtl_logger *l = calloc(1, sizeof *l);

	if (!l)
		return NULL;
	l->vtable.vmessage = vxn_vmessage;
	l->vtable.progress = NULL;
	l->vtable.destroy = vxn_destroy;
	l->handle = handle;
	l->min = min;
	l->pid = getpid();
	return &l->vtable;
}

void vxn_xtl_log(xentoollog_logger *lg, xentoollog_level level, const char *msg)
{
	xtl_log(lg, level, -1, NULL, "%s", msg);
}
