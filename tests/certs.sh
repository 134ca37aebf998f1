#!/bin/sh
# Make the test PKI with the openssl CLI into DIR (default build/certs):
#   ca.pem            test CA (ca.key)
#   server.pem/.key   CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   alice.pem/.key    client certificate, CN=alice, signed by the CA
#   expired.pem/.key  client certificate, CN=alice, expired
#   rogue-ca.pem, rogue.pem/.key   a client certificate from another CA
# Nothing here is committed: keys are made fresh for each build tree.
set -eu
dir=${1:-build/certs}
[ -f "$dir/.done" ] && exit 0
mkdir -p "$dir"
cd "$dir"
days=3650
req() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null; }
ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1.key" -subj "/CN=$2" -days $days -out "$1.pem" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
sign() { # name ca ext-file [extra args]
	n=$1 c=$2 e=$3; shift 3
	openssl x509 -req -in "$n.csr" -CA "$c.pem" -CAkey "$c.key" \
		-CAcreateserial -out "$n.pem" -extfile "$e" "$@" 2>/dev/null
}
ca ca "mpgw test CA"
ca rogue-ca "rogue CA"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'extendedKeyUsage=clientAuth\n' >client.ext
req server localhost && sign server ca server.ext -days $days
req alice alice && sign alice ca client.ext -days $days
req rogue alice && sign rogue rogue-ca client.ext -days $days
# An expired certificate: its validity ended a day before it began.
req expired alice && sign expired ca client.ext -days -1
rm -f ./*.csr ./*.ext ./*.srl
chmod 600 ./*.key
touch .done
