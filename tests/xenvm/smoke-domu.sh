#!/bin/sh
# Smoke test of the xenvm machine, run inside dom0:
#
#	go run ./tests/xenvm -- sh tests/xenvm/smoke-domu.sh
#
# It builds a tiny busybox initramfs for the cloud guest kernel
# (linux-image-cloud-amd64), then creates PV DomUs with xl: one that only
# prints a line on its console and powers off, one with a file-backed disk
# (blkback + loop + the block hotplug script) that reads a marker from
# /dev/xvda and writes one back, and a PVH one (tsc_mode="native").
# It prints the timings it sees and exits non-zero if anything is missing.
# Arguments pick the cases (pv, disk, pvh); the default is all of them.
set -eu

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
fail() {
	echo "SMOKE FAIL: $*"
	exit 1
}

results=${XENVM_RESULTS:-/tmp}
T=$(mktemp -d /tmp/smoke.XXXXXX)
gk=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)
[ -n "$gk" ] || fail "no /boot/vmlinuz-*-cloud-amd64 (install linux-image-cloud-amd64)"
gver=${gk#/boot/vmlinuz-}
echo "guest kernel: $gk"

# The guest initramfs: busybox, xen-blkfront and an /init that prints,
# checks the disk if it has one and powers off.
r=$T/root
mkdir -p "$r/bin" "$r/dev" "$r/proc" "$r/sys"
cp /bin/busybox "$r/bin/busybox"
ln -s busybox "$r/bin/sh"
cp "/lib/modules/$gver/kernel/drivers/block/xen-blkfront.ko" "$r/xen-blkfront.ko"
cat >"$r/init" <<'GUEST'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "SMOKE: hello from domU, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime)s"
if grep -q smoke.disk /proc/cmdline; then
	insmod /xen-blkfront.ko
	i=0
	while [ ! -b /dev/xvda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	echo "SMOKE: disk marker: $(head -c 16 /dev/xvda)"
	echo "written-by-domU" | dd of=/dev/xvda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null
	echo "SMOKE: disk written"
fi
poweroff -f
GUEST
chmod 755 "$r/init"
(cd "$r" && find . | cpio -o -H newc --quiet) >"$T/guest.cpio"
echo "guest initramfs: $(wc -c <"$T/guest.cpio") bytes"

# run NAME EXTRA-CONFIG...: create the domain, wait for it to go away and
# check its console (xenconsoled logs it to the results share).
run() {
	name=$1
	shift
	{
		echo "name = \"$name\""
		echo "kernel = \"$gk\""
		echo "ramdisk = \"$T/guest.cpio\""
		echo "memory = 256"
		echo "vcpus = 1"
		echo "on_poweroff = \"destroy\""
		echo "on_crash = \"destroy\""
		for l in "$@"; do echo "$l"; done
	} >"$T/$name.cfg"
	clog=$T/$name.console
	# xenconsoled's log of this guest (xenvm -guest-logs) is written as the
	# guest prints; xl console's output may come in one piece at the end.
	xlog=$results/xenconsoled/guest-$name.log
	rm -f "$xlog"
	t0=$(now)
	xl create "$T/$name.cfg" || fail "xl create $name"
	tcreate=$(since "$t0")
	domid=$(xl domid "$name")
	xl console "$name" >"$clog" 2>&1 </dev/null &
	cpid=$!
	while xenstore-exists "/local/domain/$domid" 2>/dev/null; do
		if [ -z "${tinit:-}" ] && cat "$clog" "$xlog" 2>/dev/null | grep -q "SMOKE: hello"; then
			tinit=$(since "$t0")
		fi
		if [ "$(since "$t0" | cut -d. -f1)" -ge 120 ]; then
			xl destroy "$name" || true
			fail "$name still running after 120s"
		fi
		sleep 0.05
	done
	tgone=$(since "$t0")
	wait "$cpid" || true
	cp "$clog" "$results/smoke-$name.console" 2>/dev/null || true
	grep "SMOKE" "$clog" || true
	grep -q "SMOKE: hello" "$clog" || fail "$name printed no hello (console in $results/smoke-$name.console)"
	[ -z "${tinit:-}" ] && tinit="<=$tgone"
	echo "TIMING $name: xl create returned ${tcreate}s, hello at ${tinit}s, domain gone at ${tgone}s"
	unset tinit
}

xl info | grep -E '^(xen_version|free_memory|virt_caps)'

# Cases to run: the arguments, or all of them.
cases=${*:-pv disk pvh}
for c in $cases; do
	case $c in
	pv)
		run smoke-pv 'type = "pv"' 'extra = "console=hvc0"'
		;;
	disk)
		img=/tmp/smoke-disk.img
		truncate -s 64M "$img"
		printf 'marker-from-dom0' | dd of="$img" conv=notrunc 2>/dev/null
		run smoke-disk 'type = "pv"' 'extra = "console=hvc0 smoke.disk"' \
			"disk = ['format=raw,vdev=xvda,access=rw,target=$img']"
		grep -q "SMOKE: disk marker: marker-from-dom0" "$T/smoke-disk.console" ||
			fail "the guest did not read the disk"
		got=$(dd if="$img" bs=512 skip=1 count=1 2>/dev/null | head -c 15)
		[ "$got" = "written-by-domU" ] || fail "the guest's write did not reach the image (got '$got')"
		echo "SMOKE: dom0 sees the guest's write"
		if losetup -a | grep -q "$img"; then
			fail "the loop device of $img is still attached"
		fi
		;;
	pvh)
		# SMOKE_PVH_EXTRA: more guest kernel command line.
		run smoke-pvh 'type = "pvh"' 'tsc_mode = "native"' \
			"extra = \"console=hvc0 ${SMOKE_PVH_EXTRA:-}\""
		;;
	*) fail "unknown case $c (pv, disk, pvh)" ;;
	esac
done

xl list
echo "SMOKE OK"
