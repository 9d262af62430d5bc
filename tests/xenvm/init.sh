#!/bin/busybox sh
# xenvm dom0 init (busybox sh). Embedded into the dom0 initramfs as /init by
# tests/xenvm.
#
# Stage 1 runs from the initramfs as PID 1: it loads the modules listed in
# /etc/xenvm/modules, mounts the host root (9p, read-only) with a tmpfs
# overlay on top, mounts the writable results share at the host's results
# path, and switch_roots into the overlay running this script again as
# stage 2.
#
# Stage 2 runs in the new root (still PID 1): it prepares /dev, /run, cgroup2
# and the Xen toolstack (xenstored, xen-init-dom0, xenconsoled), writes the
# ready marker, runs the command script written by the host, writes its exit
# status and powers the machine off.
#
# Control files live in $XENVM_RESULTS/.xenvm (written by the host):
#   config   shell variables: XENVM_RESULTS, XENVM_TMPFS, XENVM_GUEST_LOGS,
#            XENVM_ROOT_CACHE
#   cmd.sh   the command, run by /bin/sh with an empty environment
# and (written here):
#   ready    "ok" or a description of what failed while setting up
#   status   the command's exit status
# The command's stdout+stderr go to $XENVM_RESULTS/command.log.

log() { echo "xenvm-init: $*"; }

die() {
	echo "xenvm-init: FATAL: $*"
	if [ -n "$CTL" ] && [ -d "$CTL" ]; then
		echo "$*" >"$CTL/fatal"
	fi
	sync
	poweroff -f
	sleep 60
}

# load_modules FILE: insmod every module listed in FILE ("name path" lines,
# dependencies first), retrying the ones that fail until all load.
load_modules() {
	pending=$(cat "$1")
	round=1
	while [ -n "$pending" ]; do
		left=""
		set -- $pending
		while [ $# -ge 2 ]; do
			name=$1 m=$2
			shift 2
			[ -d "${SYSMODULE:-/sys/module}/$name" ] && continue
			if [ "$round" -lt 6 ]; then
				insmod "$m" 2>/dev/null || left="$left $name $m"
			else
				insmod "$m" || log "module $m did not load"
			fi
		done
		[ "$round" -ge 6 ] && break
		round=$((round + 1))
		pending=$left
	done
}

stage1() {
	/bin/busybox --install -s /bin
	export PATH=/bin
	mkdir -p /proc /sys /dev
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	log "stage 1: $(cut -d' ' -f1 /proc/uptime)s since dom0 kernel start"

	load_modules /etc/xenvm/modules

	o9p=trans=virtio,version=9p2000.L,msize=262144
	mkdir -p /lower /upper /newroot /xenvm-out
	mount -t 9p -o "$o9p" xenvmout /xenvm-out ||
		die "cannot mount the results share (9p tag xenvmout)"
	CTL=/xenvm-out/.xenvm
	[ -f "$CTL/config" ] || die "no $CTL/config on the results share"
	. "$CTL/config"
	mount -t 9p -o "$o9p,ro${XENVM_ROOT_CACHE:+,cache=$XENVM_ROOT_CACHE}" hostroot /lower ||
		die "cannot mount the host root (9p tag hostroot)"

	mount -t tmpfs -o mode=0755 tmpfs /upper
	mkdir -p /upper/upper /upper/work
	mount -t overlay overlay \
		-o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work /newroot ||
		die "cannot mount the overlay root"
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run || die "tmpfs /run"
	for d in $XENVM_TMPFS; do
		mkdir -p "/newroot$d"
		mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "/newroot$d" || die "tmpfs $d"
	done
	mkdir -p "/newroot$XENVM_RESULTS" || die "mkdir $XENVM_RESULTS"
	mount --move /xenvm-out "/newroot$XENVM_RESULTS" || die "cannot move the results share"
	CTL=/newroot$XENVM_RESULTS/.xenvm

	mkdir -p /newroot/run/xenvm
	cp /bin/busybox /init /newroot/run/xenvm/ || die "cannot copy busybox"
	cp "$CTL/config" "$CTL/cmd.sh" /newroot/run/xenvm/ || die "cannot copy the command"
	# Make the layers inspectable from the new root.
	mkdir -p /newroot/run/xenvm/lower /newroot/run/xenvm/upper
	mount --move /lower /newroot/run/xenvm/lower
	mount --move /upper /newroot/run/xenvm/upper
	mount --move /proc /newroot/proc
	mount --move /sys /newroot/sys
	mount --move /dev /newroot/dev
	exec switch_root /newroot /run/xenvm/busybox sh /run/xenvm/init stage2
	die "switch_root failed"
}

# step DESCRIPTION CMD...: run a setup step, remember failures for the
# ready marker.
step() {
	what=$1
	shift
	if ! "$@"; then
		log "setup step failed: $what"
		problems="$problems${problems:+; }$what"
	fi
}

# wait_file FILE TENTHS: wait until FILE exists.
wait_file() {
	i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ "$i" -gt "$2" ] && return 1
		sleep 0.1
	done
}

start_toolstack() {
	read -r major </sys/hypervisor/version/major || return 1
	read -r minor </sys/hypervisor/version/minor || return 1
	xbin=/usr/lib/xen-$major.$minor/bin
	[ -x "$xbin/xenstored" ] || {
		log "no $xbin/xenstored: is the xen-utils package for Xen $major.$minor installed?"
		return 1
	}
	step "mount xenfs" mount -t xenfs xenfs /proc/xen
	rm -f /run/xen/xenstored.pid
	step "xenstored" "$xbin/xenstored" --pid-file /run/xen/xenstored.pid
	step "xenstored pid file" wait_file /run/xen/xenstored.pid 300
	step "xen-init-dom0" "$xbin/xen-init-dom0"
	if [ "$XENVM_GUEST_LOGS" = 1 ]; then
		mkdir -p "$XENVM_RESULTS/xenconsoled"
		step "xenconsoled" "$xbin/xenconsoled" --pid-file=/run/xen/xenconsoled.pid \
			--log=guest --log-dir="$XENVM_RESULTS/xenconsoled"
	else
		step "xenconsoled" "$xbin/xenconsoled" --pid-file=/run/xen/xenconsoled.pid
	fi
	step "xenconsoled pid file" wait_file /run/xen/xenconsoled.pid 300
}

stage2() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export HOME=/root
	. /run/xenvm/config
	CTL=$XENVM_RESULTS/.xenvm
	problems=""
	bb=/run/xenvm/busybox

	mkdir -p /dev/pts /dev/shm /dev/mqueue
	step "devpts" $bb mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
	[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
	step "tmpfs /dev/shm" $bb mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
	$bb mount -t mqueue mqueue /dev/mqueue 2>/dev/null
	# The Xen hotplug scripts need /dev/stdin and /dev/fd.
	ln -sfn /proc/self/fd /dev/fd
	ln -sf /proc/self/fd/0 /dev/stdin
	ln -sf /proc/self/fd/1 /dev/stdout
	ln -sf /proc/self/fd/2 /dev/stderr
	step "cgroup2" $bb mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
	$bb mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	mkdir -p /run/lock /run/xen /run/xenstored /var/lib/xen /var/log/xen /var/lib/xenstored
	chmod 1777 /run/lock
	$bb hostname xenvm
	step "lo up" $bb ip link set lo up

	step "xen toolstack" start_toolstack
	log "stage 2: toolstack up at $(cut -d' ' -f1 /proc/uptime)s${problems:+ with problems: $problems}"
	echo "${problems:-ok}" >"$CTL/ready.tmp" && mv "$CTL/ready.tmp" "$CTL/ready"

	cd / || true
	env -i /bin/sh /run/xenvm/cmd.sh >"$XENVM_RESULTS/command.log" 2>&1 </dev/null
	status=$?
	log "command exited with status $status at $(cut -d' ' -f1 /proc/uptime)s"
	echo "$status" >"$CTL/status.tmp" && mv "$CTL/status.tmp" "$CTL/status"
	sync
	poweroff -f
	sleep 60
}

case "$1" in
stage2) stage2 ;;
lib) ;; # sourced by the unit tests
*) stage1 ;;
esac
