#!/usr/bin/env bash
# Sysctls and limits for many connections and high throughput with percore.
#
#   linux-setup/tune.sh              dry run (the default): each setting, its current value,
#                                    the proposed one and why; changes nothing
#   linux-setup/tune.sh --apply      apply them with `sysctl -w` (root); the previous values are
#                                    saved to a file whose name it prints
#   linux-setup/tune.sh --undo FILE  restore the values saved in FILE
#
# It only ever raises a limit, never lowers one. `sysctl -w` lasts until reboot; to keep the
# values, copy the printed lines into /etc/sysctl.d/90-percore.conf. Limits (open files, locked
# memory) belong to the process that starts percore, so they are printed with where to set them.
set -euo pipefail

# name|proposed|kind|why. kind: min (a number to raise to), eq (a mode to set), range (a
# "low high" pair to widen), max3 (a "min default max" triple whose max is raised).
SETTINGS=(
    "net.core.somaxconn|4096|min|percore listens with a backlog of 4096 and the kernel cuts it to this; connect bursts beyond it wait or fail"
    "net.ipv4.tcp_max_syn_backlog|4096|min|half-open connections beyond it fall back to SYN cookies or are dropped"
    "net.core.netdev_max_backlog|16384|min|packets queued per CPU before the stack takes them; bursts at high packet rates are dropped beyond it"
    "net.ipv4.ip_local_port_range|1024 65535|range|ephemeral ports for outbound connections per destination (load generators, proxies, percore's connect)"
    "net.ipv4.tcp_tw_reuse|1|eq|lets outbound connections reuse ports in TIME_WAIT, so a load generator does not run out of ports"
    "fs.nr_open|1048576|min|the ceiling for RLIMIT_NOFILE: one descriptor per connection"
    "fs.file-max|2097152|min|descriptors open on the whole system"
    "net.ipv4.tcp_rmem|4096 131072 16777216|max3|the largest receive window TCP autotuning may grow to (throughput on long, fast paths)"
    "net.ipv4.tcp_wmem|4096 16384 16777216|max3|the largest send buffer TCP autotuning may grow to"
)

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

read_sysctl() {
    local path="/proc/sys/${1//.//}"
    [ -r "$path" ] || return 1
    # Multi-value sysctls are tab-separated; normalise to single spaces.
    tr -s '[:space:]' ' ' <"$path" | sed 's/ $//'
}

# Prints the value to set, or nothing when the current one is already as good.
proposal() {
    local current="$1" proposed="$2" kind="$3"
    case "$kind" in
    min)
        [ "$current" -lt "$proposed" ] && echo "$proposed"
        ;;
    eq)
        [ "$current" != "$proposed" ] && echo "$proposed"
        ;;
    range)
        local clo chi plo phi
        read -r clo chi <<<"$current"
        read -r plo phi <<<"$proposed"
        [ $((chi - clo)) -lt $((phi - plo)) ] && echo "$proposed"
        ;;
    max3)
        local cmin cdef cmax pmax
        read -r cmin cdef cmax <<<"$current"
        read -r _ _ pmax <<<"$proposed"
        [ "$cmax" -lt "$pmax" ] && echo "$cmin $cdef $pmax"
        ;;
    esac
    return 0
}

show_limits() {
    echo
    echo "limits (per process: set them where percore is started):"
    printf '  %-14s soft %s, hard %s; proposed 1048576 (one descriptor per connection)\n' \
        "RLIMIT_NOFILE" "$(ulimit -Sn)" "$(ulimit -Hn)"
    printf '  %-14s soft %s KiB; only kernels < 5.12 charge io_uring rings to it\n' \
        "RLIMIT_MEMLOCK" "$(ulimit -Sl)"
    echo "  systemd unit:  LimitNOFILE=1048576  LimitMEMLOCK=infinity"
    echo "  docker run:    --ulimit nofile=1048576:1048576 --ulimit memlock=-1"
    echo "  shell (root):  ulimit -Hn 1048576; ulimit -n 1048576"
    echo "  login users:   '* - nofile 1048576' in /etc/security/limits.d/90-percore.conf"
}

plan() {
    # Fills CHANGES with "name|value" lines and prints the table.
    CHANGES=()
    local entry name proposed kind why current new
    printf '%-30s %-44s %s\n' "sysctl" "current -> proposed" "why"
    for entry in "${SETTINGS[@]}"; do
        IFS='|' read -r name proposed kind why <<<"$entry"
        if ! current=$(read_sysctl "$name"); then
            printf '%-30s %-44s %s\n' "$name" "absent (skipped)" "$why"
            continue
        fi
        new=$(proposal "$current" "$proposed" "$kind")
        if [ -n "$new" ]; then
            CHANGES+=("$name|$new")
            printf '%-30s %-44s %s\n' "$name" "$current -> $new" "$why"
        else
            printf '%-30s %-44s %s\n' "$name" "$current (keep)" "$why"
        fi
    done
}

apply() {
    if [ "$(id -u)" != 0 ]; then
        echo "tune.sh --apply: sysctl -w needs root (run it with sudo)" >&2
        exit 1
    fi
    plan
    if [ ${#CHANGES[@]} -eq 0 ]; then
        echo
        echo "nothing to change"
        show_limits
        return
    fi
    local backup entry name value
    backup="/var/tmp/percore-sysctl-backup.$(date +%Y%m%d-%H%M%S).conf"
    {
        echo "# previous values, saved by linux-setup/tune.sh --apply on $(date)"
        for entry in "${CHANGES[@]}"; do
            name="${entry%%|*}"
            echo "$name = $(read_sysctl "$name")"
        done
    } >"$backup"
    echo
    for entry in "${CHANGES[@]}"; do
        name="${entry%%|*}"
        value="${entry#*|}"
        sysctl -w "$name=$value"
    done
    echo
    echo "previous values saved in $backup"
    echo "undo:   linux-setup/tune.sh --undo $backup"
    echo "keep across reboots: put these lines in /etc/sysctl.d/90-percore.conf"
    for entry in "${CHANGES[@]}"; do
        echo "  ${entry%%|*} = ${entry#*|}"
    done
    show_limits
}

undo() {
    local file="$1" line name value
    [ -r "$file" ] || {
        echo "tune.sh --undo: cannot read $file" >&2
        exit 1
    }
    if [ "$(id -u)" != 0 ]; then
        echo "tune.sh --undo: sysctl -w needs root (run it with sudo)" >&2
        exit 1
    fi
    while IFS= read -r line; do
        case "$line" in '#'* | '') continue ;; esac
        name="${line%% = *}"
        value="${line#* = }"
        sysctl -w "$name=$value"
    done <"$file"
    echo "restored the values saved in $file"
}

case "${1:-}" in
"")
    echo "percore tune: dry run, nothing is changed (--apply changes it, as root)"
    echo
    plan
    show_limits
    ;;
--apply) apply ;;
--undo)
    [ $# -eq 2 ] || {
        usage >&2
        exit 2
    }
    undo "$2"
    ;;
-h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
