#!/bin/bash
# Runs INSIDE a booted Debian 12 (systemd-nspawn --boot, started by
# scripts/system-test.sh as the unit mailgate-system-test.service): the
# package's life as an admin sees it. Writes one "ok ..." or "FAIL ..." line
# per check to /root/system-test.result, then "DONE pass" or "DONE fail",
# and powers the container off.
#   $1: the .deb to install   $2: the same package with a higher version
set -u
result=/root/system-test.result
: > "$result"
echo started > /root/system-test.started
failed=0
ok()   { echo "ok   $*" | tee -a "$result"; }
fail() { echo "FAIL $*" | tee -a "$result"; failed=1; }
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >/tmp/check.out 2>&1; then ok "$what"; else fail "$what: $(tail -5 /tmp/check.out | tr '\n' ' ')"; fi
}
finish() {
  if [ $failed -eq 0 ]; then echo "DONE pass" >> "$result"; else echo "DONE fail" >> "$result"; fi
  journalctl -u mailgate --no-pager -o short-iso > /root/mailgate.journal 2>&1 || true
  systemctl --no-block poweroff
  exit 0
}
wait_for() {  # wait_for SECONDS COMMAND...: bounded poll
  local t=$(( $1 * 5 )); shift
  for ((i = 0; i < t; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
# Everything but what the kernel, systemd, dpkg and apt keep for themselves:
# what a purge must restore exactly.
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
    -o -path /var/log -o -path /var/cache -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /root \
    -o -path /var/lib/systemd/timers -o -path /var/lib/systemd/catalog -o -path /var/lib/systemd/random-seed \
    -o -path /var/lib/systemd/coredump -o -path /var/lib/private \) -prune -o -print | sort
}
send_mail() {  # send_mail SUBJECT: swaks to the packaged listener
  swaks --server 127.0.0.1:2525 --from customer@example.org --to support@example.com \
    --header "Subject: $1" --body "Hello from the system test ($1)." --timeout 30
}
dry_run_ticket() { grep -l -F "$1" /var/lib/mailgate/dry-run/*.json; }

deb=$1 upgrade=$2
snapshot > /root/before.list

# Install: postinst enables and starts the unit (Type=notify: dpkg returns
# once mailgate said READY=1).
check "dpkg -i installs the package" dpkg -i "$deb"
check "the unit is enabled" systemctl is-enabled mailgate
check "the unit is active after install" systemctl is-active mailgate
check "/etc/mailgate/mailgate.yaml is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' mailgate | grep -q /etc/mailgate/mailgate.yaml"
check "man mailgate renders" sh -c "man -P cat mailgate | grep -q 'turn email into Inbenta Messenger tickets'"
check "man 5 mailgate.yaml renders" sh -c "man -P cat 5 mailgate.yaml | grep -q 'configuration of mailgate'"
pid=$(systemctl show -p MainPID --value mailgate)
check "runs as a dynamic user, not root" sh -c "[ \"\$(ps -o uid= -p $pid | tr -d ' ')\" -ge 61184 ]"
check "Type=notify with the 30 s watchdog" sh -c "[ \"\$(systemctl show -p Type --value mailgate)\" = notify ] && [ \"\$(systemctl show -p WatchdogUSec --value mailgate)\" = 30s ]"
check "without /etc/mailgate/secret the credential is SetCredential's lone newline" sh -c "[ \"\$(od -An -c /run/credentials/mailgate.service/secret | tr -d ' ')\" = '\\n' ]"
check "resource limits apply (MemoryMax, LimitNOFILE, TasksMax)" sh -c "[ \"\$(systemctl show -p MemoryMax --value mailgate)\" = 1073741824 ] && [ \"\$(systemctl show -p LimitNOFILE --value mailgate)\" = 8192 ] && [ \"\$(systemctl show -p TasksMax --value mailgate)\" = 64 ] && grep -q '^Max open files *8192' /proc/$pid/limits"
check "StateDirectory is /var/lib/mailgate" test -d /var/lib/mailgate/dry-run
check "/healthz answers 200" curl -fsS http://127.0.0.1:9465/healthz
check "/metrics is served" sh -c "curl -fsS http://127.0.0.1:9465/metrics | grep -q '^mailgate_start_time_seconds '"

# Mail in, dry-run ticket out.
check "swaks delivers a mail (250)" send_mail "system test one"
check "the dry-run ticket is written" wait_for 30 dry_run_ticket "system test one"
check "the mail is in the queue listing as done" wait_for 30 sh -c "mailgate queue list --config /etc/mailgate/mailgate.yaml | grep -q ' done '"

# Reload keeps the process and says so in the journal.
check "systemctl reload succeeds" systemctl reload mailgate
check "reload keeps the same process" sh -c "[ \"\$(systemctl show -p MainPID --value mailgate)\" = $pid ]"
check "the reload is logged" wait_for 10 sh -c "journalctl -u mailgate -o cat | grep -q serve.reloaded"

# Upgrade: the admin's edit of the conffile survives, the daemon restarts
# on the new version and still takes mail.
sed -i 's/accept: \["support@example.com"/accept: ["admin-edit@example.com", "support@example.com"/' /etc/mailgate/mailgate.yaml
check "the admin edit is in place" grep -q admin-edit@example.com /etc/mailgate/mailgate.yaml
check "dpkg -i of the higher version upgrades" dpkg -i "$upgrade"
check "the conffile keeps the admin's edit" grep -q admin-edit@example.com /etc/mailgate/mailgate.yaml
check "no .dpkg-dist/.dpkg-old left" sh -c "! ls /etc/mailgate/*.dpkg-* 2>/dev/null"
check "the upgrade restarted the daemon" sh -c "systemctl is-active mailgate && [ \"\$(systemctl show -p MainPID --value mailgate)\" != $pid ]"
check "the upgraded daemon takes mail" send_mail "system test two"
check "and writes its ticket" wait_for 30 dry_run_ticket "system test two"

# Stop: SIGTERM, a clean exit 0, the journal has the life of the daemon.
check "systemctl stop" systemctl stop mailgate
check "the daemon exited 0 (Result=success)" sh -c "[ \"\$(systemctl show -p Result --value mailgate)\" = success ] && [ \"\$(systemctl show -p ExecMainStatus --value mailgate)\" = 0 ]"
for event in serve.ready serve.reloaded serve.stopping serve.stopped; do
  check "journalctl -u mailgate shows $event" sh -c "journalctl -u mailgate -o cat | grep -q $event"
done

# Remove keeps the configuration and the spool; purge leaves nothing.
echo "YOUR-API-SECRET" > /etc/mailgate/secret
check "dpkg --remove" dpkg --remove mailgate
check "remove deletes the binary" test ! -e /usr/sbin/mailgate
check "remove keeps the configuration" test -f /etc/mailgate/mailgate.yaml
check "remove keeps the spool" test -d /var/lib/private/mailgate/dry-run
check "dpkg --purge" dpkg --purge mailgate
check "purge leaves no mailgate state in /var/lib/private" test ! -e /var/lib/private/mailgate
snapshot > /root/after.list
if diff /root/before.list /root/after.list > /root/leftovers.diff; then
  ok "install, upgrade, remove, purge leave nothing behind"
else
  fail "files left after purge: $(tr '\n' ' ' < /root/leftovers.diff)"
fi
check "systemd no longer knows the unit" sh -c "! systemctl cat mailgate"
finish
