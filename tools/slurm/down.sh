#!/usr/bin/env bash
# Stop the daemons that tools/slurm/up.sh started, and nothing else.
#
# Reads $RHLH_SLURM_STATE/<name>.pid (written by up.sh only for daemons it launched), checks that
# the pid still belongs to a process of that name (a recycled pid is left alone), sends SIGTERM,
# waits up to 30 s, and only then SIGKILLs that one pid. Packages, configuration, the munge key,
# the database and Slurm's job state are kept, so up.sh brings the cluster back in seconds.
#   RHLH_SLURM_STATE=/run/rhlh-slurm   same as for up.sh
#   RHLH_SLURM_WIPE=1                  also delete Slurm's saved job state and its logs
set -uo pipefail

STATE="${RHLH_SLURM_STATE:-/run/rhlh-slurm}"
say() { echo "[slurm-down $(date +%T)] $*" >&2; }

[[ $(id -u) -eq 0 ]] || {
	say "run as root"
	exit 1
}
if [[ ! -d $STATE ]]; then
	say "no $STATE: this script started nothing, so it stops nothing"
	exit 0
fi

status=0
# reverse of the start order: slurmd, the controller, accounting, the database, then munge
for name in slurmd slurmctld slurmdbd mariadbd munged; do
	record="$STATE/$name.pid"
	[[ -e $record ]] || continue
	pid=$(tr -cd '0-9' <"$record")
	if [[ -z $pid || ! -r /proc/$pid/comm || $(<"/proc/$pid/comm") != "$name" ]]; then
		say "$name: pid '${pid}' has exited or now belongs to another program; not touched"
		rm -f "$record"
		continue
	fi
	say "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 120); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.25
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name (pid $pid) still alive after 30 s: SIGKILL to that pid"
		kill -KILL "$pid" 2>/dev/null
		sleep 1
		if kill -0 "$pid" 2>/dev/null; then
			say "$name (pid $pid) survived SIGKILL"
			status=1
			continue
		fi
	fi
	rm -f "$record"
done

if [[ ${RHLH_SLURM_WIPE:-0} == 1 ]]; then
	say "wiping Slurm job state and logs"
	rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/* /var/log/slurm/*
fi
rmdir "$STATE" 2>/dev/null || true
exit "$status"
