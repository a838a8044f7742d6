#!/bin/sh
# build.sh: the two commands of README's Quick start, and what CI builds on.
#   ./build.sh run [ECHOD OPTIONS]   install what is missing, build, run echod
#   ./build.sh test                  install what is missing, build, run all tests
#   ./build.sh build                 install what is missing, build
#   ./build.sh deps [PACKAGE ...]    install what is missing, and PACKAGEs
# BUILD_DIR (default build), ECHOD_PRESET (a CMakePresets.json configure
# preset, e.g. asan) and CI=true (warnings become errors) tune it.
set -eu

cd "$(dirname "$0")"

# Debian packages to build, run and test echod.
PACKAGES="build-essential cmake pkg-config libevent-dev libssl-dev openssl
  check python3 netcat-openbsd ncat socat util-linux procps strace systemd
  iproute2 clang libclang-rt-14-dev valgrind mandoc prometheus haproxy nginx
  libnginx-mod-stream python3-yaml gnuplot-nox"

# Installs the Debian packages of $PACKAGES and of the arguments that are
# missing.
deps() {
	missing=""
	for p in $PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "build.sh: installing$missing" >&2
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=sudo
	else
		SUDO=
	fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends $missing >/dev/null
}

build() {
	deps
	if [ -n "${ECHOD_PRESET:-}" ]; then
		cmake --preset "$ECHOD_PRESET" >/dev/null
		cmake --build --preset "$ECHOD_PRESET" -j"$(nproc)"
		return
	fi
	werror=OFF
	[ "${CI:-}" = true ] && werror=ON
	cmake -S . -B "${BUILD_DIR:-build}" -DECHOD_WERROR=$werror >/dev/null
	cmake --build "${BUILD_DIR:-build}" -j"$(nproc)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
run)
	build
	exec "${BUILD_DIR:-build}/server/echod" "$@"
	;;
test)
	build
	if [ -n "${ECHOD_PRESET:-}" ]; then
		exec ctest --preset "$ECHOD_PRESET" "$@"
	fi
	exec ctest --test-dir "${BUILD_DIR:-build}" -j2 --output-on-failure "$@"
	;;
build)
	build
	;;
deps)
	deps "$@"
	;;
*)
	echo "usage: ./build.sh run [ECHOD OPTIONS] | test [CTEST OPTIONS] |" \
		"build | deps [PACKAGE ...]" >&2
	exit 64
	;;
esac
