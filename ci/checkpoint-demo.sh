# Checkpoint and restore of a running container, inside an isolab guest (CRIU works on the
# guest kernels, not on every host):  isolab boot debian-6.1 -- sh -c "$(cat ci/checkpoint-demo.sh)"
set -e
ip link set lo up                                   # criu check probes TCP repair on lo
mkdir -p /tmp/demo/rootfs/bin && cd /tmp/demo && cp /bin/busybox rootfs/bin/
for a in $(rootfs/bin/busybox --list); do [ $a = busybox ] || ln -s busybox rootfs/bin/$a; done
isorun spec
# A counter as PID 1 (glibc's rseq off: CRIU 3.17 and kernels < 5.13, harmless elsewhere).
sed -i 's/"terminal": true/"terminal": false/; s/"readonly": true/"readonly": false/
  s/"sh"$/"sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > \/count; sleep 1; done"/
  s/"PATH=/"GLIBC_TUNABLES=glibc.pthread.rseq=0", "PATH=/' config.json
isorun run -d demo </dev/null >/dev/null 2>&1; sleep 3
echo "before: pid $(isorun state demo | grep '"pid"' | tr -dc 0-9), count $(isorun exec demo cat /count)"
isorun checkpoint --image-path /tmp/img demo
echo "checkpointed: $(ls /tmp/img | wc -l) image files; containers left: $(isorun list -q | wc -l)"
sleep 2
isorun restore -d --image-path /tmp/img demo </dev/null >/dev/null 2>&1
echo "restored: $(isorun state demo | grep '"status"' | tr -d ' ,'), pid $(isorun state demo | grep '"pid"' | tr -dc 0-9)"
sleep 2
echo "after: count $(isorun exec demo cat /count); inside:"
isorun exec demo ps
isorun kill demo KILL; sleep 1; echo "after kill: $(isorun state demo | grep '"status"' | tr -d ' ,')"
isorun delete demo; echo "deleted: $(isorun list -q | wc -l) containers left"
