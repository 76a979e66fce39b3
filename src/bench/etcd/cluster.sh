#!/usr/bin/env bash
# Starts 3 etcd members on 127.0.0.1 (fsync on, defaults otherwise), data in $1.
set -e
D=$1; mkdir -p $D
IC="e0=http://127.0.0.1:23800,e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802"
for i in 0 1 2; do
  ${ETCD:-./etcd-bin} --name e$i --data-dir $D/e$i \
    --listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
    --listen-peer-urls http://127.0.0.1:2380$i --initial-advertise-peer-urls http://127.0.0.1:2380$i \
    --initial-cluster $IC --initial-cluster-state new --initial-cluster-token bench \
    --quota-backend-bytes 8589934592 --log-level warn > $D/e$i.log 2>&1 &
  echo $! > $D/e$i.pid
done
