#!/bin/sh
#
# @@NAME@@ @@VERSION@@: self-extracting installer.
#
#   sh <this file> [--force] [--dry-run] [--source TEXT]
#   sh @@PREFIX@@/lib/installer.sh --rollback [--force] [--dry-run]
#
# A POSIX sh header and a gzipped tar payload, made by the image pipeline
# (zone_image::tool) from tools/zone-image/src/tool/installer.sh. It checks
# the payload and the machine before it changes anything, installs by
# rename with a trap that restores the previous install, archives that
# install for rollback, and repairs whatever a killed run left behind.
# @@ROOT_ENV@@ prefixes every absolute path (scratch installs, tests).

set -u
umask 022
# Globs sort bytewise, so timestamped archive names sort by time.
LC_ALL=C
export LC_ALL

NAME='@@NAME@@'
VERSION='@@VERSION@@'
PAYLOAD_OFFSET=@@PAYLOAD_OFFSET@@
PAYLOAD_SIZE=@@PAYLOAD_SIZE@@
PAYLOAD_SHA256='@@PAYLOAD_SHA256@@'
UNPACKED_SIZE=@@UNPACKED_SIZE@@
HEADER_LINES=@@HEADER_LINES@@

ROOT="${@@ROOT_ENV@@:-}"
LIVE="$ROOT@@PREFIX@@"
NEW="$LIVE.new"
OLD="$LIVE.old"
BIN='@@BIN@@'
LINK="$ROOT@@LINK@@"
LINK_TARGET='@@LINK_TARGET@@'
ARCHIVES="$ROOT/var/$NAME/self-updates"
LOGS="$ROOT/var/log/$NAME/self-updates"
LOCK="$ARCHIVES/.install.lock"
KEEP=5
# Test hook: wait at this step so a test can kill the install there.
PAUSE_AT="${@@PAUSE_ENV@@:-}"

SELF=$0
case $SELF in
/*) ;;
*) SELF="$(pwd)/$SELF" ;;
esac
MODE=install
FORCE=false
DRY_RUN=false
SOURCE=$SELF
LOG=
TS=
HAVE_LOCK=false

say() {
    printf '%s\n' "$*"
    if [ -n "$LOG" ]; then
        printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$LOG"
    fi
}

die() {
    printf '%s installer: error: %s\n' "$NAME" "$*" >&2
    if [ -n "$LOG" ]; then
        printf '%s error: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$LOG"
    fi
    if $HAVE_LOCK; then
        rm -rf "$NEW" "$LOCK"
        HAVE_LOCK=false
    fi
    exit 1
}

usage() {
    printf 'usage: sh %s [--force] [--dry-run] [--source TEXT]\n' "$0"
    printf '       sh %s --rollback [--force] [--dry-run]\n' "$0"
}

pause_point() {
    if [ "$PAUSE_AT" = "$1" ]; then
        say "paused at $1"
        while :; do sleep 1; done
    fi
}

payload() {
    tail -c +"$PAYLOAD_OFFSET" "$SELF"
}

sha256_stdin() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum | cut -d' ' -f1
    elif command -v digest >/dev/null 2>&1; then
        digest -a sha256
    else
        return 1
    fi
}

check_payload() {
    if [ "$PAYLOAD_SIZE" -le 0 ]; then
        die "$SELF carries no payload"
    fi
    size=$(payload | wc -c | tr -d ' ')
    if [ "$size" != "$PAYLOAD_SIZE" ]; then
        die "payload check: $SELF has a $size-byte payload, expected $PAYLOAD_SIZE (truncated or damaged; nothing was changed)"
    fi
    sum=$(payload | sha256_stdin) || die "payload check: no sha256sum or digest command"
    if [ "$sum" != "$PAYLOAD_SHA256" ]; then
        die "payload check: $SELF payload sha256 is $sum, expected $PAYLOAD_SHA256 (damaged; nothing was changed)"
    fi
}

check_root() {
    case $(id) in
    'uid=0('*) ;;
    *) die "root check: run as root (this is $(id | cut -d' ' -f1))" ;;
    esac
}

check_headnode() {
    if [ -n "$ROOT" ]; then
        say "headnode check skipped: installing under @@ROOT_ENV@@=$ROOT"
        return 0
    fi
    if $FORCE; then
        say "headnode check skipped: --force"
        return 0
    fi
    zn=$(zonename 2>/dev/null) ||
        die "headnode check: no zonename command, this is not a SmartOS global zone (--force installs anyway)"
    if [ "$zn" != global ]; then
        die "headnode check: zonename is '$zn', expected 'global' (--force installs anyway)"
    fi
    if ! sysinfo 2>/dev/null | grep '"headnode": *"true"' >/dev/null; then
        die "headnode check: sysinfo's Boot Parameters.headnode is not \"true\", this is not a headnode (--force installs anyway)"
    fi
}

existing_dir() {
    d=$1
    while [ ! -d "$d" ]; do
        d=$(dirname "$d")
    done
    printf '%s\n' "$d"
}

# check_space BYTES DIR WHAT: DIR's filesystem must have BYTES free.
check_space() {
    need_kb=$((($1 + 1023) / 1024))
    at=$(existing_dir "$2")
    avail_kb=$({ df -Pk "$at" 2>/dev/null || df -k "$at"; } | awk 'NR == 2 { print $4 }')
    case $avail_kb in
    '' | *[!0-9]*) die "free space check: cannot read the free space of $at from df" ;;
    esac
    if [ "$avail_kb" -lt "$need_kb" ]; then
        die "free space check: $at has $avail_kb KiB free, $3 needs $need_kb KiB; nothing was changed"
    fi
}

version_of() {
    if [ -f "$1/etc/version" ]; then
        sed -n 's/^version=//p' "$1/etc/version" | head -n 1
    fi
}

link() {
    mkdir -p "$(dirname "$LINK")" || die "cannot create the directory of $LINK"
    tmp="$LINK.tmp.$$"
    rm -f "$tmp"
    if ! { ln -s "$LINK_TARGET" "$tmp" && mv -f "$tmp" "$LINK"; }; then
        rm -f "$tmp"
        die "cannot link $LINK -> $LINK_TARGET"
    fi
    say "linked $LINK -> $LINK_TARGET"
}

take_lock() {
    mkdir -p "$ARCHIVES" || die "cannot create $ARCHIVES"
    if ! mkdir "$LOCK" 2>/dev/null; then
        pid=$(cat "$LOCK/pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            die "another install (pid $pid) holds $LOCK"
        fi
        rm -rf "$LOCK"
        mkdir "$LOCK" 2>/dev/null || die "cannot take the lock $LOCK"
        say "took over the lock of a killed install (pid ${pid:-unknown})"
    fi
    HAVE_LOCK=true
    echo $$ >"$LOCK/pid"
}

# Lock, open the log, and repair whatever an interrupted run left behind.
start() {
    take_lock
    TS=$(date -u +%Y%m%dT%H%M%SZ)
    base=$TS
    n=0
    while [ -e "$ARCHIVES/$TS" ] || [ -e "$LOGS/$TS" ]; do
        n=$((n + 1))
        TS="$base-$n"
    done
    mkdir -p "$LOGS/$TS" || die "cannot create $LOGS/$TS"
    LOG="$LOGS/$TS/install.log"
    say "$NAME installer $VERSION ($MODE) started as pid $$ from $SELF"
    say "preflight passed: payload, root, headnode, free space"
    if [ ! -d "$LIVE" ] && [ -d "$OLD" ]; then
        say "repair: an install was killed between its renames; restoring $OLD"
        mv "$OLD" "$LIVE" || die "repair: cannot move $OLD back to $LIVE"
    fi
    if [ -d "$OLD" ]; then
        say "repair: removing $OLD left by a killed install"
        rm -rf "$OLD" || die "repair: cannot remove $OLD"
    fi
    if [ -e "$NEW" ]; then
        say "repair: removing the partial $NEW"
        rm -rf "$NEW" || die "repair: cannot remove $NEW"
    fi
    for p in "$ARCHIVES"/*.partial; do
        [ -e "$p" ] || continue
        say "repair: removing the partial archive $p"
        rm -rf "$p" || die "repair: cannot remove $p"
    done
    if [ -x "$LIVE/$BIN" ]; then
        link
    fi
}

verify() {
    want=$(version_of "$1")
    [ -n "$want" ] || die "verify: $1/etc/version names no version"
    got=$("$1/$BIN" --version 2>&1) || die "verify: $1/$BIN --version failed: $got"
    case $got in
    *"$want"*) ;;
    *) die "verify: $1/$BIN --version says '$got', expected version $want" ;;
    esac
    say "verified: $got"
}

mark_installed() {
    v="$1/etc/version"
    if ! {
        {
            grep -v -e '^installed_at=' -e '^source=' "$v"
            printf 'installed_at=%s\nsource=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SOURCE"
        } >"$v.tmp" && mv "$v.tmp" "$v"
    }; then
        die "cannot write $v"
    fi
}

# The archives' names (timestamps), oldest first.
archives() {
    for a in "$ARCHIVES"/[0-9]*T*Z*; do
        [ -d "$a" ] || continue
        case ${a##*/} in
        *.partial) ;;
        *) printf '%s\n' "${a##*/}" ;;
        esac
    done
}

prune() {
    # Timestamps: no spaces to split on.
    # shellcheck disable=SC2046
    set -- $(archives)
    while [ $# -gt $KEEP ]; do
        say "pruning the archive $ARCHIVES/$1"
        rm -rf "${ARCHIVES:?}/$1"
        shift
    done
}

archive_live() {
    [ -d "$LIVE" ] || return 0
    dest="$ARCHIVES/$TS"
    say "archiving $LIVE ($(version_of "$LIVE")) to $dest/$NAME.old"
    if ! { mkdir -p "$dest.partial" && cp -Rp "$LIVE" "$dest.partial/$NAME.old" &&
        mv "$dest.partial" "$dest"; }; then
        rm -rf "$dest.partial"
        die "cannot archive $LIVE to $dest"
    fi
    prune
}

# Runs from the trap only.
# shellcheck disable=SC2317
restore() {
    trap - EXIT INT TERM HUP
    say "install failed; restoring the previous $NAME"
    if [ -d "$OLD" ]; then
        if [ -d "$LIVE" ]; then
            rm -rf "$LIVE.failed"
            mv "$LIVE" "$LIVE.failed"
        fi
        mv "$OLD" "$LIVE"
    fi
    rm -rf "$NEW" "$LIVE.failed"
    if [ -x "$LIVE/$BIN" ]; then
        link
    fi
    rm -rf "$LOCK"
    exit 1
}

# $NEW holds a complete install: check it, archive the live one, swap.
swap_in() {
    verify "$NEW"
    mark_installed "$NEW"
    pause_point verified
    archive_live
    pause_point archived
    HAVE_LOCK=false
    trap restore EXIT INT TERM HUP
    if [ -d "$LIVE" ]; then
        mv "$LIVE" "$OLD" || exit 1
        say "moved $LIVE to $OLD"
    fi
    pause_point moved-live
    mv "$NEW" "$LIVE" || exit 1
    say "moved $NEW to $LIVE"
    pause_point moved-new
    link
    pause_point linked
    trap - EXIT INT TERM HUP
    rm -rf "$OLD"
    rm -rf "$LOCK"
    say "installed $NAME $(version_of "$LIVE") in $LIVE"
    say "log: $LOG"
}

do_install() {
    check_payload
    check_root
    check_headnode
    check_space $((UNPACKED_SIZE * 2)) "$(dirname "$LIVE")" "installing $NAME (twice its unpacked size)"
    check_space "$UNPACKED_SIZE" "$ARCHIVES" "archiving the current $NAME"
    if $DRY_RUN; then
        say "dry run: would install $NAME $VERSION into $LIVE (now: $(version_of "$LIVE")), archive the current install under $ARCHIVES and link $LINK -> $LINK_TARGET"
        return 0
    fi
    start
    say "unpacking $VERSION into $NEW"
    mkdir -p "$NEW" || die "cannot create $NEW"
    payload | gzip -dc | (cd "$NEW" && tar -xf -) || die "cannot unpack the payload into $NEW"
    [ -x "$NEW/$BIN" ] || die "the payload has no executable $BIN"
    if ! { mkdir -p "$NEW/lib" && head -n "$HEADER_LINES" "$SELF" >"$NEW/lib/installer.sh"; }; then
        die "cannot keep the installer in $NEW/lib"
    fi
    pause_point unpacked
    swap_in
}

do_rollback() {
    check_root
    check_headnode
    installed=$(version_of "$LIVE")
    from=
    # The newest archive that is not what is installed.
    for a in $(archives); do
        v=$(version_of "$ARCHIVES/$a/$NAME.old")
        if [ -n "$v" ] && [ "$v" != "$installed" ]; then
            from="$ARCHIVES/$a/$NAME.old"
        fi
    done
    [ -n "$from" ] || die "rollback: no archived $NAME other than the installed ${installed:-none} under $ARCHIVES"
    kb=$(du -sk "$from" | cut -f1)
    check_space $((kb * 2048)) "$(dirname "$LIVE")" "rolling back $NAME (twice its size)"
    if $DRY_RUN; then
        say "dry run: would roll $LIVE back from ${installed:-none} to $(version_of "$from") ($from)"
        return 0
    fi
    start
    SOURCE="rollback from $from"
    say "copying $from to $NEW"
    cp -Rp "$from" "$NEW" || die "cannot copy $from to $NEW"
    pause_point unpacked
    swap_in
}

while [ $# -gt 0 ]; do
    case $1 in
    --force) FORCE=true ;;
    -n | --dry-run) DRY_RUN=true ;;
    --rollback) MODE=rollback ;;
    --source)
        [ $# -ge 2 ] || die "--source needs a value"
        SOURCE=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (expected --force, --dry-run, --rollback or --source TEXT)" ;;
    esac
    shift
done

if [ "$MODE" = rollback ]; then
    do_rollback
else
    do_install
fi
exit $?
