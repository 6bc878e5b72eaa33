#!/bin/bash
#
# Per-boot configuration of a triton-api zone; setup.sh calls it on first
# boot. Safe to run any number of times.
#

set -o errexit
set -o pipefail
set -o xtrace

SVC_ROOT=/opt/smartdc/triton-api

# The server runs as nobody and must read its config, never write it.
if [[ -f $SVC_ROOT/etc/config.json ]]; then
    chown root:root "$SVC_ROOT/etc/config.json"
    chmod 0644 "$SVC_ROOT/etc/config.json"
fi

exit 0
