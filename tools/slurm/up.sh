#!/usr/bin/env bash
# Bring up a throw-away single-node Slurm cluster for the live-SLURM test (tests/test_slurm.py).
#
# Debian 12 (slurm-wlm 22.05), run as root, no systemd needed. Safe to rerun: packages already
# installed are not reinstalled and daemons already running are left alone. Every daemon THIS
# script starts has its pid written to $RHLH_SLURM_STATE/<name>.pid, and tools/slurm/down.sh stops
# exactly those pids (never anything found by name). All daemons talk over 127.0.0.1.
#
# Environment (optional):
#   RHLH_SLURM_STATE=/run/rhlh-slurm   where the pids of the daemons started here are recorded
#   RHLH_SLURM_ACCOUNTING=1            1: MariaDB + slurmdbd, so sacct works (the plugin's default
#                                      status query); 0: none (use --slurm-status-command squeue)
#   RHLH_SLURM_CLUSTER=ci  RHLH_SLURM_PARTITION=debug  RHLH_SLURM_ACCOUNT=ci
#   RHLH_SLURM_NO_APT=0                1: fail instead of installing missing packages
# Prints KEY=VALUE lines (partition, account, ...) on stdout at the end; logs go to stderr.
set -euo pipefail

STATE="${RHLH_SLURM_STATE:-/run/rhlh-slurm}"
ACCOUNTING="${RHLH_SLURM_ACCOUNTING:-1}"
CLUSTER="${RHLH_SLURM_CLUSTER:-ci}"
PARTITION="${RHLH_SLURM_PARTITION:-debug}"
ACCOUNT="${RHLH_SLURM_ACCOUNT:-ci}"
NO_APT="${RHLH_SLURM_NO_APT:-0}"
# password of a database user that only exists on loopback inside a CI machine
DBPASS=rhlh-ci-only

say() { echo "[slurm-up $(date +%T)] $*" >&2; }
fail() {
	say "FAILED: $*"
	exit 1
}

[[ $(id -u) -eq 0 ]] || fail "run as root"
[[ $(uname -s) == Linux ]] || fail "Linux only"
start_s=$SECONDS

# --- 1. packages ---------------------------------------------------------------------------
want=(munge slurm-client slurmctld slurmd)
if [[ $ACCOUNTING == 1 ]]; then want+=(slurmdbd mariadb-server mariadb-client); fi
need=()
for pkg in "${want[@]}"; do
	if ! dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed; then
		need+=("$pkg")
	fi
done
if ((${#need[@]})); then
	[[ $NO_APT == 1 ]] && fail "packages missing and RHLH_SLURM_NO_APT=1: ${need[*]}"
	say "apt-get install ${need[*]}"
	# The packages' postinst would start the daemons through invoke-rc.d; forbid that so that
	# every daemon running afterwards is one this script started and recorded.
	made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 "$@"; }
	if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then apt_get update; fi
	ok=1
	# lists from an older point release 404 on superseded .debs: refresh once and retry
	apt_get install -y --no-install-recommends "${need[@]}" ||
		{ apt_get update && apt_get install -y --no-install-recommends "${need[@]}"; } || ok=0
	if [[ $made_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
	[[ $ok == 1 ]] || fail "apt-get install failed"
fi
apt_s=$SECONDS

# --- helpers --------------------------------------------------------------------------------
mkdir -p "$STATE"

# running PIDFILE NAME: the pid in PIDFILE is alive and its command name is NAME
running() {
	local pid
	[[ -s $1 ]] || return 1
	pid=$(tr -cd '0-9' <"$1")
	[[ -n $pid && -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]]
}

# retry SECONDS CMD...: run CMD every 0.25 s until it succeeds or SECONDS pass
retry() {
	local until=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < until)) || return 1
		sleep 0.25
	done
}

# launch NAME PIDFILE CMD...: start a daemon that writes PIDFILE, unless one is running already
launch() {
	local name=$1 pidfile=$2
	shift 2
	if running "$pidfile" "$name"; then
		say "$name is already running (pid $(tr -cd '0-9' <"$pidfile")): not ours, left alone"
		return 0
	fi
	rm -f "$pidfile"
	"$@"
	retry 20 running "$pidfile" "$name" || fail "$name did not start; see its log"
	cp "$pidfile" "$STATE/$name.pid"
	say "started $name, pid $(tr -cd '0-9' <"$pidfile")"
}

# --- 2. host, directories, munge -----------------------------------------------------------
NODE=$(hostname -s)
getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >>/etc/hosts
NCPU=$(nproc)
# leave 10 % of the memory to the OS so slurmd does not drain the node for low memory
MEM=$(awk '$1 == "MemTotal:" { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)

install -d -m 0755 -o munge -g munge /run/munge
install -d -m 0755 -o slurm -g slurm /run/slurm /var/log/slurm /var/lib/slurm \
	/var/lib/slurm/slurmctld
install -d -m 0755 /var/lib/slurm/slurmd
if [[ ! -s /etc/munge/munge.key ]]; then mungekey --create --keyfile=/etc/munge/munge.key; fi
chown munge:munge /etc/munge/munge.key
chmod 0600 /etc/munge/munge.key
launch munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
retry 10 bash -c 'munge -n | unmunge' || fail "munge cannot encode/decode a credential"

# --- 3. slurm.conf --------------------------------------------------------------------------
new_conf=$(mktemp)
{
	echo "# written by tools/slurm/up.sh (R-HLH workflow CI); single node, loopback only"
	echo "ClusterName=$CLUSTER"
	echo "SlurmctldHost=$NODE(127.0.0.1)"
	echo "SlurmUser=slurm"
	echo "SlurmdUser=root"
	echo "AuthType=auth/munge"
	echo "CryptoType=crypto/munge"
	echo "MpiDefault=none"
	echo "CommunicationParameters=NoInAddrAny"
	# no cgroups on the CI VM: plain /proc process tracking, no task containment
	echo "ProctrackType=proctrack/linuxproc"
	echo "TaskPlugin=task/none"
	echo "SwitchType=switch/none"
	echo "MailProg=/bin/true"
	echo "ReturnToService=2"
	echo "SlurmctldPidFile=/run/slurm/slurmctld.pid"
	echo "SlurmdPidFile=/run/slurm/slurmd.pid"
	echo "StateSaveLocation=/var/lib/slurm/slurmctld"
	echo "SlurmdSpoolDir=/var/lib/slurm/slurmd"
	echo "SlurmctldLogFile=/var/log/slurm/slurmctld.log"
	echo "SlurmdLogFile=/var/log/slurm/slurmd.log"
	echo "SchedulerType=sched/backfill"
	echo "SelectType=select/cons_tres"
	echo "SelectTypeParameters=CR_Core_Memory"
	# without a default, a job that asks no memory would take the whole node
	echo "DefMemPerCPU=1024"
	# finished jobs stay visible to squeue for 5 min: the plugin's squeue mode needs that
	echo "MinJobAge=300"
	echo "KillWait=5"
	echo "InactiveLimit=0"
	echo "SlurmctldTimeout=30"
	echo "SlurmdTimeout=30"
	if [[ $ACCOUNTING == 1 ]]; then
		echo "AccountingStorageType=accounting_storage/slurmdbd"
		echo "AccountingStorageHost=localhost"
		echo "AccountingStoragePort=6819"
		echo "AccountingStorageEnforce=associations"
		# keep the job comment (the executor plugin writes rule_<rule>) for sacct
		echo "AccountingStoreFlags=job_comment"
		echo "JobAcctGatherType=jobacct_gather/linux"
	else
		echo "AccountingStorageType=accounting_storage/none"
		echo "JobAcctGatherType=jobacct_gather/none"
	fi
	echo "JobCompType=jobcomp/none"
	echo "NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM State=UNKNOWN"
	echo "PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"
} >"$new_conf"
conf_changed=0
if ! cmp -s "$new_conf" /etc/slurm/slurm.conf; then
	install -m 0644 "$new_conf" /etc/slurm/slurm.conf
	conf_changed=1
fi
rm -f "$new_conf"

# --- 4. accounting: MariaDB + slurmdbd ------------------------------------------------------
if [[ $ACCOUNTING == 1 ]]; then
	if mariadb-admin ping >/dev/null 2>&1; then
		say "a MariaDB server already answers: using it, not ours"
	else
		install -d -m 0755 -o mysql -g root /run/mysqld
		if [[ ! -d /var/lib/mysql/mysql ]]; then
			mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
		fi
		# mariadbd does not daemonise itself; detach it from this shell's session
		launch mariadbd /run/mysqld/mysqld.pid setsid bash -c \
			'/usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
			--pid-file=/run/mysqld/mysqld.pid --innodb-buffer-pool-size=256M \
			--innodb-lock-wait-timeout=900 </dev/null >>/var/log/slurm/mariadbd.log 2>&1 &'
		retry 60 mariadb-admin ping || fail "MariaDB does not answer"
	fi
	mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
		CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
	new_dbd=$(mktemp)
	printf '%s\n' "AuthType=auth/munge" "DbdHost=localhost" "DbdAddr=127.0.0.1" "DbdPort=6819" \
		"SlurmUser=slurm" "LogFile=/var/log/slurm/slurmdbd.log" \
		"PidFile=/run/slurm/slurmdbd.pid" "StorageType=accounting_storage/mysql" \
		"StorageHost=localhost" "StorageLoc=slurm_acct_db" "StorageUser=slurm" \
		"StoragePass=$DBPASS" >"$new_dbd"
	cmp -s "$new_dbd" /etc/slurm/slurmdbd.conf ||
		install -m 0600 -o slurm -g slurm "$new_dbd" /etc/slurm/slurmdbd.conf
	rm -f "$new_dbd"
	launch slurmdbd /run/slurm/slurmdbd.pid /usr/sbin/slurmdbd
	retry 60 sacctmgr -n list cluster || fail "slurmdbd does not answer"
	# the plugin checks that the account exists and root belongs to it
	has() { [[ -n $(sacctmgr -n -P "$@" 2>/dev/null) ]]; }
	has list cluster "$CLUSTER" format=cluster || sacctmgr -i add cluster "$CLUSTER" >/dev/null
	has list account "$ACCOUNT" format=account ||
		sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=ci Organization=ci >/dev/null
	has list assoc cluster="$CLUSTER" account="$ACCOUNT" user=root format=user ||
		sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" \
			Cluster="$CLUSTER" >/dev/null
fi

# --- 5. slurmctld + slurmd ------------------------------------------------------------------
if [[ $conf_changed == 1 ]]; then
	# only the daemons recorded as ours are restarted to read the new configuration
	for d in slurmd slurmctld; do
		if running "$STATE/$d.pid" "$d"; then
			pid=$(tr -cd '0-9' <"$STATE/$d.pid")
			say "slurm.conf changed: restarting our $d (pid $pid)"
			kill -TERM "$pid"
			retry 20 bash -c "! kill -0 $pid" || fail "$d (pid $pid) did not stop"
			rm -f "$STATE/$d.pid"
		fi
	done
fi
launch slurmctld /run/slurm/slurmctld.pid /usr/sbin/slurmctld
retry 30 scontrol ping || fail "slurmctld does not answer"
launch slurmd /run/slurm/slurmd.pid /usr/sbin/slurmd

node_ok() {
	local st
	st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1)
	case $st in
	idle* | mixed* | alloc* | completing*) return 0 ;;
	down* | drain* | fail*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 ;;
	esac
	return 1
}
retry 30 node_ok || fail "node $NODE is not usable: $(sinfo -h -n "$NODE" -o %T)"

# a real job end to end before handing the cluster over
(cd /tmp && timeout 60 srun -p "$PARTITION" -N1 -n1 -t 1 true) || fail "srun smoke job failed"
say "ready in $((SECONDS - start_s)) s (apt $((apt_s - start_s)) s): node $NODE, $NCPU CPUs, $MEM MB"
echo "RHLH_SLURM_PARTITION=$PARTITION"
echo "RHLH_SLURM_ACCOUNT=$([[ $ACCOUNTING == 1 ]] && echo "$ACCOUNT")"
echo "RHLH_SLURM_ACCOUNTING=$ACCOUNTING"
echo "RHLH_SLURM_STATE=$STATE"
