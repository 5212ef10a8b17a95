#!/usr/bin/env bash
# Builds the busybox image: Debian's busybox-static as /bin/busybox, a symbolic link to it
# for each applet where `busybox --list-full` puts it.
#   scripts/mkbusybox.sh OUT.cpio WORKDIR
set -euo pipefail
out=$1
dir=$2
bb=/bin/busybox
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin" "$dir/etc" "$dir/root" "$dir/mnt"
cp "$bb" "$dir/bin/busybox"
"$bb" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] || [ -e "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$dir/etc/passwd"
printf 'root:x:0:\n' > "$dir/etc/group"
python3 "$(dirname "$0")/mkcpio.py" "$out" "$dir"
