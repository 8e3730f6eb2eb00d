#!/usr/bin/env bash
# functions/lambda-cpp/rootfs.sh BINARY OUT.tar: a root file system holding BINARY as
# /var/runtime/bootstrap plus every shared library it loads (as ldd resolves them on
# this host, the dynamic loader included), for `docker import`.
set -euo pipefail
bin=${1:?usage: rootfs.sh BINARY OUT.tar}
out=${2:?usage: rootfs.sh BINARY OUT.tar}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/runtime" "$root/var/task" "$root/tmp" "$root/etc"
cp "$bin" "$root/var/runtime/bootstrap"
# ldd lines: "libx.so => /path (addr)" or "/lib64/ld-linux-x86-64.so.2 (addr)".
ldd "$bin" | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}' | while read -r lib; do
  [[ -n $lib && -e $lib ]] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The loader is also looked up through /lib64 on x86-64.
if [[ -e /lib64/ld-linux-x86-64.so.2 && ! -e $root/lib64/ld-linux-x86-64.so.2 ]]; then
  mkdir -p "$root/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
fi
echo "root:x:0:0:root:/:/bin/false" >"$root/etc/passwd"
tar -C "$root" -cf "$out" .
