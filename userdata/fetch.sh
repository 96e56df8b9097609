#!/bin/sh
# probe-fetch: downloads probe for this machine from the first source that answers, checks
# its sha256 against the one pinned in the UserData, puts it in place and installs the probe
# service. Each attempt writes one marked line to the serial console, so an operator reading
# the console (probe collect --from-console) sees why an instance never reported. It never
# gives up: it waits longer after each round, up to a few minutes, with jitter.
set -u
# shellcheck source=/dev/null
. /etc/probe/bootstrap.env
bin=/usr/local/bin/probe
attempt=0
delay=2
cap=120

say() { # result source detail
	line="probe.bootstrap/v1 {\"step\":\"fetch\",\"attempt\":$attempt,\"arch\":\"$PROBE_ARCH\",\"source\":\"$2\",\"result\":\"$1\",\"detail\":\"$3\"}"
	printf '%s\n' "$line" >/dev/console 2>/dev/null || true
	printf '%s\n' "$line"
}

sha_of() {
	sha256sum "$1" 2>/dev/null | cut -d' ' -f1
}

# Downloads $1 to $2; on failure sets $why to dns, refused, no-route, connect-timeout,
# timeout, tls or http-CODE.
fetch() {
	if command -v curl >/dev/null 2>&1; then
		# -v: only the verbose lines name the errno (curl 7.x says "Couldn't connect" for all).
		code=$(curl -sSv -o "$2" -w '%{http_code}' --connect-timeout 5 --max-time 300 "$1" 2>"$2.err")
		rc=$?
		case $rc in
		0)
			rm -f "$2.err"
			[ "$code" = 200 ] && return 0
			why="http-$code"
			return 1
			;;
		6) why=dns ;;
		7)
			if grep -qi 'connection refused' "$2.err"; then
				why=refused
			elif grep -qi 'no route\|unreachable' "$2.err"; then
				why=no-route
			else
				why=connect-failed
			fi
			;;
		28)
			if [ "$code" = 000 ]; then why=connect-timeout; else why=timeout; fi
			;;
		35 | 51 | 58 | 59 | 60 | 77 | 80 | 82 | 83 | 90 | 91) why=tls ;;
		*) why="curl-exit-$rc" ;;
		esac
		rm -f "$2.err"
		return 1
	fi
	if wget -q -T 10 -O "$2" "$1"; then
		return 0
	fi
	why="wget-exit-$?"
	return 1
}

install_service() {
	set --
	while IFS= read -r arg; do
		set -- "$@" "$arg"
	done </etc/probe/args
	if [ -n "$PROBE_RELAY" ]; then
		set -- --relay "$PROBE_RELAY" --relay-listen "$PROBE_RELAY_LISTEN" -- "$@"
	else
		set -- -- "$@"
	fi
	if "$bin" install "$@"; then
		say installed "$bin" "probe service installed"
		exit 0
	fi
	say install-failed "$bin" "probe install failed: see journalctl -u probe-fetch"
	exit 1
}

while :; do
	if [ "$(sha_of "$bin")" = "$PROBE_SHA256" ]; then
		say up-to-date "$bin" "the installed probe matches the pinned sha256"
		install_service
	fi
	for src in $PROBE_SOURCES; do
		attempt=$((attempt + 1))
		case $src in
		*/) url="${src}probe-$PROBE_ARCH-unknown-linux-musl" ;;
		*) url=$src ;;
		esac
		tmp="$bin.download"
		rm -f "$tmp"
		if ! fetch "$url" "$tmp"; then
			rm -f "$tmp"
			say "$why" "$url" "no probe from this source"
			continue
		fi
		got=$(sha_of "$tmp")
		if [ "$got" != "$PROBE_SHA256" ]; then
			rm -f "$tmp"
			say sha-mismatch "$url" "got sha256 $got, pinned $PROBE_SHA256: installed nothing"
			continue
		fi
		if ! { chmod 0755 "$tmp" && mv -f "$tmp" "$bin"; }; then
			say failed "$url" "cannot move the download to $bin"
			continue
		fi
		say ok "$url" "verified sha256 $got"
		install_service
	done
	jitter=$(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (delay / 2 + 1)))
	sleep $((delay + jitter))
	delay=$((delay * 2))
	[ "$delay" -le "$cap" ] || delay=$cap
done
