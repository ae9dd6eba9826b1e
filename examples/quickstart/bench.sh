#!/bin/sh
# Quickstart workload: hash QUICKSTART_MB megabytes of data with WORKERS parallel pipelines,
# each reading its share in BLOCK_KB-kilobyte blocks, and report the throughput.
#
#   sh bench.sh <workers> <block_kb> <algo>
#
# Throughput depends on all three: tiny blocks cost a system call per block, more workers than
# cores only add contention, and the hash algorithms differ in speed. Prints
# `METRIC throughput=<MB/s>` (the primary metric) and `METRIC seconds=<wall time>`.
set -eu
workers=${1:?usage: bench.sh <workers> <block_kb> <algo>}
block_kb=${2:?usage: bench.sh <workers> <block_kb> <algo>}
algo=${3:-sha256sum}
total_mb=${QUICKSTART_MB:-256}
case "$algo" in
  md5sum|sha1sum|sha256sum|sha512sum|cksum) ;;
  *) echo "unknown algo: $algo" >&2; exit 2 ;;
esac
blocks=$(( total_mb * 1024 / workers / block_kb ))
[ "$blocks" -ge 1 ] || blocks=1
start=$(date +%s%N)
i=0
while [ "$i" -lt "$workers" ]; do
  dd if=/dev/zero bs="${block_kb}k" count="$blocks" 2>/dev/null | "$algo" > /dev/null &
  i=$((i + 1))
done
wait
end=$(date +%s%N)
awk -v mb="$total_mb" -v ns="$((end - start))" 'BEGIN {
  s = ns / 1e9; if (s <= 0) s = 1e-9
  printf "METRIC throughput=%.2f\nMETRIC seconds=%.4f\n", mb / s, s
}'
