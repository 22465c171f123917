# Shared by the http_*.sh scripts that measure a list of `--server NAME=COMMAND`: parses
# their options. Sourced, not run. The script sets its defaults, `die` and OPTIONS (the
# long options it takes besides --server and --help, by name) first; `--conns 100` then
# sets CONNS=100. `--help` prints the script's header comment.

parse_server_args() {
    NAMES=()
    CMDS=()
    while (($#)); do
        case $1 in
            --server)
                [[ ${2:-} == *=* ]] || die "--server wants NAME=COMMAND"
                NAMES+=("${2%%=*}")
                CMDS+=("${2#*=}")
                shift ;;
            -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            --*)
                local name=${1#--}
                [[ " $OPTIONS " == *" $name "* ]] || die "unknown option $1 (see --help)"
                [[ -n ${2:-} ]] || die "$1 wants a value"
                printf -v "${name^^}" '%s' "$2"
                shift ;;
            *) die "unknown argument $1 (see --help)" ;;
        esac
        shift
    done
    ((${#NAMES[@]})) || die "give at least one --server NAME=COMMAND"
}
