# Host setup for ./x, sourced by it (POSIX sh). Installs what is missing, idempotently:
#   - Debian's Rust toolchain with std sources (rustc-web, cargo-web, rust-web-src) and lld: the
#     rustup toolchains here lack rust-src, so they cannot build core/alloc for bare-metal targets;
#   - QEMU 10 (qemu-system-x86, qemu-system-arm) from bookworm-backports: bookworm's own QEMU 7.2
#     conflicts with the preinstalled qemu-utils 10.
# Every step prints what it does; a failed step prints the command that failed and stops ./x.

setup_say() { printf '==> %s\n' "$*" >&2; }

setup_run() {
    printf '    + %s\n' "$*" >&2
    if ! "$@"; then
        status=$?
        printf './x: setup failed: `%s` exited with status %s\n' "$*" "$status" >&2
        exit 1
    fi
}

# Runs a command as root (directly when we are root, else through sudo).
setup_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        setup_run "$@"
    elif command -v sudo >/dev/null 2>&1; then
        setup_run sudo "$@"
    else
        printf './x: installing packages needs root (or sudo); run as root once: %s\n' "$*" >&2
        exit 1
    fi
}

# True when `$1 --version` reports QEMU major version 10 or newer.
setup_qemu_is_recent() {
    command -v "$1" >/dev/null 2>&1 || return 1
    major=$("$1" --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p' | head -n 1)
    [ -n "$major" ] && [ "$major" -ge 10 ]
}

# Writes a deb822 source for bookworm-backports that reuses the URIs and Signed-By of the stanza
# of /etc/apt/sources.list.d/debian.sources serving `bookworm` (so no mirror is named here).
setup_add_backports() {
    list=/etc/apt/sources.list.d/libos-backports.sources
    [ -f "$list" ] && return 0
    grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
    src=/etc/apt/sources.list.d/debian.sources
    if [ ! -f "$src" ]; then
        printf './x: cannot add bookworm-backports: %s is missing\n' "$src" >&2
        exit 1
    fi
    stanza=$(awk 'BEGIN { RS = ""; FS = "\n" }
        { for (i = 1; i <= NF; i++) if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) { print; exit } }' "$src")
    uris=$(printf '%s\n' "$stanza" | sed -n 's/^URIs:[ \t]*//p' | head -n 1)
    keyring=$(printf '%s\n' "$stanza" | sed -n 's/^Signed-By:[ \t]*//p' | head -n 1)
    if [ -z "$uris" ]; then
        printf './x: cannot add bookworm-backports: no bookworm stanza with URIs in %s\n' "$src" >&2
        exit 1
    fi
    setup_say "adding bookworm-backports to apt (for QEMU 10)"
    tmp=$(mktemp)
    {
        echo "Types: deb"
        echo "URIs: $uris"
        echo "Suites: bookworm-backports"
        echo "Components: main"
        [ -n "$keyring" ] && echo "Signed-By: $keyring"
    } >"$tmp"
    setup_as_root install -m 0644 "$tmp" "$list"
    rm -f "$tmp"
}

libos_setup() {
    packages=""
    backports=""
    { [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustdoc ]; } ||
        packages="$packages rustc-web cargo-web"
    [ -d /usr/lib/rustlib/src/rust/library/core ] || packages="$packages rust-web-src"
    command -v ld.lld >/dev/null 2>&1 || packages="$packages lld"
    # qemu-system-x86 also brings qboot.rom (through qemu-system-data).
    { setup_qemu_is_recent qemu-system-x86_64 && [ -f /usr/share/qemu/qboot.rom ]; } ||
        backports="$backports qemu-system-x86"
    setup_qemu_is_recent qemu-system-aarch64 || backports="$backports qemu-system-arm"
    [ -z "$packages$backports" ] && return 0

    setup_say "first use: installing host tools:$packages$backports"
    export DEBIAN_FRONTEND=noninteractive
    [ -n "$backports" ] && setup_add_backports
    setup_as_root apt-get update -q
    [ -n "$packages" ] && setup_as_root apt-get install -y -q --no-install-recommends $packages
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    [ -n "$backports" ] && setup_as_root apt-get install -y -q --no-install-recommends \
        -t bookworm-backports $backports
    setup_say "host tools installed"
}
