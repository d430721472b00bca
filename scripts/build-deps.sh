#!/usr/bin/env bash
# What building the SFU's C fast path (meetings/rtc/_fastpath.c) needs: a C compiler and the
# running Python's headers. Installs them with apt-get where that can run (root) and they are
# missing; otherwise says so. Without them the install still works, on the Python path.
set -euo pipefail
python=${PYTHON:-python3}
include=$("$python" -c 'import sysconfig; print(sysconfig.get_path("include"))')
need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
if [ ! -e "$include/Python.h" ]; then
  version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  need+=("python${version}-dev")
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "note: could not install ${need[*]}; the SFU will forward on its Python path" >&2
else
  echo "note: install ${need[*]} to build the SFU's C fast path (it works without, slower)" >&2
fi
