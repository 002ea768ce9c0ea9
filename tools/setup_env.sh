#!/usr/bin/env bash
# Customs Lab set-up, from nothing to a built workspace. Called by `make setup` (and so by `make run`
# and `make test`); safe to run again: every step checks whether it is already done.
#
#   tools/setup_env.sh system   Debian packages the build needs (apt-get; root or sudo)
#   tools/setup_env.sh deps     .venv with the pinned wheels, CMake path fix-up, pip-only tf2_msgs
#   tools/setup_env.sh test-system  Debian PostgreSQL server binaries for `make test`
#   tools/setup_env.sh build    colcon build of ros2_ws (customs_interfaces + customs_lab)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CUSTOMS_LAB_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
say() { printf '[setup] %s\n' "$*"; }

system_packages() {
  # What the build needs from the OS: a Python 3.11 with venv and headers, CMake and a C/C++
  # compiler for the rosidl-generated code. Only what is missing is installed.
  local need=()
  command -v cmake >/dev/null || need+=(cmake)
  command -v g++ >/dev/null || need+=(g++)
  command -v make >/dev/null || need+=(make)
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  [ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] \
    || need+=(python3-dev)
  if [ ${#need[@]} -eq 0 ]; then return 0; fi
  say "installing Debian packages: ${need[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
}

test_packages() {
  # The clearance tests start a throwaway PostgreSQL server from Debian's binaries (initdb,
  # pg_ctl), unless CUSTOMS_LAB_TEST_POSTGRES_URL names a server to use instead.
  if [ -n "${CUSTOMS_LAB_TEST_POSTGRES_URL:-}" ] || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    return 0
  fi
  say "installing Debian package postgresql (server binaries for the clearance tests)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
}

deps() {
  local version
  version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$version" != "3.11" ]; then
    echo "error: the ROS 2 Jazzy wheels exist for CPython 3.11 only; $PYTHON is $version." >&2
    echo "       Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  say "installing pinned Python packages (requirements.txt, constraints.txt)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$ROOT/requirements.txt" -c "$ROOT/constraints.txt" 2> >(grep -v 'is ignored' >&2)
  "$VENV/bin/python" "$ROOT/tools/fix_wheel_cmake_paths.py" "$VENV"
  tf2_msgs
}

tf2_msgs() {
  # tf2_msgs is missing from the wheels: build the wire-identical package from tools/tf2_msgs into
  # the venv prefix only (never into ros2_ws, where it would shadow a real ROS 2 install).
  local stamp="$VENV/share/tf2_msgs/.customs_lab_stamp"
  local digest
  digest=$(cat "$ROOT"/tools/tf2_msgs/package.xml "$ROOT"/tools/tf2_msgs/CMakeLists.txt \
           "$ROOT"/tools/tf2_msgs/*/* | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then return 0; fi
  say "building the pip-only tf2_msgs into $VENV"
  local build="$ROOT/build/tf2_msgs"
  mkdir -p "$build"
  export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
  PATH="$VENV/bin:$PATH" cmake -S "$ROOT/tools/tf2_msgs" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$build.log" 2>&1 \
    && PATH="$VENV/bin:$PATH" cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 \
    && cmake --install "$build" >>"$build.log" 2>&1 \
    || { echo "error: building tf2_msgs failed; see $build.log" >&2; tail -n 30 "$build.log" >&2; exit 1; }
  echo "$digest" > "$stamp"
}

build() {
  say "colcon build in ros2_ws"
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  cd "$ROOT/ros2_ws"
  colcon build --symlink-install --event-handlers console_direct- console_cohesion- \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
    > "$ROOT/ros2_ws/build.log" 2>&1 \
    || { echo "error: colcon build failed; see ros2_ws/build.log" >&2; tail -n 40 "$ROOT/ros2_ws/build.log" >&2; exit 1; }
}

case "${1:-all}" in
  system) system_packages ;;
  test-system) test_packages ;;
  deps) deps ;;
  build) build ;;
  all) system_packages; deps; build ;;
  *) echo "usage: $0 [system|test-system|deps|build|all]" >&2; exit 2 ;;
esac
