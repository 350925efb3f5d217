#!/usr/bin/env bash
# Make a local certificate authority and a broker (server) certificate for trials, with openssl.
#
#   scripts/make-ca.sh OUT_DIR [NAME ...]
#
# OUT_DIR receives ca.key, ca.crt, server.key and server.crt. The server certificate names
# localhost, 127.0.0.1 and ::1, plus every NAME given (a DNS name, or an IP address), so devices
# can check the broker's name. Idempotent: a second run keeps the existing CA and re-issues the
# server certificate only when it is missing, no longer signed by that CA, expires within 30
# days, or lacks one of the names asked for. Real deployments use certificates from their own
# CA or a public one instead (docs/operations.md).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 OUT_DIR [NAME ...]" >&2
    exit 2
fi
out=$1
shift
names=(localhost 127.0.0.1 ::1 "$@")
days_ca=${ELDERCARE_CA_DAYS:-3650}
days_server=${ELDERCARE_SERVER_CERT_DAYS:-825}

mkdir -p "$out"
cd "$out"
umask 077

if [[ ! -s ca.key || ! -s ca.crt ]]; then
    openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days "$days_ca" \
        -keyout ca.key -out ca.crt -subj "/O=Eldercare hub trial/CN=Eldercare trial CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    rm -f server.crt  # a new CA invalidates the old server certificate
    echo "made CA $out/ca.crt"
fi

san=""
for name in "${names[@]}"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then
        san+="IP:$name,"
    else
        san+="DNS:$name,"
    fi
done
san=${san%,}

server_ok() {
    [[ -s server.key && -s server.crt ]] || return 1
    openssl verify -CAfile ca.crt server.crt >/dev/null 2>&1 || return 1
    openssl x509 -in server.crt -noout -checkend $((30 * 86400)) >/dev/null 2>&1 || return 1
    local have
    have=$(openssl x509 -in server.crt -noout -ext subjectAltName 2>/dev/null | tr -d ' \n')
    for name in "${names[@]}"; do
        # openssl prints IPv6 addresses expanded; ::1 is always issued with the certificate.
        [[ $name == "::1" ]] && continue
        if [[ $name =~ ^[0-9.]+$ ]]; then
            [[ $have == *"IPAddress:$name"* ]] || return 1
        elif [[ $name == *:* ]]; then
            continue
        else
            [[ $have == *"DNS:$name"* ]] || return 1
        fi
    done
}

if ! server_ok; then
    openssl req -newkey rsa:2048 -sha256 -nodes -keyout server.key -out server.csr \
        -subj "/O=Eldercare hub trial/CN=${names[3]:-localhost}" 2>/dev/null
    ext=$(mktemp)
    trap 'rm -f "$ext"' EXIT
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$san" >"$ext"
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days_server" -out server.crt -extfile "$ext" 2>/dev/null
    rm -f server.csr
    echo "made server certificate $out/server.crt for $san"
fi
# The broker reads the key as its own user; the CA key stays with whoever ran this script.
chmod 600 ca.key server.key
chmod 644 ca.crt server.crt
