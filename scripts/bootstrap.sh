# shellcheck shell=bash
# Shared set-up for ./serve and ./run-tests; sourced from the project root, not run on its own.
#
#   ensure_venv [UV_SYNC_ARGS...]
#
# 1. Picks the interpreter: $PYTHON if set, else python3.11, else python3; it must be 3.11 or 3.12
#    (pyproject.toml: requires-python = ">=3.11,<3.13").
# 2. Makes .tools/, a virtual environment holding only uv (pinned below), with that venv's pip.
# 3. Runs `uv sync --frozen`: creates or updates .venv/ exactly as uv.lock says, never the lock.
# 4. Compiles the environment's and the package's modules to bytecode (kept until they change).

UV_VERSION="0.13.9"

bootstrap_die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# Prints the absolute path of a usable interpreter, or exits with a reason.
pick_python() {
    local candidate="${PYTHON:-}"
    if [[ -z $candidate ]]; then
        if command -v python3.11 >/dev/null 2>&1; then
            candidate=python3.11
        elif command -v python3 >/dev/null 2>&1; then
            candidate=python3
        else
            bootstrap_die "no python3.11 or python3 on PATH; install Python 3.11 or set PYTHON."
        fi
    fi
    command -v "$candidate" >/dev/null 2>&1 || bootstrap_die "PYTHON=$candidate was not found."
    "$candidate" - <<'PY' || bootstrap_die "$candidate is not Python 3.11 or 3.12; set PYTHON."
import sys
sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)
PY
    # The real interpreter behind a pyenv shim or a symlink.
    "$candidate" -c 'import sys; print(sys.executable)'
}

ensure_venv() {
    local python
    python="$(pick_python)"
    if [[ "$(.tools/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
        echo "${0##*/}: installing uv $UV_VERSION into .tools/" >&2
        rm -rf .tools
        "$python" -m venv .tools
        .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    fi
    # The environment is always ./.venv (the scripts run .venv/bin/...), whatever the caller's
    # UV_PROJECT_ENVIRONMENT says; uv never downloads a Python of its own here.
    UV_PROJECT_ENVIRONMENT="$PWD/.venv" .tools/bin/uv sync --frozen --python "$python" \
        --no-python-downloads "$@"
    # Bytecode for the environment and the package, written here once (about 20 s the first
    # time, 3 s to check after): where PYTHONDONTWRITEBYTECODE is set, every process would
    # otherwise compile each module it imports at each start (`reunite keys create`: 2.0 s
    # instead of 0.85 s). Only a speed-up: a file that does not compile is compiled, and
    # reported, when imported.
    .venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages reunite \
        >/dev/null 2>&1 || true
}

# Debian's chromium and a CJK font for the browser tests (never a browser download). Installs
# them with apt-get when missing and running as root; otherwise says why the tests will skip.
ensure_browser() {
    local packages=()
    [[ -x /usr/bin/chromium ]] || packages+=(chromium)
    if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
        packages+=(fonts-wqy-microhei)
    fi
    [[ ${#packages[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "${0##*/}: installing ${packages[*]} with apt-get (browser tests)" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "${0##*/}: ${packages[*]} missing and not root: browser tests will be skipped" >&2
    fi
}

# A private PostgreSQL server for the tests, on loopback (Debian's postgresql package, installed
# with apt-get when missing and root). Exports REUNITE_TEST_POSTGRES_URL; tests that run against
# PostgreSQL create a database of their own on it. Without it they skip, saying why.
ensure_postgres() {
    local port=${REUNITE_TEST_POSTGRES_PORT:-55432}
    local dir=/tmp/reunite-test-postgres-$port
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [[ -z $bin ]]; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "${0##*/}: installing postgresql with apt-get (PostgreSQL tests)" >&2
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
            bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
        else
            echo "${0##*/}: postgresql missing and not root: PostgreSQL tests will be skipped" >&2
            return 0
        fi
    fi
    local as=()
    [[ $(id -u) -eq 0 ]] && as=(runuser -u postgres --)
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        if [[ ! -s $dir/PG_VERSION ]]; then
            rm -rf "$dir" && mkdir -p "$dir"
            [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
            "${as[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
        fi
        "${as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -o \
            "-h 127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=300" start >/dev/null
    fi
    export REUNITE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}
