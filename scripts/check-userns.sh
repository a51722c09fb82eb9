#!/bin/sh
# Explain whether unprivileged user namespaces work here, and if not, why and how to fix it.
# ringfence needs them; `ringfence doctor` runs the same diagnosis plus a real sandbox.
set -u
show() { printf '%-48s %s\n' "$1" "$2"; }
v() { cat "$1" 2>/dev/null || echo "(absent)"; }
show "kernel" "$(uname -r)"
show "kernel.unprivileged_userns_clone (Debian)" "$(v /proc/sys/kernel/unprivileged_userns_clone)"
show "user.max_user_namespaces" "$(v /proc/sys/user/max_user_namespaces)"
show "kernel.apparmor_restrict_unprivileged_userns" "$(v /proc/sys/kernel/apparmor_restrict_unprivileged_userns)"
if command -v unshare >/dev/null 2>&1; then
    if unshare --user --map-current-user --mount --pid --fork sh -c 'mount -t tmpfs none /tmp' 2>/dev/null; then
        show "unshare + mount in a user namespace" "works"
    else
        show "unshare + mount in a user namespace" "FAILS"
        cat <<'TXT'

Fixes, depending on the cause above:
- unprivileged_userns_clone = 0:  sudo sysctl -w kernel.unprivileged_userns_clone=1
- max_user_namespaces = 0:        sudo sysctl -w user.max_user_namespaces=15000
- apparmor_restrict_... = 1 (Ubuntu >= 23.10): add an AppArmor profile for ringfence granting
  `userns,` (see /etc/apparmor.d/bwrap-userns-restrict for the pattern) or set the sysctl to 0
- inside Docker: the default seccomp profile blocks namespace creation; run with
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
TXT
        exit 1
    fi
fi
