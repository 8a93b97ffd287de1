#!/bin/sh
# Boots the default guest: Debian's current cloud kernel and a busybox initramfs (fetched with
# apt-get download and cached under target/fixtures/ on first use), under the JIT, to an
# interactive busybox shell on this terminal. `exit` or `poweroff -f` in the shell, or Ctrl-A x,
# ends it. ACCEL=kvm uses the KVM engine instead (it needs VMX/SVM behind /dev/kvm); extra
# arguments go to tandem (e.g. `-accel tcg,stats=on`).
set -eu
cd "$(dirname "$0")"
cargo build --release --quiet
paths=$(bash fixtures/fetch.sh)
vmlinuz=$(printf '%s\n' "$paths" | tail -n 3 | sed -n 1p)
initrd=$(printf '%s\n' "$paths" | tail -n 3 | sed -n 2p)
exec target/release/tandem -accel "${ACCEL:-tcg}" -m 512 -nographic \
    -kernel "$vmlinuz" -initrd "$initrd" -append "console=ttyS0 tandem.shell=1" "$@"
