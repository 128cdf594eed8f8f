#!/usr/bin/env bash
# Makes the certificates the TLS tests use, in directory $1: a CA (ca.pem),
# a server certificate it signed for localhost and 127.0.0.1 (server.pem,
# server.key), and a self-signed one nobody trusts (rogue.pem, rogue.key).
# EC keys: quick to make at test time.
set -euo pipefail
dir=${1:?usage: tls_certs.sh <dir>}
command -v openssl >/dev/null ||
    { echo "tls_certs.sh: openssl not found (scripts/deps installs it)" >&2; exit 1; }
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=weft test CA" 2>/dev/null
openssl req "${ec[@]}" -keyout server.key -out server.csr \
    -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out server.pem -days 2 -extfile server.ext 2>/dev/null
openssl req -x509 "${ec[@]}" -keyout rogue.key -out rogue.pem -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" 2>/dev/null
