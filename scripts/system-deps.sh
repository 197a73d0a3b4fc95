#!/usr/bin/env bash
# Installs the Debian packages vsa needs on a machine: Java 17 and Maven (the local Kafka and
# OpenSearch), ffmpeg and rtsp-server-perl (live-stream tests serve the sample clip over RTSP/HTTP),
# qemu-user (a test runs the INT8 detector as on an x86 CPU without VNNI), mosquitto (the notifier's
# MQTT test runs its own broker; probed by mosquitto_passwd, which is on every user's PATH),
# chromium (the web console's browser tests drive Debian's chromium with Playwright, which never
# downloads a browser of its own).
# Root installs what is missing with apt-get; anyone else gets the command to run.
#   usage: scripts/system-deps.sh [runtime|test]
set -euo pipefail
need=(java:openjdk-17-jre-headless mvn:maven)
if [[ "${1:-test}" == "test" ]]; then
  need+=(ffmpeg:ffmpeg rtsp-server-perl:rtsp-server-perl qemu-x86_64:qemu-user)
  need+=(mosquitto_passwd:mosquitto chromium:chromium)
fi
missing=()
for pair in "${need[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
# chromium only recommends its fonts, and recommends are not installed below
[[ " ${missing[*]-} " == *" chromium "* ]] && missing+=(fonts-liberation)
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
