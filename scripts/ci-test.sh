#!/usr/bin/env bash
# The project's test command (README): formatting, lints, docs, unit and integration tests as the
# current user, then — when run as root — the integration suite again as an unprivileged user,
# because real users are not root.
#
# RINGFENCE_TEST_MUST_WORK=1 (default when CI is set) turns "user namespaces unavailable" skips into
# failures.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${CI:-}" ]; then
    export RINGFENCE_TEST_MUST_WORK="${RINGFENCE_TEST_MUST_WORK:-1}"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== layer check (scripts/check-layers.sh)"
scripts/check-layers.sh

echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet

echo "== cargo test (as $(id -un))"
cargo test --locked

if [ "$(id -u)" = 0 ]; then
    user=ringfence-ci
    if ! id "$user" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/sh "$user"
    fi
    # Run a copy of the build from a directory the user can read: the checkout may live under
    # /root, which is not readable by others.
    stage=$(mktemp -d /tmp/ringfence-ci.XXXXXX)
    trap 'rm -rf "$stage"' EXIT
    test_bin=$(cargo test --locked --test it --no-run 2>&1 | sed -n 's/.*(\(target\/[^)]*\/it-[0-9a-f]*\)).*/\1/p' | tail -1)
    [ -n "$test_bin" ] || { echo "could not find the integration test binary" >&2; exit 1; }
    cp target/debug/ringfence "$stage/ringfence"
    cp "$test_bin" "$stage/it"
    cp -r fixtures "$stage/fixtures"
    mkdir -p "$stage/docs" && cp docs/report.schema.json docs/events.schema.json docs/tiers.md "$stage/docs/"
    cp -r sandbox-profiles "$stage/sandbox-profiles"
    cp -r tests/it/snapshots "$stage/snapshots"
    mkdir -p "$stage/fixtures/registry-server" && cp tests/registry/serve.py "$stage/fixtures/registry-server/"
    chmod -R a+rX "$stage"
    home=$(getent passwd "$user" | cut -d: -f6)
    # as_user TIER [FILTER…]: the staged integration tests as $user, in that tier.
    as_user() {
        local tier=$1
        shift
        (cd / && runuser -u "$user" -- env -i \
            PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" \
            RINGFENCE_BIN="$stage/ringfence" RINGFENCE_FIXTURES="$stage/fixtures" \
            RINGFENCE_SNAPSHOTS="$stage/snapshots" INSTA_UPDATE=no CI="${CI:-}" \
            RINGFENCE_TEST_MUST_WORK="${RINGFENCE_TEST_MUST_WORK:-}" \
            RINGFENCE_TEST_LANDLOCK_ABI="${RINGFENCE_TEST_LANDLOCK_ABI:-}" \
            RINGFENCE_TEST_TIER="$tier" \
            "$stage/it" --test-threads "$(nproc)" "$@")
    }
    echo "== integration tests as unprivileged user $user"
    as_user full
fi
# The namespace-free tier, forced the way containers force it: ringfence started under a
# seccomp filter with Docker's default refusals for namespaces (fixtures/probe/docker-seccomp.c),
# so it must choose the landlock tier by itself. The attack suite, the install fidelity tests
# and the sandbox probe tests, as root and (the case that matters) as an ordinary user.
tier_filters=(attacks:: install:: sandbox_ seccomp::)
echo "== landlock tier (container-like seccomp) as $(id -un)"
RINGFENCE_TEST_TIER=landlock cargo test --locked --test it -- "${tier_filters[@]}"
if [ "$(id -u)" = 0 ]; then
    echo "== landlock tier (container-like seccomp) as unprivileged user $user"
    as_user landlock "${tier_filters[@]}"
fi
# Real container runtimes with their default settings (docker.io and podman, as root and as uid
# 1000): the landlock tier chosen by itself and holding, checked from outside. Needs root (a
# private daemon); CI installs the runtimes and builds the image from Debian's mirror.
if [ "$(id -u)" = 0 ] && [ -n "${CI:-}" ]; then
    echo "== real containers (scripts/container-check)"
    scripts/container-check --ringfence target/debug/ringfence --runtime all
fi
# Real packages from the npm registry, installed as an unprivileged user under HOME with plain
# npm and with ringfence: a quick subset (the whole set: scripts/realworld-check).
echo "== real-world quick subset (scripts/realworld-check --quick)"
python3 scripts/realworld-check --quick --ringfence target/debug/ringfence
echo "== all tests passed"
