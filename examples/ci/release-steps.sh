#!/usr/bin/env bash
# The release steps both CI examples run (github-actions.yml, gitlab-ci.yml), kept in one
# script so that what the examples do is what the project's tests run
# (tests/ci_examples.rs, against a file:// registry and an S3 server).
#
# Usage: release-steps.sh publish|promote|refresh|guard
#
# Environment (set by the CI job; secrets from the CI's secret store):
#   UPDRAFT_REGISTRY     s3://bucket/prefix or file:///path
#   UPDRAFT_APP          the app's name in the registry
#   UPDRAFT_SECRET_KEY   the contents of the minisign secret key file (a secret)
#   UPDRAFT_KEY_PASSWORD its password, for a password-protected key (a secret)
#   UPDRAFT_PUBLIC_KEY   the public key file (committed), for `publish`'s audit
#   VERSION              publish, promote: the version (the tag, or a git hash)
#   ARTIFACT             publish: the release tarball
#   TARGET               publish: <arch>-<os> of the artifact (default x86_64-linux)
#   CHANNEL              the channel to write (publish: dev, promote: prod,
#                        refresh and guard: prod)
#   FROM_CHANNEL         promote: the channel VERSION was approved on (default dev)
#   MAX_FAILED           guard: percent of failed machines that halts (default 10)
#   MIN_REPORTS          guard: machines that must have tried it (default 5)
#   EXPIRES              refresh: validity of the re-signed document (default 30d)
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION for an s3:// registry.
#
# Exit codes are updraft's: promote exits 7 when FROM_CHANNEL no longer holds VERSION
# (what was approved is not what would be promoted), guard exits 8 when it halted a
# rollout (the job fails, so the CI notifies you).
set -euo pipefail

step=${1:?usage: release-steps.sh publish|promote|refresh|guard}
: "${UPDRAFT_REGISTRY:?set UPDRAFT_REGISTRY (s3://bucket/prefix or file:///path)}"
: "${UPDRAFT_APP:?set UPDRAFT_APP}"
: "${UPDRAFT_SECRET_KEY:?set UPDRAFT_SECRET_KEY from the CI secret holding the key file}"
reg=(--registry "$UPDRAFT_REGISTRY" --app "$UPDRAFT_APP")
key=(--secret-key-env UPDRAFT_SECRET_KEY)

case $step in
  publish)
    : "${VERSION:?set VERSION}" "${ARTIFACT:?set ARTIFACT}" "${UPDRAFT_PUBLIC_KEY:?set UPDRAFT_PUBLIC_KEY}"
    updraft publish "${reg[@]}" --version "$VERSION" --artifact "$ARTIFACT" \
      --target "${TARGET:-x86_64-linux}" --channel "${CHANNEL:-dev}" "${key[@]}"
    # Read back what agents will read: every signature, checksum and channel.
    updraft registry verify "${reg[@]}" --public-key "$UPDRAFT_PUBLIC_KEY"
    ;;
  promote)
    : "${VERSION:?set VERSION to the version that was approved}"
    # --version with --from: exactly the approved version, and only while the channel
    # it was approved on still holds it.
    updraft promote "${reg[@]}" --from "${FROM_CHANNEL:-dev}" --version "$VERSION" \
      --channel "${CHANNEL:-prod}" "${key[@]}"
    ;;
  refresh)
    # Channel documents expire (30 days by default) so a frozen mirror is noticed:
    # re-sign them on a schedule, content unchanged.
    updraft refresh "${reg[@]}" --channel "${CHANNEL:-prod}" --expires "${EXPIRES:-30d}" "${key[@]}"
    ;;
  guard)
    updraft guard "${reg[@]}" --channel "${CHANNEL:-prod}" \
      --max-failed "${MAX_FAILED:-10}" --min-reports "${MIN_REPORTS:-5}" "${key[@]}"
    ;;
  *)
    echo "release-steps.sh: unknown step \"$step\" (publish, promote, refresh or guard)" >&2
    exit 2
    ;;
esac
