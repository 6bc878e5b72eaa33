#!/bin/bash
#
# First-boot setup of a triton-api zone, run by the site/postboot SMF
# service. Idempotent: a marker file makes later boots a no-op, and every
# step is safe to repeat if a boot is interrupted half way.
#

set -o errexit
set -o pipefail
set -o xtrace

# Sourced before the marker check so $SMF_EXIT_OK exists on the early exit.
. /lib/svc/share/smf_include.sh

export PATH=/usr/bin:/usr/sbin:/opt/local/bin:/opt/local/sbin
SVC_ROOT=/opt/smartdc/triton-api
MARKER=/var/svc/.triton-api-setup-done

if [[ -f $MARKER ]]; then
    exit "$SMF_EXIT_OK"
fi

mkdir -p "$SVC_ROOT/etc"
chmod 0755 "$SVC_ROOT/etc"

# Let config-agent render our SAPI template (it writes etc/config.json and
# runs post_cmd, which refreshes the service).
CONFIG_AGENT_JSON=/opt/smartdc/config-agent/etc/config.json
if [[ -f $CONFIG_AGENT_JSON ]]; then
    if ! grep -q "$SVC_ROOT/sapi_manifests" "$CONFIG_AGENT_JSON"; then
        /usr/bin/json -I -f "$CONFIG_AGENT_JSON" \
            -e "this.localManifestDirs = this.localManifestDirs || {}; this.localManifestDirs['triton-api'] = ['$SVC_ROOT/sapi_manifests']"
    fi
    # Restarted on every unfinished setup, not only after the edit: if a
    # restart failed on an earlier boot, the edit is there but was never
    # read. A failed restart fails setup (errexit; no marker, so the next
    # boot retries) instead of leaving the template unrendered.
    svcadm restart svc:/smartdc/application/config-agent:default
fi

/opt/smartdc/boot/configure.sh

svccfg import /opt/custom/smf/manifests/triton-api.xml

touch "$MARKER"
exit "$SMF_EXIT_OK"
