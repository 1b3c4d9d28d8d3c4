#!/usr/bin/env bash
# Label Studio server for the review bridge and its tests.
#
# Label Studio pins its own label-studio-sdk version, which differs from the one the toolkit
# uses, so it lives in its own virtual environment (.venv-labelstudio) next to .venv.
#
#   bash scripts/labelstudio.sh install          # idempotent
#   bash scripts/labelstudio.sh start DATA_DIR [PORT]   # loopback only, background
#   bash scripts/labelstudio.sh stop DATA_DIR
#
# `start` reads LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD / LABEL_STUDIO_USER_TOKEN from the
# environment to preset the first user; the token is never written by this script.
set -euo pipefail

LABEL_STUDIO_VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LABEL_STUDIO_VENV:-$ROOT/.venv-labelstudio}"
PYTHON="${PYTHON:-python3.11}"

install() {
    if [[ -x "$VENV/bin/label-studio" ]] \
        && "$VENV/bin/pip" show label-studio 2>/dev/null | grep -qx "Version: $LABEL_STUDIO_VERSION"; then
        echo "label-studio $LABEL_STUDIO_VERSION already installed in $VENV"
        return 0
    fi
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "label-studio==$LABEL_STUDIO_VERSION"
    echo "label-studio $LABEL_STUDIO_VERSION installed in $VENV"
}

# The settings a private, offline server needs: no version check, no analytics. Local-files serving
# stays off unless asked for (LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true, for `push --images
# local-files` on a shared filesystem): push uploads the images through the API by default.
export_server_env() {
    local data_dir="$1"
    export LABEL_STUDIO_BASE_DATA_DIR="$data_dir"
    export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="${LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED:-false}"
    export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="${LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT:-$data_dir/files}"
    export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true
    export LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true
    export COLLECT_ANALYTICS=false
    export LATEST_VERSION_CHECK=false
    export DJANGO_DB=sqlite
    mkdir -p "$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
}

start() {
    local data_dir="${1:?usage: start DATA_DIR [PORT]}" port="${2:-8080}"
    mkdir -p "$data_dir"
    export_server_env "$data_dir"
    nohup "$VENV/bin/label-studio" start --internal-host 127.0.0.1 --port "$port" --no-browser \
        --data-dir "$data_dir" >"$data_dir/server.log" 2>&1 &
    echo $! >"$data_dir/server.pid"
    for _ in $(seq 1 180); do
        if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
            echo "label-studio up on http://127.0.0.1:$port (pid $(cat "$data_dir/server.pid"))"
            return 0
        fi
        sleep 1
    done
    echo "label-studio did not answer /health; see $data_dir/server.log" >&2
    return 1
}

stop() {
    local data_dir="${1:?usage: stop DATA_DIR}"
    [[ -f "$data_dir/server.pid" ]] || { echo "no server.pid in $data_dir"; return 0; }
    kill "$(cat "$data_dir/server.pid")" 2>/dev/null || true
    rm -f "$data_dir/server.pid"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 install | start DATA_DIR [PORT] | stop DATA_DIR" >&2; exit 2 ;;
esac
