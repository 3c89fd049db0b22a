#!/usr/bin/env bash
# Builds a local Redis image, conveyor-redis:<version>, from this machine's redis-server,
# without a registry: nothing is pulled (FROM scratch, via `docker import`).
#
# Usage: testdata/redis-image/build.sh [--force]
# Prints the image tag on stdout (progress goes to stderr). Running it again is cheap: an
# image that already exists is kept unless --force is given.
#
# Needs: docker (engine answering), redis-server on PATH (Debian: apt-get install
# redis-server), ldd, tar. Use the tag with the test harness:
#   export CONVEYOR_REDIS_IMAGE=$(testdata/redis-image/build.sh)
set -euo pipefail

force=false
case "${1:-}" in
--force) force=true ;;
"") ;;
*) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

server=$(command -v redis-server) || { echo "build.sh: redis-server not on PATH (apt-get install redis-server)" >&2; exit 1; }
version=$("$server" --version | sed -n 's/.* v=\([^ ]*\) .*/\1/p')
[ -n "$version" ] || { echo "build.sh: cannot read the version of $server" >&2; exit 1; }
tag="conveyor-redis:$version"

if ! $force && docker image inspect "$tag" >/dev/null 2>&1; then
	echo "build.sh: $tag already exists (use --force to rebuild)" >&2
	echo "$tag"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/bin" "$root/data" "$root/tmp"

# Debian's redis-server is a symlink to redis-check-rdb: the binary picks its mode from
# argv[0], so the real file must be named redis-server.
real=$(readlink -f "$server")
cp "$real" "$root/usr/bin/redis-server"

# Every shared library it links, at the path the loader will look for it, plus the loader.
libs=$(ldd "$real" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
# (ldd lists the loader too; name the x86-64 one explicitly in case it is missed.)
[ -e /lib64/ld-linux-x86-64.so.2 ] && libs="$libs /lib64/ld-linux-x86-64.so.2"
for lib in $libs; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
chmod 1777 "$root/tmp"

# Everything owned by root, except /data, which belongs to the redis user (uid 999) the
# container runs as.
tar --numeric-owner --owner=0 --group=0 -C "$root" --exclude=./data -cf "$work/image.tar" .
tar --numeric-owner --owner=999 --group=999 -C "$root" -rf "$work/image.tar" ./data

echo "build.sh: importing $tag ($(du -sh "$root" | cut -f1))" >&2
docker import \
	-c 'ENTRYPOINT ["/usr/bin/redis-server"]' \
	-c 'CMD ["--protected-mode","no","--save",""]' \
	-c 'EXPOSE 6379' \
	-c 'WORKDIR /data' \
	-c 'USER 999:999' \
	"$work/image.tar" "$tag" >/dev/null

# Smoke test: the image must start and print the line the testcontainers redis module
# waits for.
cid=$(docker run -d "$tag")
ok=false
for _ in $(seq 1 50); do
	if docker logs "$cid" 2>&1 | grep -q 'Ready to accept connections'; then ok=true; break; fi
	sleep 0.1
done
logs=$(docker logs "$cid" 2>&1 || true)
docker rm -f "$cid" >/dev/null
if ! $ok; then
	echo "build.sh: $tag did not become ready; its log:" >&2
	echo "$logs" >&2
	exit 1
fi
echo "$tag"
