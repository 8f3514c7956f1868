#!/usr/bin/env bash
# Installs the Debian packages shardalg's build, tests and tools need. Idempotent: installs only
# what is missing, and runs apt-get only then. Needs root (or sudo) when something is missing.
set -euo pipefail

packages=(cmake ninja-build g++ libboost-dev libeigen3-dev doctest-dev libbenchmark-dev librapidcheck-dev
          libopenmpi-dev openmpi-bin libscalapack-openmpi-dev libcli11-dev nlohmann-json3-dev python3 pkg-config
          python3-dev pybind11-dev python3-numpy python3-pytest python3-hypothesis python3-torch
          clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
