#!/bin/sh
# Runs in the hardware rig's VM (tests/hardware/ble.test.ts): brings up a Bluetooth stack on the
# rig's real kernel - the bluetooth and hci_vhci modules, a system D-Bus, Debian's bluetoothd, and
# two virtual LE controllers on one virtual radio (btvirt, from bluez-test-tools) - then runs
# tests/hardware/ble-runner.mjs, which makes hci1 advertise as tags and the daemon scan on hci0.
#
# $VIGIA_BLE_MODULES: the rig kernel's module tree (the host's /lib/modules is for another kernel).
set -u
OUT=${VIGIA_RIG_OUT:?run in the hardware rig}
ABI=$(uname -r)
say() { echo "[vm $(cut -d' ' -f1 /proc/uptime)] ble: $*"; }
die() { say "FAILED: $*"; exit 1; }

# The kernel cannot load modules on demand here (its modprobe helper runs in the initramfs, not in
# this root), so everything is loaded up front: the crypto bluetooth's ECDH self-test and btvirt's
# AF_ALG use, then hci_vhci with its dependencies (bluetooth, ecdh_generic, ecc, rfkill).
[ -f "${VIGIA_BLE_MODULES:?}/modules.dep" ] || die "no module tree at $VIGIA_BLE_MODULES"
mkdir -p /tmp/modroot/lib/modules && ln -sfn "$VIGIA_BLE_MODULES" "/tmp/modroot/lib/modules/$ABI"
modprobe -d /tmp/modroot -a sha512_generic ctr drbg ecb cmac algif_hash algif_skcipher hci_vhci || die "modprobe hci_vhci"
[ -c /dev/vhci ] || die "no /dev/vhci"

PIDS=
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
# The system bus, and bluetoothd with its state on tmpfs (the root is read-only).
mkdir -p /run/dbus
dbus-daemon --system --fork --print-pid=3 3>/tmp/dbus.pid || die "dbus-daemon"
PIDS="$PIDS $(cat /tmp/dbus.pid)"
mount -t tmpfs -o mode=700 tmpfs /var/lib/bluetooth || die "tmpfs on /var/lib/bluetooth"
/usr/libexec/bluetooth/bluetoothd -n > "$OUT/bluetoothd.log" 2>&1 &
echo $! > /tmp/bluetoothd.pid
PIDS="$PIDS $!"
i=0
until busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.bluez 2>/dev/null | grep -q true; do
  i=$((i + 1)); [ $i -lt 150 ] || die "bluetoothd never got on the bus"; sleep 0.2
done
# Two LE-only controllers (hci0 scans for the daemon, hci1 advertises as the tags).
btvirt -L -l2 > "$OUT/btvirt.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until busctl get-property org.bluez /org/bluez/hci1 org.bluez.Adapter1 Powered 2>/dev/null | grep -q true; do
  i=$((i + 1)); [ $i -lt 150 ] || die "the virtual controllers did not come up"; sleep 0.2
done
say "bluetoothd and two virtual controllers up"
node tests/hardware/ble-runner.mjs
status=$?
cleanup
exit $status
