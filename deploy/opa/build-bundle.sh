#!/bin/sh
# Build, sign and verify the policy bundle the OPA sidecars load (rego/README.md,
# "Building, signing and publishing a bundle"). Run from the repository root after
# `opa fmt`, `opa check`, `opa test` and `regal lint` pass:
#
#   deploy/opa/build-bundle.sh bundle.key [bundle.tar.gz]
#
# The private key stays in the pipeline; publish the output on the bundle server
# (with an ETag) under the resource named in deploy/opa/opa-config.yaml.
set -eu

key=${1:?usage: build-bundle.sh SIGNING_KEY.pem [OUTPUT.tar.gz]}
out=${2:-bundle.tar.gz}
opa=${OPA:-opa}
revision=$(git rev-parse HEAD)

# Delta bundles cannot be signed: always a full bundle. Test files stay out.
"$opa" build --bundle rego --ignore '*_test.rego' \
    --revision "$revision" \
    --signing-key "$key" --signing-alg RS256 \
    --output "$out"

# Check the signature with the public half, as OPA will before activating it.
pub=$(mktemp)
trap 'rm -f "$pub"' EXIT
openssl pkey -in "$key" -pubout -out "$pub"
"$opa" build --bundle "$out" --verification-key "$pub" --signing-alg RS256 \
    --output /dev/null
echo "built $out (revision $revision), signature verified"
