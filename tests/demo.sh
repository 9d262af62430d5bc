#!/bin/sh
# The demo `make demo` runs inside dom0 of the Xen-in-QEMU machine (on a
# real Xen host, run it directly): a busybox container on a real Xen guest,
# with `vxn state` going created -> running -> stopped.
set -eu
vxn=${1:?usage: demo.sh /path/to/vxn}
initramfs=$(dirname "$vxn")/initramfs.img
work=$(mktemp -d /tmp/vxn-demo.XXXXXX)
mkdir -p "$work/bundle/rootfs/bin" "$work/etc"
cp /bin/busybox "$work/bundle/rootfs/bin/"
for a in sh echo sleep uname hostname cat; do ln -s busybox "$work/bundle/rootfs/bin/$a"; done
printf '{"initramfs": "%s", "memoryMiB": 128}\n' "$initramfs" > "$work/etc/config.json"
v() { "$vxn" --root "$work/state" --config "$work/etc/config.json" "$@"; }
cd "$work/bundle"
v spec
# Not a terminal, and a command that shows it runs in its own kernel.
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's|"sh"|"sh", "-c", "echo hello from a Xen guest: $(uname -sr) on $(hostname); sleep 3"|' config.json
state() { v state demo | sed -n 's/.*"status": "\(.*\)".*/\1/p'; }
echo "== vxn create demo"; v create --bundle . demo
echo "state: $(state)"
echo "== vxn start demo"; v start demo
echo "state: $(state)"
while [ "$(state)" != stopped ]; do sleep 1; done
echo "state: $(state)"
echo "== vxn delete demo"; v delete demo
xl list
rm -rf "$work"
