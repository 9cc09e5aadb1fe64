# Sourced by the scripts that need root (dockerd, mounts, apt-get): as root they go on; as another
# user they run again through sudo, so that the README's commands work as written both on a fresh
# Debian as root (where sudo is not installed) and on a machine where you use sudo.
if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "$(basename "$0"): needs root: run it as root (sudo is not installed here)" >&2
        exit 2
    fi
    exec sudo -- "$0" "$@"
fi
