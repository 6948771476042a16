#!/usr/bin/env bash
# cluster.sh - start/stop a throw-away single-node Slurm cluster (munged +
# slurmctld + slurmd) that lives entirely under one directory. Intended for
# integration tests of `tpipe run --executor slurm`.
#
#   env=$(tests/slurm/cluster.sh start "$DIR") || exit 1   # `export ...` lines
#   eval "$env"        # (a bare eval "$(...)" would hide a failed start)
#   ...  sbatch / squeue / scancel against that cluster ...
#   tests/slurm/cluster.sh stop "$DIR"
#   tests/slurm/cluster.sh status "$DIR"            # exit 0 iff all 3 daemons run
#
# Requirements: root (SlurmUser/SlurmdUser are root, munged runs as root), and
# the Debian packages installed by:
#   apt-get update && apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
# Tested with Slurm 22.05.8 / munge 0.5.15 on Debian 12, no systemd, no cgroups.
#
# Only `export VAR=value` lines go to stdout; everything else goes to stderr.
#
# Environment overrides (all optional):
#   TPIPE_SLURMCTLD_PORT  slurmctld port (default: derived from DIR, 20000-29998)
#   TPIPE_SLURMD_PORT     slurmd port    (default: TPIPE_SLURMCTLD_PORT + 1)
#   TPIPE_SLURM_CPUS      CPUs of the node            (default 2)
#   TPIPE_SLURM_MEM_MB    RealMemory of the node (MB) (default min(4000, 90% of RAM))
#   TPIPE_SLURM_GPUS      number of fake GPUs         (default 2)
#   TPIPE_SLURM_MAX_ARRAY_SIZE  MaxArraySize: array indexes go up to one less
#                         (default Slurm's own, 1001)
#   TPIPE_SLURM_NODE      NodeName of the single node (default tpipenode)
#   TPIPE_SLURM_CGROUP    1 = enforce --mem with task/cgroup (cgroup v1 only);
#                         jobs over --mem then end as OUT_OF_MEMORY. Default 0:
#                         no cgroups, the jobacct poller kills them (FAILED).
#   TPIPE_SLURM_START_TIMEOUT  seconds to wait for the node to be idle (default 30)
set -u
# munged/slurmctld/slurmd live in /usr/sbin, which is not on every PATH.
PATH=$PATH:/usr/sbin:/sbin

APT_CMD='apt-get update && apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge'
# NodeName; slurmd is started with -N so it need not match the hostname.
NODE=${TPIPE_SLURM_NODE:-tpipenode}
PARTITION=debug

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $0 start DIR    start a cluster under DIR, print 'export VAR=value' lines
       $0 stop DIR     cancel jobs, stop the daemons started under DIR (idempotent)
       $0 status DIR   exit 0 if all daemons of DIR are running
EOF
    exit 64
}

check_binaries() {
    local b missing=""
    for b in munged slurmctld slurmd sbatch squeue scancel sinfo scontrol; do
        command -v "$b" >/dev/null 2>&1 || missing="$missing $b"
    done
    if [ -n "$missing" ]; then
        log "missing binaries:$missing; install them with:"
        printf '%s\n' "$APT_CMD" >&2
        exit 2
    fi
}

# --- process helpers ---------------------------------------------------------

# alive PID: true if PID exists and is not a zombie. Daemons that we double-fork
# are reparented to PID 1, which in some containers never reaps them, so a
# killed daemon may linger as a zombie; treat that as gone.
alive() {
    local pid=$1 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    # field 3 of /proc/PID/stat is the state; the comm field (2) may contain
    # spaces, so strip everything up to the last ')'.
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# ours PID NAME: PID is alive, runs binary NAME and its command line names
# this cluster's config (slurmd/slurmctld: -f DIR/slurm.conf) or key (munged).
# This guards against stale pid files and pid reuse: we never kill anything else.
ours() {
    local pid=$1 name=$2 cmd needle
    alive "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    case $name in
        munged) needle="--key-file=$DIR/munge/munge.key" ;;
        *) needle="-f $DIR/slurm.conf" ;;
    esac
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
    case "$cmd " in *"$needle "*) return 0 ;; esac
    return 1
}

pidfile_pid() { [ -r "$1" ] && tr -dc '0-9' <"$1"; }

# daemon_pid NAME: pid of our running daemon NAME, or empty
daemon_pid() {
    local name=$1 f pid
    case $name in
        munged)    f=$DIR/munge/munged.pid ;;
        slurmctld) f=$DIR/run/slurmctld.pid ;;
        slurmd)    f=$DIR/run/slurmd.pid ;;
    esac
    pid=$(pidfile_pid "$f")
    if [ -n "$pid" ] && ours "$pid" "$name"; then echo "$pid"; fi
}

# stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 i
    ours "$pid" "$name" || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 150); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "warning: $name (pid $pid) still alive"
    return 1
}

# --- ports -------------------------------------------------------------------

# port_in_use PORT: true if a TCP socket (any state) uses local PORT.
port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" 'NR>1 && substr($2, length($2)-4) == p {f=1} END {exit !f}'
}

choose_ports() {
    if [ -n "${TPIPE_SLURMCTLD_PORT:-}" ]; then
        CTLD_PORT=$TPIPE_SLURMCTLD_PORT
        SLURMD_PORT=${TPIPE_SLURMD_PORT:-$((CTLD_PORT + 1))}
        return
    fi
    # Derive a start point from DIR so that two clusters in different
    # directories normally get different ports, then probe for a free pair.
    local h i
    h=$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)
    CTLD_PORT=$((20000 + (h % 5000) * 2))
    for i in $(seq 1 200); do
        if ! port_in_use "$CTLD_PORT" && ! port_in_use $((CTLD_PORT + 1)); then
            break
        fi
        CTLD_PORT=$((CTLD_PORT + 2))
        [ "$CTLD_PORT" -lt 29999 ] || CTLD_PORT=20000
    done
    SLURMD_PORT=${TPIPE_SLURMD_PORT:-$((CTLD_PORT + 1))}
}

# --- start -------------------------------------------------------------------

dump_logs() {
    local f
    for f in "$DIR/munge/munged.log" "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        [ -r "$f" ] || continue
        echo "----- tail of $f -----" >&2
        tail -n 25 "$f" >&2
    done
}

write_config() {
    local cpus mem_total_mb mem gpus defmem i
    cpus=${TPIPE_SLURM_CPUS:-2}
    mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    mem=${TPIPE_SLURM_MEM_MB:-$((mem_total_mb * 9 / 10 < 4000 ? mem_total_mb * 9 / 10 : 4000))}
    gpus=${TPIPE_SLURM_GPUS:-2}
    # Jobs without --mem would otherwise get the whole node's memory under
    # CR_Core_Memory (and so run one at a time); give them an even share.
    defmem=$((mem / cpus))

    local gres_node="" gres_types="" mem_conf
    if [ "${TPIPE_SLURM_CGROUP:-0}" = 1 ]; then
        mem_conf="# Memory enforcement by the kernel: task/cgroup puts each step in a
# memory cgroup limited to --mem; an OOM kill there makes the job OUT_OF_MEMORY.
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1"
        cat >"$DIR/cgroup.conf" <<EOF
# Generated by tests/slurm/cluster.sh (TPIPE_SLURM_CGROUP=1). Only cgroup v1
# was tested; Slurm 22.05's cgroup/v2 wants systemd.
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
EOF
    else
        rm -f "$DIR/cgroup.conf"
        mem_conf="# Memory enforcement without cgroups: the jobacct poller samples each
# step's RSS every second and kills steps that exceed --mem (SIGKILL). Slurm
# then reports the job as FAILED (reason JobLaunchFailure, ExitCode 0:9), not
# OUT_OF_MEMORY; the job's stderr gets 'exceeded memory limit ... being killed'.
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill"
    fi
    if [ "$gpus" -gt 0 ]; then
        gres_types="GresTypes=gpu"
        gres_node="Gres=gpu:fake:$gpus"
    fi

    cat >"$DIR/slurm.conf" <<EOF
# Generated by tests/slurm/cluster.sh - single-node test cluster.
ClusterName=tpipe
# slurmctld only starts on a host named in SlurmctldHost; "localhost" is
# accepted on any machine, and the address pins it to loopback.
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root

# munged of this cluster listens on its own socket under DIR.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket

StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

# No cgroups needed: track processes via /proc (TaskPlugin: see below).
ProctrackType=proctrack/linuxproc
MpiDefault=none
LaunchType=launch/slurm
SwitchType=switch/none

# No slurmdbd: no sacct. Finished jobs are kept in slurmctld's memory for an
# hour (MinJobAge) so that 'squeue -t all' still reports their final state.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600

$mem_conf

# Fast reaction for tests: no grace time past the limit, short kill wait,
# schedule on every event without batching delay.
OverTimeLimit=0
KillWait=2
SchedulerType=sched/backfill
# (slurmctld checks time limits only every ~30 s, not configurable, and the
# smallest --time is 1 minute: a --time=1 job ends as TIMEOUT 60-90 s after
# it started whatever is set here; observed 72-84 s.)
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2,bf_interval=1
MessageTimeout=10
SlurmdTimeout=60
ReturnToService=2
InactiveLimit=0
Waittime=0

${TPIPE_SLURM_MAX_ARRAY_SIZE:+MaxArraySize=$TPIPE_SLURM_MAX_ARRAY_SIZE}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
# Trust the node definition below rather than the real hardware, so CPUs=2
# works on any machine.
SlurmdParameters=config_overrides
$gres_types

NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem $gres_node State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

    # Fake GPUs: character devices with the NVIDIA major (195). Nothing ever
    # opens them; Slurm only needs File= to exist to bind GPU indices to jobs,
    # which makes it set CUDA_VISIBLE_DEVICES.
    {
        echo "# Generated by tests/slurm/cluster.sh"
        echo "AutoDetect=off"
        for ((i = 0; i < gpus; i++)); do
            [ -e "$DIR/dev/fakegpu$i" ] || mknod "$DIR/dev/fakegpu$i" c 195 "$i" || die "mknod $DIR/dev/fakegpu$i failed"
            echo "NodeName=$NODE Name=gpu Type=fake File=$DIR/dev/fakegpu$i"
        done
    } >"$DIR/gres.conf"
}

# fail_start MSG: show the daemons' logs, stop whatever did start, exit 1.
fail_start() {
    dump_logs
    log "error: $1; stopping what was started"
    cmd_stop
    exit 1
}

start_munged() {
    local key=$DIR/munge/munge.key
    # A private key per cluster: no dependency on /etc/munge or a system munged.
    if [ ! -s "$key" ]; then
        (umask 077 && head -c 1024 /dev/urandom >"$key") || die "cannot create $key"
    fi
    chmod 400 "$key"
    # --force: munged insists that every parent directory of its socket is
    # world-executable; DIR (e.g. from mktemp -d) is 0700. As everything here
    # runs as root that check is moot, and --force downgrades it to a warning.
    munged --force \
        --key-file="$key" \
        --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munge/munged.pid" \
        --seed-file="$DIR/munge/munged.seed" \
        --log-file="$DIR/munge/munged.log" \
        </dev/null >>"$DIR/log/munged.out" 2>&1 || fail_start "munged failed to start"
}

cmd_start() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (SlurmUser/SlurmdUser are root)"
    mkdir -p "$DIR" || die "cannot create $DIR"
    DIR=$(cd "$DIR" && pwd -P)
    # slurm.conf cannot quote paths.
    case $DIR in *[[:space:]]* | *[\'\"\#]*) die "DIR must not contain whitespace, quotes or '#': $DIR" ;; esac
    local n
    for n in munged slurmctld slurmd; do
        [ -z "$(daemon_pid $n)" ] || die "$n of $DIR is already running; run '$0 stop $DIR' first"
    done
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/dev" "$DIR/munge" || die "mkdir under $DIR failed"
    chmod 700 "$DIR/munge"

    choose_ports
    write_config
    export SLURM_CONF=$DIR/slurm.conf

    local t0=$SECONDS
    start_munged
    # -c: clear saved state (fresh cluster every start; StateSaveLocation may be
    # left over from a previous start in the same DIR).
    slurmctld -c -f "$SLURM_CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 || fail_start "slurmctld failed to start"
    # -N: pick our NodeName regardless of hostname. -c: clean job state.
    slurmd -c -N "$NODE" -f "$SLURM_CONF" </dev/null >>"$DIR/log/slurmd.out" 2>&1 || fail_start "slurmd failed to start"

    # Wait for the node to register and become idle.
    local timeout=${TPIPE_SLURM_START_TIMEOUT:-30} state=""
    while [ $((SECONDS - t0)) -lt "$timeout" ]; do
        state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null)
        [ "$state" = idle ] && break
        for n in munged slurmctld slurmd; do
            [ -n "$(daemon_pid $n)" ] || fail_start "$n died during startup"
        done
        sleep 0.2
    done
    if [ "$state" != idle ]; then
        log "node $NODE not idle after ${timeout}s (state: '${state:-unknown}')"
        scontrol show node "$NODE" >&2 2>/dev/null
        fail_start "cluster did not come up"
    fi
    log "cluster up in $((SECONDS - t0))s: slurmctld port $CTLD_PORT, slurmd port $SLURMD_PORT, node $NODE, partition $PARTITION"
    printf 'export SLURM_CONF=%q\n' "$SLURM_CONF"
    printf 'export TPIPE_SLURM_DIR=%q\n' "$DIR"
}

# --- stop --------------------------------------------------------------------

# kill_tree PID: SIGKILL PID and all its descendants (children first
# collected, so that none is reparented away before we see it).
kill_tree() {
    local pid=$1 child
    kill -STOP "$pid" 2>/dev/null
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        kill_tree "$child"
    done
    kill -KILL "$pid" 2>/dev/null
}

# Kill slurmstepd processes that belong to this cluster (they inherit
# slurmd's log file, DIR/log/slurmd.log, as an open fd) and the job processes
# under them. Only needed if jobs could not be cancelled normally (e.g.
# slurmctld or slurmd had died).
kill_stray_stepds() {
    local p fd
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        alive "${p#/proc/}" || continue
        for fd in "$p"/fd/*; do
            case "$(readlink "$fd" 2>/dev/null)" in
                "$DIR/log/slurmd.log")
                    log "killing stray slurmstepd ${p#/proc/} and its job processes"
                    kill_tree "${p#/proc/}"
                    break ;;
            esac
        done
    done
}

# active_jobs: ids of all jobs not yet in a final state.
active_jobs() {
    squeue -h -t all -o '%A %T' 2>/dev/null |
        awk '$2 !~ /^(COMPLETED|CANCELLED|FAILED|TIMEOUT|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY)$/ {print $1}'
}

cmd_stop() {
    [ -d "$DIR" ] || { log "$DIR does not exist; nothing to stop"; return 0; }
    DIR=$(cd "$DIR" && pwd -P)
    export SLURM_CONF=$DIR/slurm.conf
    local ctld slurmd_pid munged_pid i
    ctld=$(daemon_pid slurmctld)
    slurmd_pid=$(daemon_pid slurmd)
    munged_pid=$(daemon_pid munged)

    if [ -n "$ctld" ] && [ -n "$slurmd_pid" ] && [ -n "$munged_pid" ]; then
        # Cancel every job that is still pending/running and give slurmd a
        # moment to reap them, so no job processes outlive the cluster.
        local jobs
        jobs=$(active_jobs)
        if [ -n "$jobs" ]; then
            log "cancelling leftover jobs: $(tr '\n' ' ' <<<"$jobs")"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null
            for i in $(seq 1 100); do
                [ -z "$(active_jobs)" ] && break
                sleep 0.1
            done
        fi
    fi
    # slurmd first (it stops its steps' tracking), then the controller, then munge.
    [ -n "$slurmd_pid" ] && stop_pid "$slurmd_pid" slurmd
    kill_stray_stepds
    [ -n "$ctld" ] && stop_pid "$ctld" slurmctld
    [ -n "$munged_pid" ] && stop_pid "$munged_pid" munged
    rm -f "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid" "$DIR/munge/munged.pid"
    # task/cgroup leaves empty /sys/fs/cgroup/<controller>/slurm_<node>/ trees
    # behind; remove them (rmdir only removes empty cgroups, so a cgroup still
    # in use by someone else is left alone).
    if [ -f "$DIR/cgroup.conf" ]; then
        local node
        node=$(sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$DIR/slurm.conf" 2>/dev/null)
        if [ -n "$node" ]; then
            find /sys/fs/cgroup/*/"slurm_$node" -depth -type d -exec rmdir {} + 2>/dev/null
        fi
    fi
    log "stopped cluster in $DIR"
    return 0
}

cmd_status() {
    DIR=$(cd "$DIR" 2>/dev/null && pwd -P) || return 1
    local n rc=0
    for n in munged slurmctld slurmd; do
        if [ -n "$(daemon_pid $n)" ]; then log "$n running"; else log "$n not running"; rc=1; fi
    done
    return $rc
}

[ $# -eq 2 ] || usage
DIR=$2
check_binaries
case $1 in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
